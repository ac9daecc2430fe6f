"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import BrokerDep, DetailsDep, JobManagerDep, SettingsDep
from app.ops.health import check_health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", responses={503: {"description": "A check failed; the body names it."}})
async def ready(
    manager: JobManagerDep, broker: BrokerDep, settings: SettingsDep, details: DetailsDep
) -> JSONResponse:
    """Readiness: database, broker, live workers per queue, their Kedro projects.

    With API keys on, a caller without a key sees each check's verdict only."""
    report: dict[str, Any] = await check_health(manager, broker, settings, details=details)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get("/live")
def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}
