"""Pipelines of the Kedro project behind a queue, as its workers reported them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PipelineNode(BaseModel):
    name: str
    func: str
    inputs: list[str]
    outputs: list[str]
    tags: list[str]


class Pipeline(BaseModel):
    name: str
    nodes: list[PipelineNode] | None
    persisted_datasets: list[str] | None = Field(
        default=None,
        description="Datasets of the pipeline that its catalog persists (not memory "
        "datasets): a resumed run can read them. Null when the worker could not tell.",
    )


class PipelineList(BaseModel):
    items: list[Pipeline]
    refreshed_at: datetime | None
    queue: str
    kedro_version: str | None = None
    worker: str | None = None
