"""Jobs: submit, read, list, cancel, output and state transitions."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import JobDep, JobManagerDep, SettingsDep, SubmitterDep, VisibilityDep
from app.api.errors import error
from app.api.streams import log_stream, status_stream
from app.ops.job_views import MAX_WAIT_SECONDS, read_job, wait_for_job
from app.ops.waiting import ChangeHub
from app.ops.webhooks import check_notify
from app.schemas.jobs import (
    Job,
    JobCreate,
    JobEventList,
    JobList,
    JobStatus,
    LogChunk,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_LOG_READ = 4 * 1024 * 1024
SSE_DESCRIPTION = (
    "With `Accept: text/event-stream` or `?follow=true`: `event: log` with the text as "
    "`data` and the next offset as `id` (send it back as `Last-Event-ID` to resume), then "
    "one `event: end` whose `data` is the terminal job."
)
EVENTS_SSE_DESCRIPTION = (
    "With `Accept: text/event-stream` or `?follow=true`: each transition as `event: status` "
    "whose `data` is the event and whose `id` is its sequence number (send it back as "
    "`Last-Event-ID` to resume), then one `event: end` whose `data` is the terminal job."
)
IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=200, description="Makes a submit safe to retry.")
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": Job, "description": "An idempotent repeat: the first job."},
        400: error("The body is not UTF-8 text."),
        409: error("Idempotency-Key reused with a different body."),
        413: error("Body over 1 MiB."),
        422: error("Invalid request, or an unknown pipeline or queue (the message names them)."),
        429: error("The caller has max_pending_per_user pending jobs (see Retry-After)."),
    },
)
def submit_job(
    body: JobCreate,
    response: Response,
    submitter: SubmitterDep,
    visibility: VisibilityDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Record a job and enqueue it; poll the `Location` it answers with."""
    check_notify(body.notify, settings)
    job, created = submitter.submit_job(
        request=body, user_id=visibility.user_id, idempotency_key=idempotency_key
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return job


@router.get("", responses={422: error("Invalid filters, limit or cursor.")})
def list_jobs(
    manager: JobManagerDep,
    visibility: VisibilityDep,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    pipeline_name: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JobList:
    """Jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    items, next_cursor = manager.list_jobs(
        visibility=visibility,
        status=job_status,
        pipeline_name=pipeline_name,
        limit=limit,
        cursor=cursor,
    )
    return JobList(items=items, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=Job, responses={404: error("Unknown job, or not yours.")})
async def get_job(
    job_id: UUID,
    request: Request,
    visibility: VisibilityDep,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_WAIT_SECONDS,
            description="Answer as soon as the job is terminal, or with its state after "
            "this many seconds (at most 60).",
        ),
    ] = None,
) -> Response:
    """One job: status, progress and, once it is terminal, results."""
    manager = request.app.state.manager
    if wait:
        hub: ChangeHub = request.app.state.hub
        job = await wait_for_job(
            manager, hub, job_id=str(job_id), visibility=visibility, seconds=wait
        )
    else:
        job = await read_job(manager, job_id=str(job_id), visibility=visibility)
    # Serialized once, here: FastAPI would validate and serialize the model again.
    return Response(job.model_dump_json(), media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: error("Unknown job, or not yours."),
        409: error("The job is already terminal."),
    },
)
def cancel_job(job: JobDep, manager: JobManagerDep, visibility: VisibilityDep) -> Job:
    """Cancel a pending job, or stop a running one (its whole process tree)."""
    who = visibility.user_id or "an API client"
    return manager.request_cancel(
        job_id=job.id, reason=f"cancelled by {who}", visibility=visibility
    )


@router.get(
    "/{job_id}/logs",
    response_model=LogChunk,
    responses={
        200: {"content": {"text/event-stream": {"description": SSE_DESCRIPTION}}},
        404: error("Unknown job, or not yours."),
        429: error("Too many logs followed at once by this user."),
    },
)
async def get_logs(
    request: Request,
    job: JobDep,
    manager: JobManagerDep,
    visibility: VisibilityDep,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_READ)] = 1024 * 1024,
    follow: Annotated[bool, Query(description="Stream as Server-Sent Events.")] = False,
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,19}$")] = None,
) -> Response:
    """The run's combined stdout and stderr from a byte offset, or followed live (SSE)."""
    if follow or "text/event-stream" in request.headers.get("accept", ""):
        start = int(last_event_id) if last_event_id is not None else offset
        return log_stream(request.app.state, job_id=job.id, offset=start, visibility=visibility)
    chunk = await run_in_threadpool(
        manager.read_output, job_id=job.id, offset=offset, limit=limit, visibility=visibility
    )
    return JSONResponse(chunk.model_dump(mode="json"))


@router.get(
    "/{job_id}/events",
    response_model=JobEventList,
    responses={
        200: {"content": {"text/event-stream": {"description": EVENTS_SSE_DESCRIPTION}}},
        404: error("Unknown job, or not yours."),
        429: error("Too many streams followed at once by this user."),
    },
)
async def get_events(
    request: Request,
    job_id: UUID,
    visibility: VisibilityDep,
    follow: Annotated[bool, Query(description="Stream as Server-Sent Events.")] = False,
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,19}$")] = None,
) -> Response:
    """The job's state transitions, oldest first, or followed live (SSE) until it ends."""
    manager = request.app.state.manager
    job = await read_job(manager, job_id=str(job_id), visibility=visibility)
    if follow or "text/event-stream" in request.headers.get("accept", ""):
        after = int(last_event_id) if last_event_id is not None else 0
        return status_stream(request.app.state, job_id=job.id, after=after, visibility=visibility)
    events = await run_in_threadpool(manager.list_events, job_id=job.id, visibility=visibility)
    return Response(JobEventList(items=events).model_dump_json(), media_type="application/json")
