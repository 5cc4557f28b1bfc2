"""Programmatic Alembic: upgrade, downgrade and current revision without an alembic.ini.

The migration scripts live in the repository's top-level ``db/migrations``;
``MDS_MIGRATIONS_DIR`` points elsewhere (e.g. for an installed wheel).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, inspect

from mds.errors import DatabaseError


def migrations_dir() -> Path:
    env = os.environ.get("MDS_MIGRATIONS_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "db" / "migrations"
    if not (path / "env.py").is_file():
        raise DatabaseError(f"migration scripts not found at {path} (set MDS_MIGRATIONS_DIR)")
    return path


def alembic_config(connection: Connection | None = None, url: str | None = None):  # noqa: ANN201
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, revision: str = "head") -> str | None:
    """Upgrade the database at ``url`` to ``revision``; returns the new current revision."""
    from alembic import command

    from mds.db.engine import get_engine

    engine = get_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
    except Exception as e:  # connection problems surface here first
        if isinstance(e, DatabaseError):
            raise
        from sqlalchemy.exc import OperationalError

        if isinstance(e, OperationalError):
            raise DatabaseError(f"cannot reach the database {engine.url!r}: {e.orig}") from None
        raise
    return current(url)


def downgrade(url: str, revision: str) -> str | None:
    from alembic import command

    from mds.db.engine import get_engine

    with get_engine(url).begin() as conn:
        command.downgrade(alembic_config(conn), revision)
    return current(url)


def current(url: str) -> str | None:
    """The database's current revision (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    from mds.db.engine import get_engine

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def ensure_current(url: str) -> None:
    """Raise a one-line error unless the database is at the latest revision."""
    from mds.db.engine import get_engine

    cur = current(url)
    want = head()
    if cur != want:
        if cur is None and not inspect(get_engine(url)).get_table_names():
            raise DatabaseError("the database is empty: run `mds init` or `mds db upgrade` first")
        raise DatabaseError(f"database is at revision {cur}, code expects {want}: run `mds db upgrade`")
