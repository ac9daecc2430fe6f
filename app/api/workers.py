"""Workers seen through their heartbeat rows."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import JobManagerDep, SettingsDep
from app.schemas.workers import WorkerList

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("")
def list_workers(manager: JobManagerDep, settings: SettingsDep) -> WorkerList:
    """Every worker seen: queues, project, Kedro version, running jobs, last heartbeat."""
    return WorkerList(items=manager.list_workers(lost_after=settings.worker_lost_after))
