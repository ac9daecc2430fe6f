"""Webhook subscriptions and the delivery log: what the API registers and the sender works."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.exceptions import WebhookNotFound
from app.schemas.jobs import JobStatus
from app.schemas.webhooks import (
    TEST_EVENT,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookEvent,
)
from app.store.base import StoreBase
from app.store.outbox import insert_deliveries, payload, subscriptions
from app.store.rows import JOB_COLUMNS, to_job
from app.store.tables import jobs
from app.store.types import utcnow
from app.store.webhook_tables import job_notify, webhook_attempts, webhook_deliveries, webhooks

_PUBLIC = [column for column in webhooks.c if column.name != "secret"]


@dataclass(frozen=True)
class OutboundDelivery:
    """A due delivery as the sender needs it; `secret` is None for a job's own notify."""

    id: str
    url: str
    payload: str
    secret: str | None
    created_at: datetime
    attempts: int


class WebhookStore(StoreBase):
    """Subscriptions, the outbox's due deliveries, attempts, and duration warnings."""

    def create_webhook(
        self, *, request: WebhookCreate, secret: str, created_by: str | None
    ) -> WebhookCreated:
        """Record a subscription; the only answer that carries its secret."""
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "url": request.url,
            "events": [event.value for event in request.events],
            "description": request.description,
            "duration_warning_seconds": request.duration_warning_seconds,
            "secret": secret,
            "created_at": utcnow(),
            "created_by": created_by,
        }
        with self._write() as connection:
            connection.execute(insert(webhooks).values(**values))
        return WebhookCreated.model_validate(values)

    def list_webhooks(self) -> list[Webhook]:
        """Every subscription, oldest first, without secrets."""
        with self._read() as connection:
            rows = connection.execute(select(*_PUBLIC).order_by(webhooks.c.created_at)).all()
        return [Webhook.model_validate(row._mapping) for row in rows]

    def get_webhook(self, *, webhook_id: str) -> Webhook:
        """One subscription without its secret, or `WebhookNotFound`."""
        with self._read() as connection:
            row = connection.execute(
                select(*_PUBLIC).where(webhooks.c.id == webhook_id)
            ).one_or_none()
        if row is None:
            raise WebhookNotFound(f"webhook {webhook_id} not found")
        return Webhook.model_validate(row._mapping)

    def delete_webhook(self, *, webhook_id: str) -> None:
        """Remove a subscription and its deliveries (pending ones are never sent)."""
        with self._write() as connection:
            connection.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
            )
            if not connection.execute(delete(webhooks).where(webhooks.c.id == webhook_id)).rowcount:
                raise WebhookNotFound(f"webhook {webhook_id} not found")

    def enqueue_test(self, *, webhook_id: str) -> Delivery:
        """A `webhook.test` delivery to one subscription, sent like any other."""
        [delivery_id] = self.enqueue_tests(webhook_id=webhook_id, count=1)
        return self._deliveries(webhook_deliveries.c.id == delivery_id, limit=1)[0]

    def enqueue_tests(self, *, webhook_id: str, count: int) -> list[str]:
        """`count` `webhook.test` deliveries to one subscription in one transaction; their ids.

        One insert for all of them: the benchmarks fill an outbox of thousands with it."""
        now = utcnow()
        with self._write() as connection:
            url = connection.execute(
                select(webhooks.c.url).where(webhooks.c.id == webhook_id)
            ).scalar_one_or_none()
            if url is None:
                raise WebhookNotFound(f"webhook {webhook_id} not found")
            if count < 1:
                return []
            body = payload(TEST_EVENT, now, {"webhook_id": webhook_id})
            return insert_deliveries(
                connection,
                [(webhook_id, url)] * count,
                job_id=None,
                event_type=TEST_EVENT,
                body=body,
                at=now,
            )

    def due_deliveries(self, *, now: datetime, limit: int) -> list[OutboundDelivery]:
        """Pending deliveries whose next attempt is due, the longest waiting first."""
        with self._read() as connection:
            rows = connection.execute(
                select(
                    webhook_deliveries.c.id,
                    webhook_deliveries.c.url,
                    webhook_deliveries.c.payload,
                    webhook_deliveries.c.created_at,
                    webhook_deliveries.c.attempts,
                    webhooks.c.secret,
                )
                .select_from(
                    webhook_deliveries.outerjoin(
                        webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id
                    )
                )
                .where(
                    webhook_deliveries.c.status == DeliveryStatus.pending.value,
                    webhook_deliveries.c.next_attempt_at <= now,
                )
                .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.created_at)
                .limit(limit)
            ).all()
        return [OutboundDelivery(**row._mapping) for row in rows]

    def record_attempt(
        self,
        *,
        delivery_id: str,
        attempt: DeliveryAttempt,
        outcome: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Log one attempt and move a pending delivery on; False if it was not pending."""
        with self._write() as connection:
            moved = connection.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_deliveries.c.status == DeliveryStatus.pending.value,
                )
                .values(
                    status=outcome.value,
                    attempts=webhook_deliveries.c.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    delivered_at=attempt.at if outcome == DeliveryStatus.delivered else None,
                )
            ).rowcount
            if moved:
                connection.execute(
                    insert(webhook_attempts).values(delivery_id=delivery_id, **attempt.model_dump())
                )
        return bool(moved)

    def postpone_deliveries(self, *, url: str, until: datetime) -> int:
        """Hold back every pending delivery to `url` due before `until` (its receiver failed)."""
        with self._write() as connection:
            return int(
                connection.execute(
                    update(webhook_deliveries)
                    .where(
                        webhook_deliveries.c.url == url,
                        webhook_deliveries.c.status == DeliveryStatus.pending.value,
                        webhook_deliveries.c.next_attempt_at < until,
                    )
                    .values(next_attempt_at=until)
                ).rowcount
            )

    def list_deliveries(
        self, *, webhook_id: str | None = None, job_id: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        """A subscription's or a job's deliveries, newest first, each with its attempts."""
        if webhook_id is not None:
            self.get_webhook(webhook_id=webhook_id)
            return self._deliveries(webhook_deliveries.c.webhook_id == webhook_id, limit=limit)
        return self._deliveries(webhook_deliveries.c.job_id == job_id, limit=limit)

    def _deliveries(self, where: Any, *, limit: int) -> list[Delivery]:
        with self._read() as connection:
            rows = connection.execute(
                select(webhook_deliveries)
                .where(where)
                .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id)
                .limit(limit)
            ).all()
            attempts: dict[str, list[DeliveryAttempt]] = {row.id: [] for row in rows}
            if attempts:
                for attempt in connection.execute(
                    select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id.in_(attempts))
                    .order_by(webhook_attempts.c.id)
                ):
                    attempts[attempt.delivery_id].append(
                        DeliveryAttempt.model_validate(attempt._mapping)
                    )
        return [
            Delivery(
                id=row.id,
                type=row.event_type,
                webhook_id=row.webhook_id,
                job_id=row.job_id,
                url=row.url,
                status=DeliveryStatus(row.status),
                created_at=row.created_at,
                next_attempt_at=row.next_attempt_at,
                delivered_at=row.delivered_at,
                attempts=attempts[row.id],
            )
            for row in rows
        ]

    def enqueue_duration_warnings(self, *, now: datetime) -> int:
        """`job.duration_warning` for each running job past a receiver's threshold, once
        per job attempt and receiver (the outbox's `event_key` makes a repeat a no-op)."""
        event = WebhookEvent.duration_warning.value
        with self._read() as connection:
            subscribed = subscriptions(connection, WebhookEvent.duration_warning)
            running = connection.execute(
                select(
                    *JOB_COLUMNS,
                    job_notify.c.url.label("notify_url"),
                    job_notify.c.events.label("notify_events"),
                    job_notify.c.duration_warning_seconds.label("notify_threshold"),
                )
                .select_from(jobs.outerjoin(job_notify, job_notify.c.job_id == jobs.c.id))
                .where(jobs.c.status == JobStatus.running.value, jobs.c.started_at.is_not(None))
            ).all()
        written = 0
        for row in running:
            elapsed = (now - row.started_at).total_seconds()
            targets: list[tuple[str | None, str]] = [
                (hook, url) for hook, url, limit in subscribed if limit and elapsed >= limit
            ]
            if (
                row.notify_url
                and event in row.notify_events
                and row.notify_threshold
                and elapsed >= row.notify_threshold
            ):
                targets.append((None, row.notify_url))
            for target in targets:
                written += self._warn_once(row, target, now)
        return written

    def _warn_once(self, row: Any, target: tuple[str | None, str], now: datetime) -> int:
        key = f"{row.id}:{row.attempt}:duration"
        body = payload(
            WebhookEvent.duration_warning.value, now, to_job(row._mapping).model_dump(mode="json")
        )
        try:
            with self._write() as connection:
                exists = connection.execute(
                    select(webhook_deliveries.c.id).where(
                        webhook_deliveries.c.event_key == f"{key}:{target[0] or 'notify'}"
                    )
                ).first()
                if exists is not None:
                    return 0
                insert_deliveries(
                    connection,
                    [target],
                    job_id=row.id,
                    event_type=WebhookEvent.duration_warning.value,
                    body=body,
                    at=now,
                    event_key=key,
                )
        except IntegrityError:  # another sender wrote it first
            return 0
        return 1

    def purge_deliveries(self, *, finished_before: datetime, batch: int = 500) -> int:
        """Delete one batch of delivered or failed deliveries created before a time."""
        with self._write() as connection:
            ids = (
                connection.execute(
                    select(webhook_deliveries.c.id)
                    .where(
                        webhook_deliveries.c.status != DeliveryStatus.pending.value,
                        webhook_deliveries.c.created_at < finished_before,
                    )
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if ids:
                connection.execute(
                    delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids))
                )
                connection.execute(
                    delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(ids))
                )
        return len(ids)
