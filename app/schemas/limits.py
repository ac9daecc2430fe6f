"""Admission limits: how many jobs may run at once per queue, pipeline, user and key."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

from app.schemas.jobs import PipelineName, QueueName, not_a_boolean

DEFAULT_ENTRY = "*"
# A key that does not match the names' pattern is refused: say so in the schema too.
ONLY_NAMES: JsonDict = {"additionalProperties": False}
Slots = Annotated[int, Field(ge=0, le=1_000_000), BeforeValidator(not_a_boolean)]
PendingCap = Annotated[int, Field(ge=1, le=10_000_000), BeforeValidator(not_a_boolean)]
UserName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^:\s]+$")]
KeyOrDefault = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^(\*|[A-Za-z0-9_.\-:/@+=]+)$")
]


class Limits(BaseModel):
    """Most jobs running at once (0 holds every job back); absent names are unlimited.

    `users["*"]` applies to each user not named; a `concurrency_key` not named runs
    `concurrency_keys["*"]` at a time, one when that is absent too."""

    model_config = ConfigDict(extra="forbid")

    queues: dict[QueueName, Slots] = Field(
        default_factory=dict, max_length=1000, json_schema_extra=ONLY_NAMES
    )
    pipelines: dict[PipelineName, Slots] = Field(
        default_factory=dict, max_length=1000, json_schema_extra=ONLY_NAMES
    )
    users: dict[UserName, Slots] = Field(
        default_factory=dict, max_length=1000, json_schema_extra=ONLY_NAMES
    )
    concurrency_keys: dict[KeyOrDefault, Slots] = Field(
        default_factory=dict, max_length=1000, json_schema_extra=ONLY_NAMES
    )
    max_pending_per_user: PendingCap | None = Field(
        default=None, description="Pending jobs a user may have; 429 past it."
    )
