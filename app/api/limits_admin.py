"""Admission limits: read and replace them (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import AdminDep, BrokerDep, JobManagerDep
from app.api.errors import error
from app.ops.admission import change_limits
from app.schemas.limits import Limits

router = APIRouter(prefix="/limits", tags=["limits"])
NOT_ADMIN: dict[int | str, dict[str, Any]] = {
    403: error("The key is not an admin's (ADMIN_USERS).")
}


@router.get("", responses=NOT_ADMIN)
def get_limits(manager: JobManagerDep, _admin: AdminDep) -> Limits:
    """The admission limits in force."""
    return manager.get_limits()


@router.put("", responses={**NOT_ADMIN, 422: error("Invalid limits.")})
def put_limits(body: Limits, manager: JobManagerDep, broker: BrokerDep, admin: AdminDep) -> Limits:
    """Replace the admission limits; waiting jobs that now fit are released at once."""
    return change_limits(manager, broker, limits=body, changed_by=admin.user_id)
