"""The job store: the only module that writes SQL.

Every state change is a compare-and-set on (id, status[, attempt]), so Celery's
at-least-once delivery is harmless: a redelivered task that cannot claim its
job does nothing, only the attempt that claimed a job may finish it, and
terminal states never change.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.core.exceptions import JobConflict, JobNotFound
from app.core.tables import job_events, job_output, jobs, queue_projects, workers
from app.schemas.jobs import (
    TERMINAL_STATUSES,
    Job,
    JobCreate,
    JobEvent,
    JobStatus,
    LogChunk,
    Progress,
    RunOptions,
)
from app.schemas.pipelines import Pipeline, PipelineList
from app.schemas.workers import Worker

logger = logging.getLogger(__name__)

_INTERNAL_COLUMNS = {"idempotency_scope", "request_hash", "pid", "dispatched_at", "dispatch_count"}
_JOB_COLUMNS = [column for column in jobs.c if column.name not in _INTERNAL_COLUMNS]
_TERMINAL = [status.value for status in TERMINAL_STATUSES]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Visibility:
    """Whose jobs a caller may see: one user's, or everyone's (admins, no auth)."""

    user_id: str | None = None
    sees_all: bool = True

    def clause(self) -> Any:
        return jobs.c.user_id == self.user_id if not self.sees_all else True


EVERYONE = Visibility()


@dataclass(frozen=True)
class Claim:
    """A job this worker now owns for one attempt."""

    job: Job
    attempt: int


@dataclass
class RunProgress:
    completed_nodes: list[str] = field(default_factory=list)
    total_nodes: int | None = None
    running_nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as the runner saw it."""

    status: JobStatus
    exit_code: int | None
    execution_time: float | None
    error_message: str | None
    results: dict[str, Any]


