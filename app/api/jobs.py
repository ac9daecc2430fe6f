"""Jobs: submit, read, list, cancel, output and state transitions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response, status

from app.api.deps import DispatcherDep, JobDep, JobManagerDep, VisibilityDep
from app.core.job_manager import decode_cursor
from app.schemas.jobs import Job, JobCreate, JobEventList, JobList, JobStatus, LogChunk

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_LOG_READ = 4 * 1024 * 1024
IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=200, description="Makes a submit safe to retry.")
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": Job, "description": "An idempotent repeat: the first job."},
        409: {"description": "Idempotency-Key reused with a different body."},
        413: {"description": "Body over 1 MiB."},
    },
)
def submit_job(
    body: JobCreate,
    response: Response,
    dispatcher: DispatcherDep,
    visibility: VisibilityDep,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Record a job and enqueue it; poll the `Location` it answers with."""
    job, created = dispatcher.submit_job(
        request=body, user_id=visibility.user_id, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return job


@router.get("")
def list_jobs(
    manager: JobManagerDep,
    visibility: VisibilityDep,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    pipeline_name: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JobList:
    """Jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid cursor") from None
    items, next_cursor = manager.list_jobs(
        visibility=visibility,
        status=job_status,
        pipeline_name=pipeline_name,
        limit=limit,
        cursor=cursor,
    )
    return JobList(items=items, next_cursor=next_cursor)


@router.get("/{job_id}", responses={404: {"description": "Unknown job."}})
def get_job(job: JobDep) -> Job:
    """One job: status, progress and, once it is terminal, results."""
    return job


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: {"description": "Unknown job."},
        409: {"description": "The job is already terminal."},
    },
)
def cancel_job(job: JobDep, manager: JobManagerDep, visibility: VisibilityDep) -> Job:
    """Cancel a pending job, or stop a running one (its whole process tree)."""
    who = visibility.user_id or "an API client"
    return manager.request_cancel(
        job_id=job.id, reason=f"cancelled by {who}", visibility=visibility
    )


@router.get("/{job_id}/logs", responses={404: {"description": "Unknown job."}})
def get_logs(
    job: JobDep,
    manager: JobManagerDep,
    visibility: VisibilityDep,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_READ)] = 1024 * 1024,
) -> LogChunk:
    """The run's combined stdout and stderr from a byte offset."""
    return manager.read_output(job_id=job.id, offset=offset, limit=limit, visibility=visibility)


@router.get("/{job_id}/events", responses={404: {"description": "Unknown job."}})
def get_events(job: JobDep, manager: JobManagerDep, visibility: VisibilityDep) -> JobEventList:
    """The job's state transitions, oldest first."""
    return JobEventList(items=manager.list_events(job_id=job.id, visibility=visibility))
