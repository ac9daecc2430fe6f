"""Webhook subscriptions and the delivery log: what the API registers and the sender works."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
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
from app.store.outbox import insert_deliveries, payload, receiver_key, subscriptions
from app.store.rows import JOB_COLUMNS, to_job
from app.store.tables import jobs
from app.store.types import utcnow
from app.store.webhook_tables import (
    job_notify,
    webhook_attempts,
    webhook_deliveries,
    webhook_holds,
    webhooks,
)

_PUBLIC = [column for column in webhooks.c if column.name != "secret"]
_PENDING = webhook_deliveries.c.status == DeliveryStatus.pending.value


@dataclass(frozen=True)
class OutboundDelivery:
    """A due delivery as the sender needs it; `secret` is None for a job's own notify.

    `receiver_failures`: its receiver's attempts failed in a row when it was read."""

    id: str
    url: str
    payload: str
    secret: str | None
    created_at: datetime
    attempts: int
    receiver_failures: int


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
        """Remove a subscription and its deliveries (pending ones are never sent), and its
        receiver's hold once no delivery waits for it."""
        with self._write() as connection:
            url = connection.execute(
                select(webhooks.c.url).where(webhooks.c.id == webhook_id)
            ).scalar_one_or_none()
            if url is None:
                raise WebhookNotFound(f"webhook {webhook_id} not found")
            connection.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
            )
            connection.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
            receiver = receiver_key(url)
            if not _waits(connection, receiver):
                connection.execute(
                    delete(webhook_holds).where(webhook_holds.c.receiver == receiver)
                )

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
        """Up to `limit` pending deliveries of receivers not held back at `now`, the longest
        waiting first; a receiver's in the order they were written.

        Its reads grow with the receivers that have deliveries pending, not with the
        deliveries: one index step per receiver (a held one costs no more), then at most
        `limit` rows from each receiver it takes from, in the index's order."""
        self._key_receivers()
        with self._read() as connection:
            ready = sorted(connection.execute(_READY_RECEIVERS, {"now": now}), key=lambda r: r.head)
            taken: list[Any] = []
            for receiver in ready:
                if len(taken) >= limit and taken[limit - 1].created_at < receiver.head:
                    break  # every later receiver's deliveries are younger than the batch
                taken.extend(
                    connection.execute(
                        _OLDEST_PENDING,
                        {"receiver": receiver.receiver, "limit": limit, "now": now},
                    )
                )
                taken.sort(key=lambda row: (row.created_at, row.id))
        failures = {receiver.receiver: receiver.failures for receiver in ready}
        return [
            OutboundDelivery(
                id=row.id,
                url=row.url,
                payload=row.payload,
                secret=row.secret,
                created_at=row.created_at,
                attempts=row.attempts,
                receiver_failures=failures[row.receiver],
            )
            for row in taken[:limit]
        ]

    def _key_receivers(self, batch: int = 500) -> None:
        """Key pending deliveries a process older than revision 0009 wrote without their
        receiver (while an upgrade is under way); one index step when there are none."""
        unkeyed = (
            select(webhook_deliveries.c.id, webhook_deliveries.c.url)
            .where(_PENDING, webhook_deliveries.c.receiver.is_(None))
            .limit(batch)
        )
        with self._read() as connection:
            if connection.execute(unkeyed.limit(1)).first() is None:
                return
        with self._write() as connection:
            rows = connection.execute(unkeyed).all()
            connection.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == bindparam("delivery"))
                .values(receiver=bindparam("key")),
                [{"delivery": row.id, "key": receiver_key(row.url)} for row in rows],
            )

    def record_attempt(
        self,
        *,
        delivery_id: str,
        attempt: DeliveryAttempt,
        outcome: DeliveryStatus,
        next_attempt_at: datetime | None,
        receiver_failures: int,
        set_aside: bool = False,
    ) -> bool:
        """Log one attempt, move a pending delivery on, and hold back or free its receiver,
        in one transaction; False (and nothing written) if the delivery was not pending.

        `receiver_failures` counts the receiver's failed attempts in a row, this one
        included (0 after a 2xx). A failure writes the receiver's hold, one row however
        many deliveries wait for it: nothing more is sent to it before `next_attempt_at`
        (at once if this delivery was given up, keeping the count). A 2xx deletes the
        hold, as does giving up the last delivery waiting for the receiver. A delivery
        `set_aside` waits until `next_attempt_at` on its own: the receiver keeps its count
        but is not held, so its next delivery can be tried at once."""
        with self._write() as connection:
            moved = connection.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id, _PENDING)
                .values(
                    status=outcome.value,
                    attempts=webhook_deliveries.c.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    delivered_at=attempt.at if outcome == DeliveryStatus.delivered else None,
                )
                .returning(webhook_deliveries.c.receiver, webhook_deliveries.c.url)
            ).one_or_none()
            if moved is None:
                return False
            connection.execute(
                insert(webhook_attempts).values(delivery_id=delivery_id, **attempt.model_dump())
            )
            if outcome == DeliveryStatus.delivered or (
                next_attempt_at is None and not _waits(connection, moved.receiver)
            ):
                connection.execute(
                    delete(webhook_holds).where(webhook_holds.c.receiver == moved.receiver)
                )
            else:
                until = attempt.at if set_aside else next_attempt_at or attempt.at
                held = {"held_until": until, "failures": receiver_failures}
                dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
                connection.execute(
                    dialect.insert(webhook_holds)
                    .values(receiver=moved.receiver, url=moved.url, **held)
                    .on_conflict_do_update(index_elements=[webhook_holds.c.receiver], set_=held)
                )
        return True

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
                select(webhook_deliveries, webhook_holds.c.held_until)
                .select_from(
                    webhook_deliveries.outerjoin(
                        webhook_holds, webhook_holds.c.receiver == webhook_deliveries.c.receiver
                    )
                )
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
                next_attempt_at=_next_attempt(row),
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


