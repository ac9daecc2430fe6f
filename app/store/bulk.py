"""Many rows inserted with their values converted before the transaction.

SQLAlchemy converts each row's values (timestamps, JSON) while it executes: inside
the write transaction, where on SQLite the database's one write lock is held, and
every other writer (the other API processes' submits, the workers' claims) waits.
A `BulkInsert` converts them first, with the columns' own converters, so the lock
is held for the driver's `executemany` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Table, insert


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters, in the statement's order
    positional: bool
    converters: tuple[Callable[[Any], Any] | None, ...]


@dataclass(frozen=True)
class Converted:
    """Rows ready for the driver; `execute` them in the write transaction."""

    sql: str
    parameters: list[Any]

    def execute(self, connection: Connection) -> None:
        connection.exec_driver_sql(self.sql, self.parameters)


class BulkInsert:
    """An INSERT into `table` of rows that all name the same columns."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def convert(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> Converted:
        """`rows` as the driver takes them, converted as SQLAlchemy would convert them."""
        compiled = self._compile(dialect, tuple(rows[0]))
        pairs = tuple(zip(compiled.names, compiled.converters, strict=True))
        converted = [
            [row[name] if convert is None else convert(row[name]) for name, convert in pairs]
            for row in rows
        ]
        if compiled.positional:
            return Converted(compiled.sql, [tuple(values) for values in converted])
        return Converted(
            compiled.sql, [dict(zip(compiled.names, values, strict=True)) for values in converted]
        )

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        found = self._compiled.get((dialect.name, keys))
        if found is None:
            compiled = insert(self._table).compile(dialect=dialect, column_keys=list(keys))
            names = tuple(compiled.positiontup or ()) if compiled.positional else keys
            if set(names) != set(keys):
                raise ValueError(f"{self._table.name}: an insert of {keys} binds {names}")
            converters = tuple(
                self._table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            )
            found = _Compiled(compiled.string, names, compiled.positional, converters)
            self._compiled[(dialect.name, keys)] = found
        return found