class JobManager:
    """Owns every SQL statement and every state transition of a job."""

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

    # --- submit and read -------------------------------------------------

    def create_job(
        self,
        *,
        request: JobCreate,
        user_id: str | None,
        idempotency_key: str | None = None,
        dispatched: bool,
    ) -> tuple[Job, bool]:
        """Record a pending job; returns it and whether it is new (not an idempotent repeat)."""
        request_hash = _request_hash(request)
        # ':' cannot occur in a user name (API_KEYS splits on it); PostgreSQL refuses NUL.
        scope = f"{user_id or ''}:{idempotency_key}" if idempotency_key else None
        now = utcnow()
        job_id = str(uuid.uuid4())
        values: dict[str, Any] = {
            "id": job_id,
            "pipeline_name": request.pipeline_name,
            "parameters": request.parameters,
            "options": request.run_options().model_dump(mode="json"),
            "queue": request.queue,
            "timeout_seconds": request.timeout_seconds,
            "status": JobStatus.pending.value,
            "user_id": user_id,
            "idempotency_scope": scope,
            "request_hash": request_hash,
            "created_at": now,
            "completed_nodes": [],
            "attempt": 0,
            "cancel_requested": False,
            "output_bytes": 0,
            "output_dropped_bytes": 0,
            "dispatched_at": now if dispatched else None,
            "dispatch_count": 1 if dispatched else 0,
        }
        try:
            with self._write() as connection:
                row = connection.execute(
                    insert(jobs).values(**values).returning(*_JOB_COLUMNS)
                ).one()
                _record_event(connection, job_id, JobStatus.pending, "submitted", 0, None, now)
        except IntegrityError:
            if scope is None:
                raise
            return self._idempotent_repeat(scope=scope, request_hash=request_hash), False
        logger.info(
            "job %s recorded (pipeline %s)",
            job_id,
            request.pipeline_name,
            extra={"job_id": job_id},
        )
        return _to_job(row._mapping), True

    def _idempotent_repeat(self, *, scope: str, request_hash: str) -> Job:
        with self._read() as connection:
            row = connection.execute(
                select(*_JOB_COLUMNS, jobs.c.request_hash).where(jobs.c.idempotency_scope == scope)
            ).one()
        if row.request_hash != request_hash:
            raise JobConflict("Idempotency-Key was already used with a different request body")
        return _to_job(row._mapping)

    def get_job(self, *, job_id: str, visibility: Visibility = EVERYONE) -> Job:
        """The job, or `JobNotFound` if it does not exist or the caller may not see it."""
        with self._read() as connection:
            row = connection.execute(
                select(*_JOB_COLUMNS).where(jobs.c.id == job_id, visibility.clause())
            ).one_or_none()
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        return _to_job(row._mapping)

    def _get(self, job_id: str) -> Job:
        return self.get_job(job_id=job_id)

    def list_jobs(
        self,
        *,
        visibility: Visibility = EVERYONE,
        status: JobStatus | None = None,
        pipeline_name: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first, keyset-paginated by an opaque cursor."""
        query = select(*_JOB_COLUMNS).where(visibility.clause())
        if status is not None:
            query = query.where(jobs.c.status == status.value)
        if pipeline_name is not None:
            query = query.where(jobs.c.pipeline_name == pipeline_name)
        if cursor is not None:
            created_at, job_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    jobs.c.created_at < created_at,
                    and_(jobs.c.created_at == created_at, jobs.c.id < job_id),
                )
            )
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        with self._read() as connection:
            rows = connection.execute(query).all()
        items = [_to_job(row._mapping) for row in rows[:limit]]
        next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
        return items, next_cursor

    def list_events(self, *, job_id: str, visibility: Visibility = EVERYONE) -> list[JobEvent]:
        """The job's state transitions, oldest first."""
        self.get_job(job_id=job_id, visibility=visibility)
        with self._read() as connection:
            rows = connection.execute(
                select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
            ).all()
        return [
            JobEvent(
                at=row.at,
                status=row.status,
                reason=row.reason,
                attempt=row.attempt,
                worker=row.worker,
            )
            for row in rows
        ]

    # --- dispatch ----------------------------------------------------------

    def jobs_to_dispatch(
        self, *, redispatch_after: timedelta, limit: int = 200
    ) -> list[tuple[Job, bool]]:
        """Pending jobs never published, or published long ago and still unclaimed.

        Each comes with whether it was published before (a re-publish)."""
        now = utcnow()
        with self._read() as connection:
            rows = connection.execute(
                select(*_JOB_COLUMNS, jobs.c.dispatched_at, jobs.c.dispatch_count)
                .where(
                    jobs.c.status == JobStatus.pending.value,
                    jobs.c.cancel_requested.is_(False),
                    or_(
                        jobs.c.dispatched_at.is_(None),
                        jobs.c.dispatched_at < now - redispatch_after,
                    ),
                )
                .order_by(jobs.c.created_at)
                .limit(limit)
            ).all()
        due = []
        for row in rows:
            # Back off exponentially: a long queue is not a lost message.
            backoff = redispatch_after * 2 ** min(max(row.dispatch_count - 1, 0), 6)
            if row.dispatched_at is None or row.dispatched_at <= now - backoff:
                due.append((_to_job(row._mapping), row.dispatched_at is not None))
        return due

    def mark_dispatched(self, *, job_id: str) -> None:
        """Note that a message for this job was just published."""
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.pending.value)
                .values(dispatched_at=utcnow(), dispatch_count=jobs.c.dispatch_count + 1)
            )

    def forget_dispatches(self) -> None:
        """Treat every pending job as never published (the broker was replaced)."""
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.status == JobStatus.pending.value)
                .values(dispatched_at=None, dispatch_count=0)
            )

    def mark_undispatched(self, *, job_id: str) -> None:
        """The publish failed: leave the job for the dispatcher."""
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.pending.value)
                .values(dispatched_at=None)
            )

    # --- the worker's side ---------------------------------------------------

    def claim_job(self, *, job_id: str, worker: str) -> Claim | None:
        """pending → running for exactly one caller; None if it is not ours to run."""
        now = utcnow()
        with self._write() as connection:
            row = connection.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.status == JobStatus.pending.value,
                    jobs.c.cancel_requested.is_(False),
                )
                .values(
                    status=JobStatus.running.value,
                    attempt=jobs.c.attempt + 1,
                    worker=worker,
                    started_at=now,
                    heartbeat_at=now,
                )
                .returning(*_JOB_COLUMNS)
            ).one_or_none()
            if row is None:
                return None
            _record_event(
                connection, job_id, JobStatus.running, "claimed", row.attempt, worker, now
            )
        return Claim(job=_to_job(row._mapping), attempt=row.attempt)

    def heartbeat(self, *, job_id: str, attempt: int) -> str | None:
        """Refresh the job's heartbeat; returns why the run must stop, or None to go on."""
        with self._write() as connection:
            row = connection.execute(
                update(jobs)
                .where(*_owned(job_id, attempt))
                .values(heartbeat_at=utcnow())
                .returning(jobs.c.cancel_requested, jobs.c.cancel_reason)
            ).one_or_none()
        if row is None:
            return "the job is no longer owned by this attempt"
        if row.cancel_requested:
            return str(row.cancel_reason or "cancelled")
        return None

    def append_output(
        self, *, job_id: str, attempt: int, offset: int, data: bytes, progress: RunProgress
    ) -> None:
        """Store a batch of output at its logical offset, keeping head and tail under the cap."""
        pieces = self._capped_pieces(offset, data)
        dropped = len(data) - sum(len(piece) for _, piece in pieces)
        with self._write() as connection:
            updated = connection.execute(
                update(jobs)
                .where(*_owned(job_id, attempt))
                .values(
                    output_bytes=offset + len(data),
                    output_dropped_bytes=jobs.c.output_dropped_bytes + dropped,
                    completed_nodes=list(progress.completed_nodes),
                    running_nodes=list(progress.running_nodes),
                    total_nodes=progress.total_nodes,
                    heartbeat_at=utcnow(),
                )
            ).rowcount
            if not updated:
                return
            if pieces:
                connection.execute(
                    insert(job_output),
                    [
                        {"job_id": job_id, "offset": at, "size": len(piece), "data": piece}
                        for at, piece in pieces
                    ],
                )
            self._roll_tail(connection, job_id, end=offset + len(data))

    def _capped_pieces(self, offset: int, data: bytes) -> list[tuple[int, bytes]]:
        pieces = []
        end = offset + len(data)
        if offset < self._head_limit:
            head = data[: self._head_limit - offset]
            pieces.append((offset, head))
            offset += len(head)
            data = data[len(head) :]
        if data:
            keep_from = max(offset, end - self._tail_limit)
            pieces.append((keep_from, data[keep_from - offset :]))
        return [(at, piece) for at, piece in pieces if piece]

    def _roll_tail(self, connection: Connection, job_id: str, *, end: int) -> None:
        """Drop tail chunks that fell out of the last `tail_limit` bytes."""
        keep_from = end - self._tail_limit
        if keep_from <= self._head_limit:
            return
        in_tail = (
            job_output.c.job_id == job_id,
            job_output.c.offset >= self._head_limit,
            job_output.c.offset < keep_from,
        )
        # Whole stale chunks go in one statement; only a chunk straddling `keep_from`
        # is read back, to keep its newer part.
        gone = and_(*in_tail, job_output.c.offset + job_output.c.size <= keep_from)
        dropped = int(
            connection.execute(
                select(func.coalesce(func.sum(job_output.c.size), 0)).where(gone)
            ).scalar_one()
        )
        connection.execute(delete(job_output).where(gone))
        straddling = connection.execute(
            select(job_output.c.offset, job_output.c.size, job_output.c.data).where(*in_tail)
        ).one_or_none()
        if straddling is not None:
            kept = straddling.data[keep_from - straddling.offset :]
            dropped += straddling.size - len(kept)
            connection.execute(
                delete(job_output).where(
                    job_output.c.job_id == job_id, job_output.c.offset == straddling.offset
                )
            )
            connection.execute(
                insert(job_output).values(
                    job_id=job_id, offset=keep_from, size=len(kept), data=kept
                )
            )
        if dropped:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(output_dropped_bytes=jobs.c.output_dropped_bytes + dropped)
            )

    def finish_job(self, *, job_id: str, attempt: int, outcome: RunOutcome) -> bool:
        """running → terminal, only for the attempt that claimed the job."""
        now = utcnow()
        with self._write() as connection:
            worker = connection.execute(
                update(jobs)
                .where(*_owned(job_id, attempt))
                .values(
                    status=outcome.status.value,
                    completed_at=now,
                    running_nodes=[],
                    exit_code=outcome.exit_code,
                    execution_time=outcome.execution_time,
                    error_message=outcome.error_message,
                    results=outcome.results,
                )
                .returning(jobs.c.worker)
            ).scalar_one_or_none()
            if worker is None:
                return False
            _record_event(
                connection, job_id, outcome.status, outcome.error_message, attempt, worker, now
            )
        logger.info(
            "job %s %s (exit code %s)",
            job_id,
            outcome.status.value,
            outcome.exit_code,
            extra={"job_id": job_id},
        )
        return True

    # --- control -------------------------------------------------------------

    def request_cancel(self, *, job_id: str, reason: str, visibility: Visibility = EVERYONE) -> Job:
        """Cancel a pending job at once, or ask the attempt running it to stop."""
        for _ in range(5):
            job = self.get_job(job_id=job_id, visibility=visibility)
            if job.status.is_terminal:
                raise JobConflict(f"job {job_id} is already {job.status.value}")
            if self._cancel_if_still(job.status, job_id=job_id, reason=reason):
                return self._get(job_id)
        raise JobConflict(f"job {job_id} changed state while being cancelled; try again")

    def _cancel_if_still(self, status: JobStatus, *, job_id: str, reason: str) -> bool:
        now = utcnow()
        still = (jobs.c.id == job_id, jobs.c.status == status.value)
        with self._write() as connection:
            if status == JobStatus.running:
                return bool(
                    connection.execute(
                        update(jobs)
                        .where(*still)
                        .values(cancel_requested=True, cancel_reason=reason)
                    ).rowcount
                )
            cancelled = connection.execute(
                update(jobs)
                .where(*still)
                .values(
                    status=JobStatus.cancelled.value,
                    completed_at=now,
                    cancel_requested=True,
                    cancel_reason=reason,
                    error_message=reason,
                )
            ).rowcount
            if cancelled:
                _record_event(connection, job_id, JobStatus.cancelled, reason, 0, None, now)
        return bool(cancelled)

    def fail_lost_jobs(self, *, stale_before: datetime, reason: str) -> list[str]:
        """Fail running jobs whose heartbeat is older than `stale_before`."""
        with self._read() as connection:
            rows = connection.execute(
                select(jobs.c.id, jobs.c.attempt, jobs.c.worker).where(
                    jobs.c.status == JobStatus.running.value, jobs.c.heartbeat_at < stale_before
                )
            ).all()
        return [row.id for row in rows if self._fail_lost(row.id, row.attempt, row.worker, reason)]

    def fail_jobs_of_worker(self, *, worker: str, reason: str) -> list[str]:
        """Fail the running jobs a (re)starting worker had claimed: it no longer runs them."""
        with self._read() as connection:
            rows = connection.execute(
                select(jobs.c.id, jobs.c.attempt).where(
                    jobs.c.status == JobStatus.running.value, jobs.c.worker == worker
                )
            ).all()
        return [row.id for row in rows if self._fail_lost(row.id, row.attempt, worker, reason)]

    def _fail_lost(self, job_id: str, attempt: int, worker: str | None, reason: str) -> bool:
        message = f"worker lost: {reason}" + (f" ({worker})" if worker else "")
        outcome = RunOutcome(
            status=JobStatus.failed,
            exit_code=None,
            execution_time=None,
            error_message=message,
            results={"error": message},
        )
        finished = self.finish_job(job_id=job_id, attempt=attempt, outcome=outcome)
        if finished:
            logger.warning("job %s failed: %s", job_id, message, extra={"job_id": job_id})
        return finished

    # --- output --------------------------------------------------------------

    def read_output(
        self, *, job_id: str, offset: int, limit: int, visibility: Visibility = EVERYONE
    ) -> LogChunk:
        """Output from `offset` (skipping any dropped gap), cut at UTF-8 character boundaries."""
        job = self.get_job(job_id=job_id, visibility=visibility)
        with self._read() as connection:
            rows = connection.execute(
                select(job_output.c.offset, job_output.c.data)
                .where(
                    job_output.c.job_id == job_id,
                    job_output.c.offset + job_output.c.size > offset,
                )
                .order_by(job_output.c.offset)
            ).all()
        # Read a little past `limit` to see whether it cuts a character in two.
        start, data, resume_at = _contiguous(rows, offset=offset, limit=limit + 3)
        skip = _leading_continuation_bytes(data)  # never start inside a character
        start, data = start + skip, data[skip:]
        next_offset = None
        unfinished = _incomplete_tail(data)
        if len(data) > limit:
            data = data[: _cut_at_character(data, limit)]
        elif resume_at is not None and unfinished:
            # A dropped gap follows: a character cut by it can never complete; skip it.
            data = data[: len(data) - unfinished]
            next_offset = resume_at
        elif not job.status.is_terminal:
            data = data[: len(data) - unfinished]  # the rest is still coming
        if next_offset is None:
            next_offset = start + len(data)
        complete = job.status.is_terminal and next_offset >= job.output_bytes
        return LogChunk(
            offset=start,
            next_offset=next_offset,
            data=data.decode("utf-8", "replace"),
            complete=complete,
        )

    # --- workers and projects ------------------------------------------------

    def record_worker(
        self,
        *,
        name: str,
        hostname: str,
        queues: Sequence[str],
        concurrency: int | None,
        pid: int,
        project_path: str,
        kedro_python: str,
        kedro_version: str | None,
        project_ok: bool,
        project_error: str | None,
        runner_mode: str,
    ) -> None:
        """Announce a (re)started worker."""
        now = utcnow()
        values = {
            "hostname": hostname,
            "queues": list(queues),
            "concurrency": concurrency,
            "pid": pid,
            "project_path": project_path,
            "kedro_python": kedro_python,
            "kedro_version": kedro_version,
            "project_ok": project_ok,
            "project_error": project_error,
            "started_at": now,
            "last_seen_at": now,
            "stopped_at": None,
            "runner_mode": runner_mode,
            "warm_error": None,
        }
        self._upsert(workers.c.name, name, values)

    def touch_worker(self, *, name: str) -> None:
        """The worker's heartbeat."""
        self._update_worker(name, last_seen_at=utcnow())

    def note_warm_error(self, *, name: str, error: str | None) -> None:
        """Record why warming failed on this worker (None once it works again)."""
        self._update_worker(name, warm_error=error)

    def stop_worker(self, *, name: str) -> None:
        self._update_worker(name, stopped_at=utcnow())

    def _update_worker(self, name: str, **values: Any) -> None:
        with self._write() as connection:
            connection.execute(update(workers).where(workers.c.name == name).values(**values))

    def _upsert(self, key: Any, value: str, values: dict[str, Any]) -> None:
        """Update the row whose `key` column is `value`, or insert it (portable SQL)."""
        with self._write() as connection:
            if not connection.execute(
                update(key.table).where(key == value).values(**values)
            ).rowcount:
                connection.execute(insert(key.table).values({key.name: value, **values}))

    def list_workers(self, *, lost_after: timedelta) -> list[Worker]:
        """Every worker seen, with its running jobs counted now; alive if heard within
        `lost_after`."""
        alive_after = utcnow() - lost_after
        running = (
            select(func.count())
            .where(jobs.c.worker == workers.c.name, jobs.c.status == JobStatus.running.value)
            .scalar_subquery()
        )
        with self._read() as connection:
            rows = connection.execute(
                select(workers, running.label("running_jobs")).order_by(workers.c.name)
            ).all()
        return [
            Worker(
                **{k: v for k, v in row._mapping.items() if k in Worker.model_fields},
                alive=row.stopped_at is None and row.last_seen_at > alive_after,
            )
            for row in rows
        ]

    def record_project(
        self,
        *,
        queue: str,
        pipelines: list[Pipeline],
        project_path: str,
        kedro_version: str | None,
        worker: str,
    ) -> None:
        """Store the pipelines a worker found in the project it serves `queue` with."""
        values = {
            "pipelines": [p.model_dump(mode="json") for p in pipelines],
            "project_path": project_path,
            "kedro_version": kedro_version,
            "worker": worker,
            "refreshed_at": utcnow(),
        }
        self._upsert(queue_projects.c.queue, queue, values)

    def get_project(self, *, queue: str) -> PipelineList | None:
        """The last snapshot of the project behind `queue`, or None if none was reported."""
        with self._read() as connection:
            row = connection.execute(
                select(queue_projects).where(queue_projects.c.queue == queue)
            ).one_or_none()
        if row is None:
            return None
        return PipelineList(
            items=[Pipeline.model_validate(item) for item in row.pipelines],
            refreshed_at=row.refreshed_at,
            queue=queue,
            kedro_version=row.kedro_version,
            worker=row.worker,
        )

    def known_queues(self) -> set[str]:
        """Queues some worker has served, at any time."""
        with self._read() as connection:
            rows = connection.execute(select(workers.c.queues)).all()
        return {queue for row in rows for queue in row.queues}

    # --- operations ---------------------------------------------------------

    def ping(self) -> None:
        """A round trip to the database; raises if it does not answer."""
        with self._read() as connection:
            connection.execute(select(literal(1))).scalar_one()

    def job_counts(self) -> list[tuple[str, str, str, int]]:
        """(status, pipeline, queue, count) for every combination present."""
        with self._read() as connection:
            rows = connection.execute(
                select(jobs.c.status, jobs.c.pipeline_name, jobs.c.queue, func.count()).group_by(
                    jobs.c.status, jobs.c.pipeline_name, jobs.c.queue
                )
            ).all()
        return [(row[0], row[1], row[2], int(row[3])) for row in rows]

    def duration_buckets(self, bounds: Sequence[float]) -> dict[str, tuple[list[int], int, float]]:
        """Per pipeline: cumulative counts of finished runs under each bound, count, sum."""
        columns = [func.sum(case((jobs.c.execution_time <= bound, 1), else_=0)) for bound in bounds]
        with self._read() as connection:
            rows = connection.execute(
                select(
                    jobs.c.pipeline_name, func.count(), func.sum(jobs.c.execution_time), *columns
                )
                .where(jobs.c.execution_time.is_not(None))
                .group_by(jobs.c.pipeline_name)
            ).all()
        return {
            row[0]: ([int(value or 0) for value in row[3:]], int(row[1]), float(row[2] or 0))
            for row in rows
        }

    def purge_finished(self, *, completed_before: datetime, batch: int = 500) -> int:
        """Delete one batch of terminal jobs (with output and events) finished before a time."""
        with self._write() as connection:
            ids = (
                connection.execute(
                    select(jobs.c.id)
                    .where(jobs.c.status.in_(_TERMINAL), jobs.c.completed_at < completed_before)
                    .order_by(jobs.c.completed_at)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if ids:
                connection.execute(delete(job_output).where(job_output.c.job_id.in_(ids)))
                connection.execute(delete(job_events).where(job_events.c.job_id.in_(ids)))
                connection.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        return len(ids)


def _owned(job_id: str, attempt: int) -> tuple[Any, ...]:
    return (
        jobs.c.id == job_id,
        jobs.c.status == JobStatus.running.value,
        jobs.c.attempt == attempt,
    )


def _record_event(
    connection: Connection,
    job_id: str,
    status: JobStatus,
    reason: str | None,
    attempt: int,
    worker: str | None,
    at: datetime,
) -> None:
    connection.execute(
        insert(job_events).values(
            job_id=job_id,
            at=at,
            status=status.value,
            reason=reason,
            attempt=attempt,
            worker=worker,
        )
    )


def _to_job(row: Any) -> Job:
    options = RunOptions.model_validate(row["options"])
    return Job(
        **options.model_dump(),
        id=row["id"],
        pipeline_name=row["pipeline_name"],
        parameters=row["parameters"],
        status=JobStatus(row["status"]),
        user_id=row["user_id"],
        queue=row["queue"],
        timeout_seconds=row["timeout_seconds"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        execution_time=row["execution_time"],
        exit_code=row["exit_code"],
        error_message=row["error_message"],
        progress=Progress(
            completed_nodes=len(row["completed_nodes"]),
            total_nodes=row["total_nodes"],
            completed_node_names=row["completed_nodes"],
            running_node_names=row["running_nodes"] or [],
        ),
        results=row["results"],
        worker=row["worker"],
        attempt=row["attempt"],
        cancel_requested=row["cancel_requested"],
        heartbeat_at=row["heartbeat_at"],
        output_bytes=row["output_bytes"],
        output_dropped_bytes=row["output_dropped_bytes"],
    )


def _request_hash(request: JobCreate) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InvalidCursor(ValueError):
    """A cursor this API did not hand out."""


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError for anything that is not a cursor this API handed out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(job_id, str):
            raise TypeError("cursor fields are not strings")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise TypeError("cursor time has no offset")
        return moment.astimezone(UTC), str(uuid.UUID(job_id))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursor("invalid cursor") from exc


def _contiguous(rows: Sequence[Any], *, offset: int, limit: int) -> tuple[int, bytes, int | None]:
    """Join stored chunks from `offset` (or the first kept byte after it) up to `limit` bytes.

    Also returns where output resumes if the joined run ends at a dropped gap.
    """
    if not rows:
        return offset, b"", None
    start = max(offset, rows[0].offset)
    parts: list[bytes] = []
    position = start
    for row in rows:
        if row.offset > position:
            return start, b"".join(parts), int(row.offset)
        if position - start >= limit:
            break
        piece = row.data[position - row.offset :][: limit - (position - start)]
        parts.append(piece)
        position += len(piece)
    return start, b"".join(parts), None


def _cut_at_character(data: bytes, limit: int) -> int:
    """The longest prefix within `limit` that ends on a character boundary (at least one char)."""
    cut = limit
    while cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    if cut == 0:  # a single character wider than `limit`: return it whole
        cut = 1
        while cut < len(data) and data[cut] & 0xC0 == 0x80:
            cut += 1
    return cut


def _leading_continuation_bytes(data: bytes) -> int:
    count = 0
    while count < min(3, len(data)) and data[count] & 0xC0 == 0x80:
        count += 1
    return count


def _incomplete_tail(data: bytes) -> int:
    """How many trailing bytes form an unfinished UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue
        if byte & 0x80 == 0:
            return 0
        width = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return back if back < width else 0
    return 0
