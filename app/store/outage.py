"""What a database outage looks like to the store's callers.

A stopped or restarting PostgreSQL, an unreachable host or a SQLite file locked
past its busy timeout all surface as these driver errors. Callers above the store
(which may not import SQLAlchemy) ask `is_database_unavailable` and treat them as
transient: the API answers 503, a running job buffers what it would have written.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or written right now."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
