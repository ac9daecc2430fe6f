"""Request and response models of the jobs API (the public contract, v1)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.core.config import DEFAULT_QUEUE
from app.core.exceptions import InvalidJobRequest
from app.runner.params import check_parameters
from app.schemas.retry import RetryPolicy
from app.schemas.webhooks import JobNotify

PLAIN_NAME = r"^[A-Za-z0-9_.\-]+$"
PipelineName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PLAIN_NAME)]
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PLAIN_NAME)]
EnvName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")
]
KedroName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-:]+$")
]
NameList = Annotated[list[KedroName], Field(max_length=500)]


def not_a_boolean(value: Any) -> Any:
    """Integers as JSON Schema has them: 3 and 3.0, but not `true` (put after the bounds,
    so the bounds stay in the schema)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    return value


Priority = Annotated[int, Field(ge=-1_000_000, le=1_000_000), BeforeValidator(not_a_boolean)]
ConcurrencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-:/@+=]+$")
]
RunnerName = Literal["SequentialRunner", "ThreadRunner", "ParallelRunner"]


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

    model_config = ConfigDict(extra="forbid")

    env: EnvName | None = None
    tags: NameList = Field(default_factory=list)
    runner: RunnerName | None = None
    node_names: NameList = Field(default_factory=list)
    from_nodes: NameList = Field(default_factory=list)
    to_nodes: NameList = Field(default_factory=list)
    from_inputs: NameList = Field(default_factory=list)
    to_outputs: NameList = Field(default_factory=list)
    namespaces: NameList = Field(default_factory=list)
    load_versions: dict[KedroName, KedroName] = Field(default_factory=dict, max_length=500)


class JobCreate(RunOptions):
    """Body of `POST /jobs`; only `pipeline_name` is required."""

    pipeline_name: PipelineName
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Kedro parameters by name; nested objects allowed; leaves are "
        "strings, numbers, booleans, null or lists of them.",
    )
    queue: QueueName = DEFAULT_QUEUE
    timeout_seconds: float | None = Field(default=None, gt=0, le=30 * 24 * 3600)
    notify: JobNotify | None = Field(
        default=None, description="Webhook for this job's events, signed with WEBHOOK_SECRET."
    )
    retry: RetryPolicy | None = Field(
        default=None, description="Retry policy; absent: the server's defaults (no retry)."
    )
    priority: Priority = Field(default=0, description="Higher goes first.")
    concurrency_key: ConcurrencyKey | None = Field(
        default=None,
        description="Jobs sharing a key run one at a time, unless the limits say otherwise.",
    )

    @field_validator("parameters")
    @classmethod
    def _parameters_are_lossless(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            check_parameters(value)
        except InvalidJobRequest as exc:
            raise ValueError(exc.detail) from None
        return value

    @field_validator("load_versions")
    @classmethod
    def _dataset_names_survive_kedro(cls, value: dict[str, str]) -> dict[str, str]:
        # Kedro splits `--load-versions` on ',' then on the first ':', with no escape.
        for name in value:
            if ":" in name:
                raise ValueError(
                    f"load_versions: dataset name {name!r} contains ':', which Kedro reads "
                    "as the end of the name (it splits 'name:version' on the first ':')"
                )
        return value

    def run_options(self) -> RunOptions:
        return RunOptions.model_validate(self.model_dump(include=set(RunOptions.model_fields)))


class Progress(BaseModel):
    completed_nodes: int = 0
    total_nodes: int | None = Field(default=None, description="Known once Kedro reports it.")
    completed_node_names: list[str] = Field(default_factory=list)
    running_node_names: list[str] = Field(
        default_factory=list, description="Nodes started and not yet completed."
    )


class Job(RunOptions):
    """A job as every endpoint returns it."""

    model_config = ConfigDict(extra="forbid")

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
    output_bytes: int = Field(description="Bytes of output the run has written so far.")
    output_dropped_bytes: int = Field(
        description="Bytes of output dropped past LOG_MAX_BYTES (head and tail are kept)."
    )
    rerun_of: str | None = Field(default=None, description="The job this one reruns.")
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="The retry policy, with the defaults applied."
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="While `pending` between attempts: when the next one starts."
    )
    resume_from: list[str] | None = Field(
        default=None,
        description="The `from_nodes` the current attempt of a `from_failure` retry resumed "
        "from (they replace the job's own `from_nodes` for that attempt).",
    )
    planned_nodes: list[str] | None = Field(
        default=None,
        description="The nodes a rerun or a resumed attempt runs, as the gateway computed them.",
    )
    priority: int = 0
    concurrency_key: str | None = None
    waiting_reason: str | None = Field(
        default=None,
        description="While pending and held back by admission: why, e.g. "
        "'pipeline train: 1 of 1 running'.",
    )
    position: int | None = Field(
        default=None,
        description="While held back by admission: its place in the admission order (1: next).",
    )


class JobList(BaseModel):
    items: list[Job]
    next_cursor: str | None


class LogChunk(BaseModel):
    offset: int = Field(description="Byte offset where `data` starts (past any dropped gap).")
    next_offset: int
    data: str
    complete: bool = Field(description="The job is terminal and no output follows.")


class JobEvent(BaseModel):
    at: datetime
    status: JobStatus
    reason: str | None
    attempt: int
    worker: str | None


class JobEventList(BaseModel):
    items: list[JobEvent]
