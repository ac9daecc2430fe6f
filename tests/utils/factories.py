"""Jobs in a given state, made through the real JobManager (no SQL of their own)."""

from __future__ import annotations

from typing import Any

from app.schemas.jobs import Job, JobCreate, JobStatus
from app.store import JobManager, RunOutcome, RunProgress

WORKER = "worker-a"


def submit(
    manager: JobManager,
    pipeline_name: str = "arithmetic",
    *,
    dispatched: bool = False,
    **fields: Any,
) -> Job:
    """Record a pending job."""
    job, created = manager.create_job(
        request=JobCreate(pipeline_name=pipeline_name, **fields),
        user_id=None,
        dispatched=dispatched,
    )
    assert created
    return job


def running(
    manager: JobManager, pipeline_name: str = "arithmetic", worker: str = WORKER
) -> tuple[str, int]:
    """A job claimed by `worker`: its id and attempt."""
    job = submit(manager, pipeline_name)
    claim = manager.claim_job(job_id=job.id, worker=worker)
    assert claim is not None
    return job.id, claim.attempt


def outcome(status: JobStatus = JobStatus.completed, message: str | None = None) -> RunOutcome:
    """A run's end as the runner would report it."""
    code = 0 if status == JobStatus.completed else 1
    return RunOutcome(
        status=status,
        exit_code=code,
        execution_time=0.5,
        error_message=message,
        results={"exit_code": code, "execution_time": 0.5, "output_tail": []},
    )


def write(manager: JobManager, job_id: str, attempt: int, data: bytes, *, batch: int) -> None:
    """Append `data` in batches of `batch` bytes, as the runner flushes it."""
    for offset in range(0, len(data), batch):
        manager.append_output(
            job_id=job_id,
            attempt=attempt,
            offset=offset,
            data=data[offset : offset + batch],
            progress=RunProgress(),
        )
