"""Pipelines of the Kedro project behind each queue, as its workers reported them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.deps import AdminDep, BrokerDep, JobManagerDep, SubmitterDep
from app.api.errors import error
from app.core.config import DEFAULT_QUEUE
from app.core.exceptions import PipelineNotFound
from app.schemas.jobs import QueueName
from app.schemas.pipelines import Pipeline, PipelineList

router = APIRouter(prefix="/pipelines", tags=["pipelines"])
QueueQuery = Annotated[QueueName, Query(description="The queue whose project to read.")]


@router.get("")
def list_pipelines(manager: JobManagerDep, queue: QueueQuery = DEFAULT_QUEUE) -> PipelineList:
    """Pipelines and nodes; `refreshed_at` is null until a worker of the queue reports."""
    project = manager.get_project(queue=queue)
    return project or PipelineList(items=[], refreshed_at=None, queue=queue)


@router.post(
    "/refresh",
    status_code=status.HTTP_202_ACCEPTED,
    responses={403: error("Needs an admin key."), 503: error("The broker is unavailable.")},
)
def refresh_pipelines(
    broker: BrokerDep,
    submitter: SubmitterDep,
    _admin: AdminDep,
    queue: QueueQuery = DEFAULT_QUEUE,
) -> dict[str, str]:
    """Ask a worker of the queue to inspect its Kedro project again (admins only)."""
    broker.request_refresh(queue)
    submitter.forget_project(queue)
    return {"status": "requested", "queue": queue}


@router.get("/{name}", responses={404: error("Unknown pipeline on that queue.")})
def get_pipeline(name: str, manager: JobManagerDep, queue: QueueQuery = DEFAULT_QUEUE) -> Pipeline:
    """One pipeline with its nodes."""
    project = manager.get_project(queue=queue)
    for pipeline in project.items if project else []:
        if pipeline.name == name:
            return pipeline
    raise PipelineNotFound(f"pipeline {name!r} not found on queue {queue!r}")
