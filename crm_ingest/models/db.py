"""Engines and sessions for both ways to run: a SQLite file (embedded) or PostgreSQL."""
from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from . import jsonfast


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3 here; everything else as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        _sqlite_setup(engine)
        return engine
    # No server-side prepared statements: psycopg prepares a statement after 5 runs, and
    # PostgreSQL then keeps a generic plan chosen while a fast-growing table's statistics
    # still said it was empty (seen: a seq scan of 300k identity keys per batch, 0.3-1.5 s,
    # instead of 500 index probes, 9 ms). Planning each statement with its values costs
    # well under a millisecond.
    # orjson (jsonfast) for JSONB both ways: a list import moves every row through JSON.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                         connect_args={"prepare_threshold": None},
                         json_serializer=jsonfast.dumps, json_deserializer=jsonfast.loads)


def _sqlite_setup(engine: Engine) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE so a writer never fails on lock upgrade.

    pysqlite's own transaction handling is switched off, as SQLAlchemy's documentation shows,
    so that we emit BEGIN ourselves.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite's lower() folds ASCII only: a search for 'Åsa' or 'Malmö' found nothing. Python's
        # folds every letter, as PostgreSQL's does (no index is built on lower()).
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
