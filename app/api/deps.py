"""FastAPI dependencies: the core services and the caller, as `Annotated` aliases.

They are `async def` because none of them blocks: FastAPI runs a plain `def`
dependency on the thread pool, a hop that cost more than the work itself."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.security import KeyRing
from app.broker.publisher import Broker
from app.core.config import Settings
from app.ops.submit import Submitter
from app.schemas.jobs import Job
from app.store import JobManager, Visibility


async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_job_manager(request: Request) -> JobManager:
    manager: JobManager = request.app.state.manager
    return manager


async def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


async def get_submitter(request: Request) -> Submitter:
    submitter: Submitter = request.app.state.submitter
    return submitter


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


async def get_visibility(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Visibility:
    """The caller, from their API key; with no keys configured the API is open."""
    keyring: KeyRing = request.app.state.keyring
    if not keyring.enabled:
        return keyring.open_access()
    presented = bearer.credentials if bearer is not None else api_key
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = keyring.identify(presented)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


async def shows_details(request: Request) -> bool:
    """Whether an endpoint open to monitors may show more than a monitor needs (project
    paths, versions, worker and pipeline names): to a caller with a valid key, to anyone
    while the API is open, or to anyone if `PUBLIC_DETAILS` says so. The key is optional
    here, so it is read from the headers rather than declared as a security scheme."""
    keyring: KeyRing = request.app.state.keyring
    settings: Settings = request.app.state.settings
    if settings.public_details or not keyring.enabled:
        return True
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    presented = credentials if scheme.lower() == "bearer" else request.headers.get("x-api-key")
    return bool(presented) and keyring.identify(str(presented)) is not None


async def require_admin(caller: Annotated[Visibility, Depends(get_visibility)]) -> Visibility:
    """Only admins (or anyone, while the API is open) may do this."""
    if not caller.sees_all:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin key (ADMIN_USERS)")
    return caller


SettingsDep = Annotated[Settings, Depends(app_settings)]
JobManagerDep = Annotated[JobManager, Depends(get_job_manager)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
SubmitterDep = Annotated[Submitter, Depends(get_submitter)]
VisibilityDep = Annotated[Visibility, Depends(get_visibility)]
AdminDep = Annotated[Visibility, Depends(require_admin)]
DetailsDep = Annotated[bool, Depends(shows_details)]


def valid_job(job_id: UUID, manager: JobManagerDep, visibility: VisibilityDep) -> Job:
    """The job named in the path, or 404 if it is unknown or not the caller's."""
    return manager.get_job(job_id=str(job_id), visibility=visibility)


JobDep = Annotated[Job, Depends(valid_job)]
