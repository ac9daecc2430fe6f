"""The hot read paths: one job, its events after an id, with statements compiled once.

A `GET /jobs/{id}` is most of what callers send. Building a `select()`, looking it
up in SQLAlchemy's statement cache and wrapping the result costs more than the
query itself, so these reads compile their statements once per process and run
them on a raw DBAPI cursor, with the columns' own result processors (the same
conversions SQLAlchemy applies). On SQLite the read is fast enough to run on the
event loop (`inline`): one dedicated connection in autocommit mode, WAL readers
never wait for the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, exc, select

from app.schemas.jobs import Job, JobEvent, JobStatus
from app.store.base import StoreBase
from app.store.rows import JOB_COLUMNS, to_job
from app.store.tables import job_events, jobs
from app.store.types import Visibility

Processor = Callable[[Any], Any] | None


def _result_processor(column_type: Any, dialect: Any) -> Processor:
    """The type's result processor for this dialect. Some (psycopg's numerics) need the
    driver's column type code, which a statement compiled ahead of time does not have: the
    driver already returns those as Python numbers, so they need none."""
    try:
        processor: Processor = column_type.dialect_impl(dialect).result_processor(dialect, None)
    except (TypeError, exc.InvalidRequestError):
        return None
    return processor


class _Compiled:
    """One statement as the driver takes it, with a result processor per column."""

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._positional = compiled.positional
        self._order = list(compiled.positiontup or [])
        self._processors: list[Processor] = [
            _result_processor(column.type, dialect) for column in statement.selected_columns
        ]
        self.names = [column.name for column in statement.selected_columns]

    def params(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        if self._positional:
            return tuple(values[name] for name in self._order)
        return values

    def convert(self, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: (value if processor is None or value is None else processor(value))
            for name, processor, value in zip(self.names, self._processors, row, strict=True)
        }


class JobRead(NamedTuple):
    """A job as read, and whether it waits for admission (pending, not yet admitted): only
    then does `get_job` have more to say (why it waits, its place in line)."""

    job: Job
    waiting: bool


class FastReads(StoreBase):
    """`read_job` and `read_events_after` without per-call statement building."""

    _fast: dict[str, _Compiled] | None = None
    _loop_connection: Any = None

    @property
    def reads_inline(self) -> bool:
        """Whether a read is cheap enough to run on the event loop (SQLite)."""
        return self._engine.dialect.name == "sqlite"

    def _statements(self) -> dict[str, _Compiled]:
        if self._fast is None:
            dialect = self._engine.dialect
            by_id = select(*JOB_COLUMNS, jobs.c.admitted_at).where(jobs.c.id == bindparam("id"))
            self._fast = {
                "job": _Compiled(by_id, dialect),
                "job_of_user": _Compiled(by_id.where(jobs.c.user_id == bindparam("user")), dialect),
                "events": _Compiled(
                    select(
                        job_events.c.id,
                        job_events.c.at,
                        job_events.c.status,
                        job_events.c.reason,
                        job_events.c.attempt,
                        job_events.c.worker,
                    )
                    .where(
                        job_events.c.job_id == bindparam("id"),
                        job_events.c.id > bindparam("after"),
                    )
                    .order_by(job_events.c.id),
                    dialect,
                ),
            }
        return self._fast

    def _fetch(self, name: str, values: dict[str, Any], *, inline: bool) -> list[dict[str, Any]]:
        statement = self._statements()[name]
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        try:
            rows = self._run_inline(statement, values) if inline else self._run(statement, values)
        except dbapi_error as error:
            # A raw cursor bypasses SQLAlchemy's error translation: do it here, so an outage
            # reads as one (503) and the loop's connection is opened afresh next time.
            if inline:
                self._drop_loop_connection()
            raise exc.DBAPIError.instance(statement.sql, None, error, dbapi_error) from error
        return [statement.convert(row) for row in rows]

    def _run_inline(self, statement: _Compiled, values: dict[str, Any]) -> list[Any]:
        # Only the event loop's thread uses this connection, so it needs no lock.
        if self._loop_connection is None:
            self._loop_connection = self._engine.raw_connection()
        cursor = self._loop_connection.cursor()
        try:
            cursor.execute(statement.sql, statement.params(values))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _run(self, statement: _Compiled, values: dict[str, Any]) -> list[Any]:
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(statement.sql, statement.params(values))
            rows = list(cursor.fetchall())
            cursor.close()
            connection.rollback()
        except BaseException:
            connection.invalidate()
            raise
        finally:
            connection.close()
        return rows

    def _drop_loop_connection(self) -> None:
        if self._loop_connection is not None:
            self._loop_connection.invalidate()
            self._loop_connection = None

    def read_job(
        self, *, job_id: str, visibility: Visibility, inline: bool = False
    ) -> JobRead | None:
        """The job, or None if it is unknown or not the caller's."""
        if visibility.sees_all:
            rows = self._fetch("job", {"id": job_id}, inline=inline)
        else:
            rows = self._fetch(
                "job_of_user", {"id": job_id, "user": visibility.user_id}, inline=inline
            )
        if not rows:
            return None
        job = to_job(rows[0])
        return JobRead(job, job.status == JobStatus.pending and rows[0]["admitted_at"] is None)

    def read_events_after(
        self, *, job_id: str, after: int, inline: bool = False
    ) -> list[tuple[int, JobEvent]]:
        """The job's events with an id past `after`, oldest first, each with its id."""
        rows = self._fetch("events", {"id": job_id, "after": after}, inline=inline)
        return [
            (
                row["id"],
                JobEvent(
                    at=row["at"],
                    status=row["status"],
                    reason=row["reason"],
                    attempt=row["attempt"],
                    worker=row["worker"],
                ),
            )
            for row in rows
        ]

    def dispose(self) -> None:
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None
        super().dispose()
