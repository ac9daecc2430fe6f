"""Webhooks: subscriptions (admins), test sends, and the delivery log of a subscription or job."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from app.api.deps import AdminDep, JobDep, JobManagerDep, SettingsDep
from app.api.errors import error
from app.ops.webhook_http import new_secret
from app.ops.webhooks import check_webhook_url
from app.schemas.webhooks import (
    Delivery,
    DeliveryList,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
jobs_router = APIRouter(prefix="/jobs", tags=["webhooks"])

ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: error("Needs an admin key (ADMIN_USERS).")}
UNKNOWN: dict[int | str, dict[str, Any]] = {**ADMIN_ONLY, 404: error("Unknown webhook.")}
Limit = Annotated[int, Query(ge=1, le=100, description="Newest deliveries first.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        **ADMIN_ONLY,
        400: error("The body is not UTF-8 text."),
        422: error("Invalid body, or a URL the gateway may not call."),
    },
)
def create_webhook(
    body: WebhookCreate,
    response: Response,
    manager: JobManagerDep,
    settings: SettingsDep,
    caller: AdminDep,
) -> WebhookCreated:
    """Subscribe a URL to job events; the answer is the only time its secret is shown."""
    check_webhook_url(body.url, settings)
    created = manager.create_webhook(request=body, secret=new_secret(), created_by=caller.user_id)
    response.headers["Location"] = f"/api/v1/webhooks/{created.id}"
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get("", responses=ADMIN_ONLY)
def list_webhooks(manager: JobManagerDep, _admin: AdminDep) -> WebhookList:
    """Every subscription (without secrets)."""
    return WebhookList(items=manager.list_webhooks())


@router.get("/{webhook_id}", responses=UNKNOWN)
def get_webhook(webhook_id: UUID, manager: JobManagerDep, _admin: AdminDep) -> Webhook:
    """One subscription (without its secret)."""
    return manager.get_webhook(webhook_id=str(webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=UNKNOWN)
def delete_webhook(webhook_id: UUID, manager: JobManagerDep, _admin: AdminDep) -> Response:
    """Unsubscribe; its pending deliveries are dropped."""
    manager.delete_webhook(webhook_id=str(webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED, responses=UNKNOWN)
def test_webhook(webhook_id: UUID, manager: JobManagerDep, _admin: AdminDep) -> Delivery:
    """Queue a signed `webhook.test` event; follow it in the delivery log."""
    return manager.enqueue_test(webhook_id=str(webhook_id))


@router.get("/{webhook_id}/deliveries", responses=UNKNOWN)
def webhook_deliveries(
    webhook_id: UUID, manager: JobManagerDep, _admin: AdminDep, limit: Limit = 50
) -> DeliveryList:
    """A subscription's deliveries, newest first, each with every attempt."""
    return DeliveryList(items=manager.list_deliveries(webhook_id=str(webhook_id), limit=limit))


@jobs_router.get("/{job_id}/deliveries", responses={404: error("Unknown job, or not yours.")})
def job_deliveries(job: JobDep, manager: JobManagerDep, limit: Limit = 50) -> DeliveryList:
    """The webhook deliveries a job caused, newest first, each with every attempt."""
    return DeliveryList(items=manager.list_deliveries(job_id=job.id, limit=limit))
