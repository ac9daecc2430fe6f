"""A job's retry policy: which failures start another attempt, when, and from where."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.config import RetryOn

__all__ = ["MAX_ATTEMPTS", "RetryOn", "RetryPolicy", "RetryStrategy"]

RetryStrategy = Literal["from_failure", "all"]
MAX_ATTEMPTS = 20
_WORKER_LOST: tuple[RetryOn, ...] = ("worker_lost",)


class RetryPolicy(BaseModel):
    """Submit field `retry`; fields left out take the server's defaults (`RETRY_*`)."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        default=1, ge=1, le=MAX_ATTEMPTS, description="Starts in all; 1 means no retry."
    )
    on: list[RetryOn] = Field(
        default_factory=lambda: list[RetryOn](_WORKER_LOST),
        max_length=3,
        description="Failures that start another attempt: `worker_lost` (the worker died or "
        "stopped heartbeating), `timeout`, `failed` (kedro run exited non-zero).",
    )
    delay_seconds: float = Field(
        default=10.0, ge=0, le=24 * 3600, description="Wait before the second attempt."
    )
    backoff: float = Field(
        default=2.0, ge=1, le=10, description="Each later wait is the previous one times this."
    )
    strategy: RetryStrategy = Field(
        default="all",
        description="`all` runs the whole selection again; `from_failure` resumes from the "
        "nearest nodes with persisted inputs, as a rerun from failure does.",
    )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before starting `attempt` (2 or more)."""
        return float(self.delay_seconds * self.backoff ** max(attempt - 2, 0))
