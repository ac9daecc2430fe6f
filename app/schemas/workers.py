"""Workers as they announce themselves through the database."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Worker(BaseModel):
    name: str
    hostname: str
    queues: list[str]
    concurrency: int | None
    project_path: str | None
    kedro_version: str | None
    project_ok: bool
    project_error: str | None
    runner_mode: str | None
    warm_error: str | None = None
    running_jobs: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    alive: bool


class WorkerList(BaseModel):
    items: list[Worker]
