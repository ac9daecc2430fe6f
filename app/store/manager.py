"""The job manager: the store's facade, the one object routers, tasks and ops call."""

from __future__ import annotations

from app.store.admission import Admission
from app.store.fastread import FastReads
from app.store.leases import Leases
from app.store.notices import ChangeNotices
from app.store.output import OutputLog
from app.store.retries import JobRetries
from app.store.stats import StoreStats
from app.store.webhooks import WebhookStore
from app.store.workers import WorkerRegistry


class JobManager(
    Admission,
    ChangeNotices,
    JobRetries,
    OutputLog,
    FastReads,
    WorkerRegistry,
    StoreStats,
    WebhookStore,
    Leases,
):
    """Owns every SQL statement and every state transition of a job (one module per part)."""
