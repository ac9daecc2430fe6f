"""Submitting and reading jobs: the rows callers create, list and look at."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uuid_utils
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from app.core.exceptions import JobConflict, JobNotFound
from app.schemas.jobs import Job, JobCreate, JobEvent, JobStatus
from app.schemas.retry import RetryPolicy
from app.store.base import StoreBase
from app.store.bulk import BulkInsert
from app.store.cursors import decode_cursor, encode_cursor
from app.store.lanes import lane_of
from app.store.outbox import save_notify
from app.store.rows import JOB_COLUMNS, event_values, to_job
from app.store.tables import job_events, jobs
from app.store.types import EVERYONE, Visibility, utcnow

logger = logging.getLogger(__name__)

GROUP_INSERT_LOCK = 0x6B6A6F6273  # any constant; the same in every process
_INSERT_JOBS = BulkInsert(jobs)
_INSERT_EVENTS = BulkInsert(job_events)


class JobRecords(StoreBase):
    """Create, read and list jobs and their events."""

    def create_job(
        self,
        *,
        request: JobCreate,
        user_id: str | None,
        idempotency_key: str | None = None,
        dispatched: bool,
        retry: RetryPolicy | None = None,
        rerun_of: str | None = None,
        planned_nodes: list[str] | None = None,
        admitted: bool = True,
    ) -> tuple[Job, bool]:
        """Record a pending job; returns it and whether it is new (not an idempotent repeat).

        `retry` is the request's policy with the server's defaults applied; a rerun
        names the job it reruns and the nodes it will run. A job not `admitted` waits for
        the admission pass (`app/store/admission.py`)."""
        return self.create_job_from(
            NewJob(
                request=request,
                user_id=user_id,
                idempotency_key=idempotency_key,
                dispatched=dispatched,
                retry=retry,
                rerun_of=rerun_of,
                planned_nodes=planned_nodes,
                admitted=admitted,
            )
        )

    def create_job_from(self, new: NewJob) -> tuple[Job, bool]:
        """`create_job` with its arguments in one `NewJob`."""
        values = _job_values(new)
        try:
            return self._insert_jobs([new], [values])[0], True
        except IntegrityError:
            scope = values["idempotency_scope"]
            if scope is None:
                raise
            return self._idempotent_repeat(scope=scope, request_hash=values["request_hash"]), False

    def create_jobs(self, batch: Sequence[NewJob]) -> list[Job] | None:
        """Record pending jobs in one transaction: all of them, or none.

        None (nothing recorded) if an idempotency key of the batch is taken: then
        `create_job_from` tells a repeat from a new job, one at a time."""
        try:
            return self._insert_jobs(batch, [_job_values(new) for new in batch])
        except IntegrityError:
            if not any(new.idempotency_key for new in batch):
                raise
            return None

    def _insert_jobs(self, batch: Sequence[NewJob], values: list[dict[str, Any]]) -> list[Job]:
        dialect = self._engine.dialect
        job_rows = _INSERT_JOBS.convert(dialect, values)
        event_rows = _INSERT_EVENTS.convert(
            dialect,
            [
                event_values(row["id"], JobStatus.pending, "submitted", 0, None, row["created_at"])
                for row in values
            ],
        )
        with self._write() as connection:
            if len(values) > 1 and connection.dialect.name == "postgresql":
                # Each job's insert bumps its counter row in `job_counts`, a shard chosen by
                # its id: two groups at once (two API processes) would lock those rows in
                # different orders and deadlock. They take turns, as the rows make them.
                connection.execute(select(func.pg_advisory_xact_lock(GROUP_INSERT_LOCK)))
            job_rows.execute(connection)
            event_rows.execute(connection)
            for new, row in zip(batch, values, strict=True):
                save_notify(connection, row["id"], new.request.notify)
        _log_recorded(values)
        # Every column a job shows is in `values` or empty: nothing to read back.
        return [to_job(_UNSET | row) for row in values]

    def _idempotent_repeat(self, *, scope: str, request_hash: str) -> Job:
        with self._read() as connection:
            row = connection.execute(
                select(*JOB_COLUMNS, jobs.c.request_hash).where(jobs.c.idempotency_scope == scope)
            ).one()
        if row.request_hash != request_hash:
            raise JobConflict("Idempotency-Key was already used with a different request body")
        return to_job(row._mapping)

    def get_job(self, *, job_id: str, visibility: Visibility = EVERYONE) -> Job:
        """The job, or `JobNotFound` if it does not exist or the caller may not see it."""
        with self._read() as connection:
            row = connection.execute(
                select(*JOB_COLUMNS).where(jobs.c.id == job_id, visibility.clause())
            ).one_or_none()
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        return to_job(row._mapping)

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
        query = select(*JOB_COLUMNS).where(visibility.clause())
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
        items = [to_job(row._mapping) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
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


def _log_recorded(values: list[dict[str, Any]]) -> None:
    """One line per group (a line per job cost a tenth of a busy API's submit time)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    if len(values) == 1:
        row = values[0]
        logger.info(
            "job %s recorded (pipeline %s)",
            row["id"],
            row["pipeline_name"],
            extra={"job_id": row["id"]},
        )
        return
    ids = [row["id"] for row in values]
    logger.info("%d jobs recorded: %s", len(ids), " ".join(ids), extra={"job_ids": ids})


def _request_hash(request: JobCreate) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class NewJob:
    """A job to record, with what the submit decided about it (see `create_job`)."""

    request: JobCreate
    user_id: str | None
    dispatched: bool
    idempotency_key: str | None = None
    retry: RetryPolicy | None = None
    rerun_of: str | None = None
    planned_nodes: list[str] | None = None
    admitted: bool = True


_UNSET = {column.name: None for column in JOB_COLUMNS}


def _job_values(new: NewJob) -> dict[str, Any]:
    request = new.request
    # ':' cannot occur in a user name (API_KEYS splits on it); PostgreSQL refuses NUL.
    scope = f"{new.user_id or ''}:{new.idempotency_key}" if new.idempotency_key else None
    now = utcnow()
    return {
        # Time-ordered (UUID version 7): a group's ids land together at the end of the id
        # index instead of on a page each, and SQLite's commit writes fewer pages.
        "id": str(uuid_utils.uuid7()),
        "pipeline_name": request.pipeline_name,
        "parameters": request.parameters,
        "options": request.run_options().model_dump(mode="json"),
        "queue": request.queue,
        "timeout_seconds": request.timeout_seconds,
        "status": JobStatus.pending.value,
        "user_id": new.user_id,
        "idempotency_scope": scope,
        # Only an idempotent repeat is compared with its first request.
        "request_hash": _request_hash(request) if scope else None,
        "created_at": now,
        "completed_nodes": [],
        "attempt": 0,
        "cancel_requested": False,
        "output_bytes": 0,
        "output_dropped_bytes": 0,
        "dispatched_at": now if new.dispatched else None,
        "dispatch_count": 1 if new.dispatched else 0,
        "retry": new.retry.model_dump(mode="json") if new.retry is not None else None,
        "rerun_of": new.rerun_of,
        "planned_nodes": new.planned_nodes,
        "priority": request.priority,
        "concurrency_key": request.concurrency_key,
        "admitted_at": now if new.admitted else None,
        "admission_lane": lane_of(
            request.queue, request.pipeline_name, new.user_id, request.concurrency_key
        ),
    }
