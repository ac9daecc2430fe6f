"""The job manager: the store's facade, the one object routers, tasks and ops call."""

from __future__ import annotations

from app.store.admission import Admission
from app.store.output import OutputLog
from app.store.stats import StoreStats
from app.store.transitions import JobTransitions
from app.store.workers import WorkerRegistry


class JobManager(Admission, JobTransitions, OutputLog, WorkerRegistry, StoreStats):
    """Owns every SQL statement and every state transition of a job (one module per part)."""
