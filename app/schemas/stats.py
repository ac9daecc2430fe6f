"""Aggregates over a pipeline's recent runs, for the dashboard's pipeline page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from app.schemas.jobs import JobStatus


class PipelineRun(BaseModel):
    id: str
    status: JobStatus
    queue: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    execution_time: float | None
    attempt: int


class PipelineStats(BaseModel):
    pipeline_name: str
    runs: list[PipelineRun] = Field(description="The most recent runs, newest first.")
    finished: int = Field(description="Runs among them that reached a terminal status.")
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None = Field(
        description="completed / finished (null when none finished)."
    )
    p50_seconds: float | None = Field(description="Median execution time of completed runs.")
    p95_seconds: float | None = Field(description="95th percentile, nearest rank.")

    @classmethod
    def of(cls, name: str, runs: Sequence[PipelineRun]) -> PipelineStats:
        count = {status: sum(run.status == status for run in runs) for status in JobStatus}
        finished = count[JobStatus.completed] + count[JobStatus.failed] + count[JobStatus.cancelled]
        times = sorted(
            run.execution_time
            for run in runs
            if run.status == JobStatus.completed and run.execution_time is not None
        )
        return cls(
            pipeline_name=name,
            runs=list(runs),
            finished=finished,
            completed=count[JobStatus.completed],
            failed=count[JobStatus.failed],
            cancelled=count[JobStatus.cancelled],
            success_rate=round(count[JobStatus.completed] / finished, 4) if finished else None,
            p50_seconds=_nearest_rank(times, 0.50),
            p95_seconds=_nearest_rank(times, 0.95),
        )


def _nearest_rank(ordered: Sequence[float], quantile: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]
