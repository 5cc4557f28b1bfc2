"""Shared fixtures: offline environment, torchvision guard, databases, generated clips.

Database tests use the ``db_url`` fixture, which runs every test twice: on a
fresh SQLite file and on a fresh database of the PostgreSQL server at
127.0.0.1:5432 (``MDS_TEST_PG_URL`` overrides the server). PostgreSQL is not
optional: if the server is down the PostgreSQL variants fail.
"""

from __future__ import annotations

import os

# Offline before anything imports huggingface_hub (set later, lookups retry for ~46 s).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.pop("MDS_DATABASE_URL", None)

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PG_SERVER = os.environ.get("MDS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def pytest_configure(config: pytest.Config) -> None:
    from mds._compat import ensure_torchvision

    ensure_torchvision()


def _pg_admin_url() -> str:
    return PG_SERVER


def create_pg_database() -> str:
    """Create a fresh PostgreSQL database; returns its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(_pg_admin_url())
    name = f"mds_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, dbname=admin.database, autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return str(admin.set(database=name).render_as_string(hide_password=False))


def drop_pg_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from mds.db.engine import get_engine

    u = make_url(url)
    get_engine(url).dispose()
    get_engine.cache_clear()
    admin = make_url(_pg_admin_url())
    with psycopg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, dbname=admin.database, autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database (no schema) on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        yield url
        from mds.db.engine import get_engine

        get_engine(url).dispose()
    else:
        url = create_pg_database()
        try:
            yield url
        finally:
            drop_pg_database(url)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A fresh database on each backend, upgraded to the latest migration."""
    from mds.db import migrate

    migrate.upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database at the latest migration (for tests that need only one backend)."""
    from mds.db import migrate

    url = f"sqlite:///{tmp_path / 'one.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def session(db_url: str):  # noqa: ANN201
    from mds.db.engine import make_sessionmaker

    s = make_sessionmaker(db_url)()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of a few small valid clips, generated once per test session."""
    from tests.fixtures.clips import write_clip

    d = tmp_path_factory.mktemp("clips")
    for i in range(4):
        write_clip(d / f"clip{i}.mp4", seed=i, n=16)
    return d


@pytest.fixture
def shared_dir() -> Path:
    """The project's shared reference material (MDS-VQA data, fixtures); required in CI."""
    if not SHARED.is_dir():
        pytest.fail(f"shared material not found at {SHARED}")
    return SHARED
