"""Database access: engine/session helpers, ORM models and programmatic migrations."""

from mds.db.engine import get_engine, session_scope, make_sessionmaker

__all__ = ["get_engine", "session_scope", "make_sessionmaker"]
