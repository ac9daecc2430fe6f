"""Workers seen through their heartbeat rows."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from app.api.deps import JobManagerDep, SettingsDep
from app.core.job_manager import utcnow
from app.schemas.workers import WorkerList

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("")
def list_workers(manager: JobManagerDep, settings: SettingsDep) -> WorkerList:
    """Every worker seen: queues, project, Kedro version, running jobs, last heartbeat."""
    alive_after = utcnow() - timedelta(seconds=settings.worker_lost_after_seconds)
    return WorkerList(items=manager.list_workers(alive_after=alive_after))
