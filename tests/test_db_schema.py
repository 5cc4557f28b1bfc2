"""Models and migrations agree; upgrade/downgrade round-trips on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from mds.db import migrate
from mds.db.engine import get_engine
from mds.db.models import Base


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1, f"multiple migration heads: {heads}; merge them with `alembic merge`"


def test_models_match_migrations(db_url: str) -> None:
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], (
        "models and migrations disagree; HOW TO FIX: add a revision with "
        "`alembic revision --autogenerate -m ...` (see db/migrations/README.md):\n" + "\n".join(map(str, diff))
    )


def test_upgrade_downgrade_roundtrip(empty_db_url: str) -> None:
    assert migrate.current(empty_db_url) is None
    assert migrate.upgrade(empty_db_url) == migrate.head()
    tables = set(inspect(get_engine(empty_db_url)).get_table_names())
    assert {"videos", "rounds", "selections", "predictions", "labels", "checkpoints"} <= tables
    migrate.downgrade(empty_db_url, "base")
    get_engine(empty_db_url).dispose()
    assert set(inspect(get_engine(empty_db_url)).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(empty_db_url) == migrate.head()
