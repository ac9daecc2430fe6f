"""Row helpers shared by the store's modules: job columns, ownership, events, conversion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert

from app.schemas.jobs import TERMINAL_STATUSES, Job, JobStatus, Progress, RunOptions
from app.schemas.retry import RetryPolicy
from app.store.tables import job_events, jobs

_INTERNAL_COLUMNS = {
    "idempotency_scope",
    "request_hash",
    "pid",
    "dispatched_at",
    "dispatch_count",
    "admitted_at",
    "admission_lane",
}
JOB_COLUMNS = [column for column in jobs.c if column.name not in _INTERNAL_COLUMNS]
TERMINAL = [status.value for status in TERMINAL_STATUSES]


# The job is still the running attempt's: pass `owner(job_id, attempt)` with it. A run's
# statements are built once with bound parameters, not per call: building one (and its
# cache key) cost more than running it.
OWNED = (
    jobs.c.id == bindparam("job_id"),
    jobs.c.status == JobStatus.running.value,
    jobs.c.attempt == bindparam("owner_attempt"),
)
_INSERT_EVENT = insert(job_events)


def owner(job_id: str, attempt: int) -> dict[str, Any]:
    """The values of `OWNED`'s parameters."""
    return {"job_id": job_id, "owner_attempt": attempt}


def record_event(
    connection: Connection,
    job_id: str,
    status: JobStatus,
    reason: str | None,
    attempt: int,
    worker: str | None,
    at: datetime,
) -> None:
    connection.execute(_INSERT_EVENT, event_values(job_id, status, reason, attempt, worker, at))


def event_values(
    job_id: str,
    status: JobStatus,
    reason: str | None,
    attempt: int,
    worker: str | None,
    at: datetime,
) -> dict[str, Any]:
    """One `job_events` row, for one insert or a batch of them."""
    return {
        "job_id": job_id,
        "at": at,
        "status": status.value,
        "reason": reason,
        "attempt": attempt,
        "worker": worker,
    }


def to_job(row: Any) -> Job:
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
        rerun_of=row["rerun_of"],
        retry=RetryPolicy.model_validate(row["retry"]) if row["retry"] else RetryPolicy(),
        next_attempt_at=row["next_attempt_at"],
        resume_from=row["resume_from"],
        planned_nodes=row["planned_nodes"],
        priority=row["priority"],
        concurrency_key=row["concurrency_key"],
    )
