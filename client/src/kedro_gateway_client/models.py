"""The gateway's API models (v1), as the client sees them.

Field names and types mirror the server's OpenAPI document; `scripts/check_openapi.py`
checks that they still do. Response models accept fields this client does not know
yet (the contract only ever adds optional fields); `JobCreate` passes unknown run
options through to the server, which decides whether it accepts them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunnerName = Literal["SequentialRunner", "ThreadRunner", "ParallelRunner"]


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


RetryOn = Literal["worker_lost", "timeout", "failed"]
WebhookEvent = Literal[
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
    "job.retrying",
    "job.duration_warning",
]


class RetryPolicy(BaseModel):
    """A job's retry policy; fields left out take the server's defaults (`RETRY_*`)."""

    max_attempts: int = 1
    on: list[RetryOn] = Field(default_factory=lambda: list[RetryOn](["worker_lost"]))
    delay_seconds: float = 10.0
    backoff: float = 2.0
    strategy: Literal["from_failure", "all"] = "all"


class JobNotify(BaseModel):
    """A webhook for one job's events, signed with the gateway's own secret."""

    url: str
    events: list[WebhookEvent]
    duration_warning_seconds: float | None = None


class JobStatus(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled})


class RunOptions(BaseModel):
    """The `kedro run` options a job may set; they mirror Kedro's own flags."""

    model_config = ConfigDict(extra="allow")

    env: str | None = None
    tags: list[str] = Field(default_factory=list)
    runner: RunnerName | None = None
    node_names: list[str] = Field(default_factory=list)
    from_nodes: list[str] = Field(default_factory=list)
    to_nodes: list[str] = Field(default_factory=list)
    from_inputs: list[str] = Field(default_factory=list)
    to_outputs: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    load_versions: dict[str, str] = Field(default_factory=dict)


class JobCreate(RunOptions):
    """Body of `POST /jobs`; only `pipeline_name` is required.

    Only the fields that were set are sent, so a server keeps its own defaults.
    """

    pipeline_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    queue: str = "default"
    timeout_seconds: float | None = None
    priority: int = 0
    concurrency_key: str | None = None
    retry: RetryPolicy | None = None
    notify: JobNotify | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class Progress(_Response):
    completed_nodes: int = 0
    total_nodes: int | None = None
    completed_node_names: list[str] = Field(default_factory=list)
    running_node_names: list[str] = Field(default_factory=list)


class Job(RunOptions):
    """A job as every endpoint returns it."""

    id: str
    pipeline_name: str
    parameters: dict[str, Any]
    status: JobStatus
    user_id: str | None
    queue: str
    timeout_seconds: float | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    execution_time: float | None
    exit_code: int | None
    error_message: str | None
    progress: Progress
    results: dict[str, Any] | None
    worker: str | None
    attempt: int
    cancel_requested: bool
    heartbeat_at: datetime | None
    output_bytes: int
    output_dropped_bytes: int
    rerun_of: str | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    next_attempt_at: datetime | None = None
    resume_from: list[str] | None = None
    planned_nodes: list[str] | None = None
    priority: int = 0
    concurrency_key: str | None = None
    waiting_reason: str | None = None
    position: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


class JobList(_Response):
    items: list[Job]
    next_cursor: str | None


class LogChunk(_Response):
    offset: int
    next_offset: int
    data: str
    complete: bool


class JobEvent(_Response):
    at: datetime
    status: JobStatus
    reason: str | None
    attempt: int
    worker: str | None


class JobEventList(_Response):
    items: list[JobEvent]


class PipelineNode(_Response):
    name: str
    func: str
    inputs: list[str]
    outputs: list[str]
    tags: list[str]


class Pipeline(_Response):
    name: str
    nodes: list[PipelineNode] | None
    persisted_datasets: list[str] | None = None


class PipelineList(_Response):
    items: list[Pipeline]
    refreshed_at: datetime | None
    queue: str
    kedro_version: str | None = None
    worker: str | None = None


class Worker(_Response):
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


class WorkerList(_Response):
    items: list[Worker]


class HealthCheck(_Response):
    """One readiness check; the server adds check-specific fields."""

    ok: bool


class Health(_Response):
    """`GET /health`: `status` is `ok` or `degraded` (the server answers 503 then)."""

    status: str
    checks: dict[str, HealthCheck] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Liveness(_Response):
    status: str
