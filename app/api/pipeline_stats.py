"""A pipeline's recent runs and their aggregates: success rate, p50 and p95 duration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import JobManagerDep, VisibilityDep
from app.schemas.jobs import PipelineName, QueueName
from app.schemas.stats import PipelineStats

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("/{name}/stats")
def pipeline_stats(
    name: PipelineName,
    manager: JobManagerDep,
    visibility: VisibilityDep,
    queue: Annotated[QueueName | None, Query(description="Only runs on this queue.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="How many recent runs.")] = 50,
) -> PipelineStats:
    """The pipeline's most recent runs you may see, newest first, with their aggregates."""
    runs = manager.recent_runs(pipeline_name=name, queue=queue, limit=limit, visibility=visibility)
    return PipelineStats.of(name, runs)
