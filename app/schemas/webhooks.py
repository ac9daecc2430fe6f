"""Request and response models of webhooks: subscriptions, per-job notify, deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class WebhookEvent(StrEnum):
    """What a subscriber may ask to hear about."""

    started = "job.started"
    completed = "job.completed"
    failed = "job.failed"
    cancelled = "job.cancelled"
    retrying = "job.retrying"
    duration_warning = "job.duration_warning"


TEST_EVENT = "webhook.test"
MAX_DURATION_WARNING_SECONDS = 30 * 24 * 3600


def _plain_http_url(value: str) -> str:
    """http(s), a host, no credentials, no fragment; the address is checked by ops."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValueError("the URL must start with https:// (or http:// where allowed)")
    if not parts.hostname:
        raise ValueError("the URL must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry credentials")
    if parts.fragment:
        raise ValueError("the URL must not carry a fragment")
    try:
        parts.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        raise ValueError("the URL's port is invalid") from None
    return value


WebhookUrl = Annotated[
    str,
    Field(min_length=1, max_length=2000, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+"),
    AfterValidator(_plain_http_url),
]
EventList = Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WebhookEvent))]
Threshold = Annotated[float, Field(gt=0, le=MAX_DURATION_WARNING_SECONDS)]


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    events: EventList
    duration_warning_seconds: Threshold | None = Field(
        default=None,
        description="Send `job.duration_warning` once a running job has run this long.",
    )

    @model_validator(mode="after")
    def _threshold_for_warnings(self) -> Self:
        self.events = list(dict.fromkeys(self.events))
        if WebhookEvent.duration_warning in self.events and self.duration_warning_seconds is None:
            raise ValueError("job.duration_warning needs duration_warning_seconds")
        return self


class WebhookCreate(_Target):
    """Body of `POST /webhooks`."""

    description: str | None = Field(default=None, max_length=500)


class JobNotify(_Target):
    """Submit field `notify`: this job's events, signed with `WEBHOOK_SECRET`."""


class Webhook(BaseModel):
    """A subscription as `GET /webhooks` returns it (never with its secret)."""

    id: str
    url: str
    events: list[WebhookEvent]
    description: str | None
    duration_warning_seconds: float | None
    created_at: datetime
    created_by: str | None


class WebhookCreated(Webhook):
    """The answer to `POST /webhooks`: the only time the secret is shown."""

    secret: str = Field(description="`whsec_…`: verify deliveries with it; shown only once.")


class WebhookList(BaseModel):
    items: list[Webhook]


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    latency_ms: float
    error: str | None


class Delivery(BaseModel):
    """One event to one receiver; `id` is its `webhook-id`, the same on every attempt."""

    id: str
    type: str
    webhook_id: str | None = Field(description="The subscription, or null for a job's notify.")
    job_id: str | None
    url: str
    status: DeliveryStatus
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempts: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    items: list[Delivery]


class WebhookPayload(BaseModel):
    """The body of every delivery (Standard Webhooks): `{"type", "timestamp", "data"}`."""

    type: str
    timestamp: datetime
    data: dict[str, Any]
