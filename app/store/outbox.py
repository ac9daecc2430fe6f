"""The webhook outbox: deliveries written in the same transaction as the change causing them.

A transition calls `enqueue_status_event` (or, for a scheduled retry,
`enqueue_job_event(..., event=WebhookEvent.retrying)`) on its own connection
before it commits: the state change and its deliveries are committed together or
not at all, and the sender (one process at a time) sends them later.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from app.schemas.jobs import JobStatus
from app.schemas.webhooks import DeliveryStatus, JobNotify, WebhookEvent, WebhookPayload
from app.store.rows import JOB_COLUMNS, to_job
from app.store.tables import jobs
from app.store.webhook_tables import job_notify, webhook_deliveries, webhooks

STATUS_EVENTS = {
    JobStatus.running: WebhookEvent.started,
    JobStatus.completed: WebhookEvent.completed,
    JobStatus.failed: WebhookEvent.failed,
    JobStatus.cancelled: WebhookEvent.cancelled,
}
# Asked in every transition: built once (see `app.store.rows.OWNED`).
_SUBSCRIPTIONS = select(
    webhooks.c.id, webhooks.c.url, webhooks.c.events, webhooks.c.duration_warning_seconds
)
_JOB_NOTIFY = select(job_notify).where(job_notify.c.job_id == bindparam("job_id"))


def new_delivery_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def receiver_key(url: str) -> str:
    """The receiver a delivery goes to, as deliveries and holds are keyed: its URL's SHA-256."""
    return hashlib.sha256(url.encode()).hexdigest()


def save_notify(connection: Connection, job_id: str, notify: JobNotify | None) -> None:
    """Remember a job's own `notify` target, in the transaction that records the job."""
    if notify is None:
        return
    connection.execute(
        insert(job_notify).values(
            job_id=job_id,
            url=notify.url,
            events=[event.value for event in notify.events],
            duration_warning_seconds=notify.duration_warning_seconds,
        )
    )


def enqueue_status_event(
    connection: Connection, *, job_id: str, status: JobStatus, at: datetime
) -> int:
    """The deliveries a job's move to `status` causes (none for `pending`)."""
    event = STATUS_EVENTS.get(status)
    return 0 if event is None else enqueue_job_event(connection, job_id=job_id, event=event, at=at)


def enqueue_job_event(
    connection: Connection, *, job_id: str, event: WebhookEvent, at: datetime
) -> int:
    """Write one delivery per receiver of `event` for this job; returns how many.

    Call it inside the transition's transaction, after the job row was changed: the
    payload carries the job as that transaction left it."""
    targets = [(webhook_id, url) for webhook_id, url, _ in subscribers(connection, job_id, event)]
    if not targets:
        return 0
    row = connection.execute(select(*JOB_COLUMNS).where(jobs.c.id == job_id)).one()
    body = payload(event.value, at, to_job(row._mapping).model_dump(mode="json"))
    insert_deliveries(connection, targets, job_id=job_id, event_type=event.value, body=body, at=at)
    return len(targets)


def subscribers(
    connection: Connection, job_id: str, event: WebhookEvent
) -> list[tuple[str | None, str, float | None]]:
    """(webhook id or None for the job's notify, url, duration threshold) of each receiver."""
    found: list[tuple[str | None, str, float | None]] = list(subscriptions(connection, event))
    own = connection.execute(_JOB_NOTIFY, {"job_id": job_id}).one_or_none()
    if own is not None and event.value in own.events:
        found.append((None, own.url, own.duration_warning_seconds))
    return found


def subscriptions(
    connection: Connection, event: WebhookEvent
) -> list[tuple[str, str, float | None]]:
    """(webhook id, url, duration threshold) of each subscription to `event`."""
    return [
        (row.id, row.url, row.duration_warning_seconds)
        for row in connection.execute(_SUBSCRIPTIONS)
        if event.value in row.events
    ]


def payload(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    """The exact body sent on every attempt of a delivery."""
    return WebhookPayload(type=event_type, timestamp=at, data=data).model_dump_json()


def insert_deliveries(
    connection: Connection,
    targets: list[tuple[str | None, str]],
    *,
    job_id: str | None,
    event_type: str,
    body: str,
    at: datetime,
    event_key: str | None = None,
) -> list[str]:
    """Pending deliveries of one body to each (webhook id, url), due at once; their ids."""
    ids = [new_delivery_id() for _ in targets]
    connection.execute(
        insert(webhook_deliveries),
        [
            {
                "id": delivery_id,
                "webhook_id": webhook_id,
                "job_id": job_id,
                "event_type": event_type,
                "event_key": f"{event_key}:{webhook_id or 'notify'}" if event_key else None,
                "url": url,
                "receiver": receiver_key(url),
                "payload": body,
                "status": DeliveryStatus.pending.value,
                "attempts": 0,
                "created_at": at,
                "next_attempt_at": at,
            }
            for delivery_id, (webhook_id, url) in zip(ids, targets, strict=True)
        ],
    )
    return ids
