"""The job store: the only package that writes SQL.

`JobManager` is its facade; each part lives in its own module (records,
transitions, output, workers, stats) over one connection discipline (`base`).
"""

from app.store.jobs import NewJob
from app.store.manager import JobManager
from app.store.types import (
    EVERYONE,
    Claim,
    OutputBatch,
    RunOutcome,
    RunProgress,
    Visibility,
    utcnow,
)
from app.store.webhooks import OutboundDelivery

__all__ = [
    "EVERYONE",
    "Claim",
    "JobManager",
    "NewJob",
    "OutboundDelivery",
    "OutputBatch",
    "RunOutcome",
    "RunProgress",
    "Visibility",
    "utcnow",
]