def _ready_receivers() -> Select[Any]:
    """(receiver, created_at of its oldest pending delivery, failures in a row) of every
    receiver with a pending delivery that is not held back at `:now`.

    A loose index scan: each step of the recursion seeks the next receiver key in the
    pending part of `ix_webhook_deliveries_receiver`, so a receiver with 10,000 deliveries
    waiting costs one step, as one with a single delivery does."""
    key = webhook_deliveries.c.receiver
    first = select(key).where(_PENDING, key.is_not(None)).order_by(key).limit(1)
    walk = select(first.scalar_subquery().label("receiver")).cte("receivers", recursive=True)
    following = select(key).where(_PENDING, key > walk.c.receiver).order_by(key).limit(1)
    walk = walk.union_all(select(following.scalar_subquery()).where(walk.c.receiver.is_not(None)))
    head = (
        select(webhook_deliveries.c.created_at)
        .where(_PENDING, key == walk.c.receiver)
        .order_by(webhook_deliveries.c.created_at)
        .limit(1)
    )
    held = webhook_holds.c.held_until
    return (
        select(
            walk.c.receiver,
            head.scalar_subquery().label("head"),
            func.coalesce(webhook_holds.c.failures, 0).label("failures"),
        )
        .select_from(walk.outerjoin(webhook_holds, webhook_holds.c.receiver == walk.c.receiver))
        .where(walk.c.receiver.is_not(None), or_(held.is_(None), held <= bindparam("now")))
    )


# A receiver's first `:limit` pending deliveries due at `:now` in send order, read from
# its index (a delivery set aside after failing is passed over until it is due).
_OLDEST_PENDING = (
    select(
        webhook_deliveries.c.id,
        webhook_deliveries.c.url,
        webhook_deliveries.c.receiver,
        webhook_deliveries.c.payload,
        webhook_deliveries.c.created_at,
        webhook_deliveries.c.attempts,
        webhooks.c.secret,
    )
    .select_from(
        webhook_deliveries.outerjoin(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
    )
    .where(
        _PENDING,
        webhook_deliveries.c.receiver == bindparam("receiver"),
        webhook_deliveries.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
    .limit(bindparam("limit"))
)
_READY_RECEIVERS = _ready_receivers()


def _waits(connection: Connection, receiver: str) -> bool:
    """Whether a pending delivery waits for `receiver` (one step in its index)."""
    return (
        connection.execute(
            select(webhook_deliveries.c.id)
            .where(_PENDING, webhook_deliveries.c.receiver == receiver)
            .limit(1)
        ).first()
        is not None
    )


def _next_attempt(row: Any) -> datetime | None:
    """A pending delivery goes out no earlier than its own next attempt nor its receiver's
    hold (one row for all the receiver's deliveries, so this is where they meet)."""
    own: datetime | None = row.next_attempt_at
    held: datetime | None = row.held_until
    if row.status != DeliveryStatus.pending.value or own is None or held is None:
        return own
    return max(own, held)
