"""Values the store hands out and takes in: who may see what, claims, progress, outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.schemas.jobs import Job, JobStatus
from app.schemas.retry import RetryOn
from app.store.tables import jobs


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Visibility:
    """Whose jobs a caller may see: one user's, or everyone's (admins, no auth)."""

    user_id: str | None = None
    sees_all: bool = True

    def clause(self) -> Any:
        return jobs.c.user_id == self.user_id if not self.sees_all else True


EVERYONE = Visibility()


@dataclass(frozen=True)
class Claim:
    """A job this worker now owns for one attempt."""

    job: Job
    attempt: int


@dataclass
class RunProgress:
    completed_nodes: list[str] = field(default_factory=list)
    total_nodes: int | None = None
    running_nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutputBatch:
    """Output to store at its logical `offset`, with the progress it brought."""

    offset: int
    data: bytes
    progress: RunProgress


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as the runner saw it."""

    status: JobStatus
    exit_code: int | None
    execution_time: float | None
    error_message: str | None
    results: dict[str, Any]
    failure: RetryOn | None = None  # which kind of failure, for the job's retry policy
