"""Body of `POST /jobs/{id}/rerun`: where to start, and what to change."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.schemas.jobs import RunOptions
from app.schemas.retry import RetryPolicy


class JobRerun(RunOptions):
    """Run options given here replace the original job's; the rest are kept."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Literal["failure", "start"] = Field(
        default="failure",
        alias="from",
        description="`failure`: run only what did not complete, from the nearest nodes with "
        "persisted inputs; `start`: run the original selection again.",
    )
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Replace the original job's parameters (omit to keep them); checked "
        "as a submit's are.",
    )
    timeout_seconds: float | None = Field(default=None, gt=0, le=30 * 24 * 3600)
    retry: RetryPolicy | None = None
