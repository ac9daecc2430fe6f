"""Reruns of finished jobs: from their start, or from where they failed."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import JobDep, SubmitterDep, VisibilityDep
from app.api.errors import error
from app.ops.rerun import rerun_job
from app.schemas.jobs import Job
from app.schemas.rerun import JobRerun

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "/{job_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: error("Unknown job, or not yours."),
        409: error("The job is not finished yet."),
        422: error("Nothing to resume, or options the pipeline does not have."),
    },
)
def rerun(
    job: JobDep,
    response: Response,
    submitter: SubmitterDep,
    visibility: VisibilityDep,
    body: JobRerun | None = None,
) -> Job:
    """A new job repeating this one (`rerun_of`); from failure it runs only what did not
    complete, starting at the nearest nodes with persisted inputs (`from_nodes`)."""
    new = rerun_job(submitter, job=job, body=body or JobRerun(), user_id=visibility.user_id)
    response.headers["Location"] = f"/api/v1/jobs/{new.id}"
    return new
