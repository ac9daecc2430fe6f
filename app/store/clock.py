"""The database's clock, for the timestamps that machines compare with each other.

A heartbeat is written by a worker and judged by the reaper in an API process,
possibly on another machine: if each used its own clock, a skew between the two
would fail healthy jobs (or keep lost ones). So heartbeats are written, and the
reaper's cutoff taken, by the database's clock. SQLite runs inside the process
that writes it, on one machine, so its clock is that machine's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from app.store.tables import UTCDateTime
from app.store.types import utcnow

# This process's time in a statement built once: pass {"now": utcnow()} with it.
NOW = bindparam("now", type_=UTCDateTime())


def database_now_expression(dialect: str) -> Any:
    """`now`, by the database's clock, as a value for a UTC timestamp column in a
    statement built once: `NOW` except on PostgreSQL."""
    if dialect == "postgresql":
        # Columns hold naive UTC: convert whatever the session's TimeZone is.
        return func.timezone("UTC", func.clock_timestamp())
    return NOW


def read_database_now(connection: Connection) -> datetime:
    """The database's current time, aware UTC."""
    if connection.dialect.name != "postgresql":
        return utcnow()
    value = connection.execute(select(func.timezone("UTC", func.clock_timestamp()))).scalar_one()
    return datetime.fromisoformat(value) if isinstance(value, str) else value.replace(tzinfo=UTC)
