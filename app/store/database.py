"""Engine construction and schema upgrades for SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(database_url: str) -> Engine:
    """An engine tuned for many short transactions from several processes."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # No overflow: connections a burst opened are kept, not closed and opened again
        # (that churn held the API's reads back, a GET p99 of 0.3 s and more).
        return create_engine(url, pool_pre_ping=True, pool_size=30, max_overflow=0)
    if url.database and url.database != ":memory:":
        _create_private(Path(url.database).expanduser())
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _create_private(database: Path) -> None:
    """The database file readable by its owner only: it holds every job's parameters and
    output. SQLite gives its -wal and -shm files the database file's mode."""
    database.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
    database.chmod(0o600)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _begin_sqlite_transaction).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _begin_sqlite_transaction(connection: Any) -> None:
    # Writers take the lock up front: a deferred transaction that reads and then
    # writes fails at once with SQLITE_BUSY instead of waiting out busy_timeout.
    immediate = connection.get_execution_options().get("write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to run from many processes at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as connection:
        config.attributes["connection"] = connection.execution_options(write=True)
        command.upgrade(config, "head")
        connection.commit()
    logger.info("database schema is up to date (%s)", engine.url.render_as_string())
