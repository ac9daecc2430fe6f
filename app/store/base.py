"""The connection discipline every part of the store shares."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection, Engine


class StoreBase:
    """An engine, a fair write turn for SQLite, and short read and write transactions."""

    def __init__(self, engine: Engine, *, log_max_bytes: int) -> None:
        self._engine = engine
        # SQLite has one writer at a time, and its busy handler waits by sleeping, so
        # threads racing for the lock starve each other (a p99 of seconds under load).
        # Queue this process's writers on a fair lock instead; PostgreSQL needs none.
        self._write_turn: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self._head_limit = log_max_bytes // 2
        self._tail_limit = log_max_bytes - self._head_limit

    def dispose(self) -> None:
        """Close pooled connections (before a fork, or when done)."""
        self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._write_turn, self._engine.connect() as connection:
            connection = connection.execution_options(write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as connection, connection.begin():
            yield connection
