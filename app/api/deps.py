"""FastAPI dependencies: the core services and the caller, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.dispatcher import Dispatcher
from app.core.job_manager import EVERYONE, JobManager, Visibility
from app.schemas.jobs import Job


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_job_manager(request: Request) -> JobManager:
    manager: JobManager = request.app.state.manager
    return manager


def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def get_visibility() -> Visibility:
    """Whose jobs the caller may see (everyone's while the API is open)."""
    return EVERYONE


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobManagerDep = Annotated[JobManager, Depends(get_job_manager)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
VisibilityDep = Annotated[Visibility, Depends(get_visibility)]


def valid_job(job_id: UUID, manager: JobManagerDep, visibility: VisibilityDep) -> Job:
    """The job named in the path, or 404 if it is unknown or not the caller's."""
    return manager.get_job(job_id=str(job_id), visibility=visibility)


JobDep = Annotated[Job, Depends(valid_job)]
