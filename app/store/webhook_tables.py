"""Tables of webhooks: subscriptions, per-job notify, the delivery outbox, attempts, holds
on failing receivers, leases.

Kept apart from `tables.py` on the same `metadata`; the schema is versioned by
Alembic (revisions 0005 and 0009).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from app.store.tables import UTCDateTime, metadata

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("description", Text),
    Column("duration_warning_seconds", Float),
    # HMAC needs the key itself, so it is stored as given (see docs/security.md).
    Column("secret", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200)),
)

job_notify = Table(
    "job_notify",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("duration_warning_seconds", Float),
)

# The outbox: one row per event and receiver, written in the transaction that caused it.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # the `webhook-id` header, on every attempt
    Column("webhook_id", String(36)),  # null: the job's own `notify`
    Column("job_id", String(36)),
    Column("event_type", String(40), nullable=False),
    Column("event_key", String(200), unique=True),  # one duration warning per attempt
    Column("url", Text, nullable=False),
    # SHA-256 of `url` (`outbox.receiver_key`): its receiver, a key short enough for an
    # index (a URL may be longer than a PostgreSQL index entry); null only on deliveries
    # already finished when revision 0009 added it.
    Column("receiver", String(64)),
    Column("payload", Text, nullable=False),  # the exact body, the same on every attempt
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    # Each receiver's pending deliveries in the order they are sent.
    Index("ix_webhook_deliveries_receiver", "status", "receiver", "created_at", "id"),
    Index("ix_webhook_deliveries_job", "job_id", "created_at"),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        String(40),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text),
    Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

# A receiver that failed since it last answered 2xx: one row, however many deliveries
# wait for it. None is sent before `held_until`; `failures` (attempts failed in a row)
# sets the next backoff. A 2xx deletes the row.
webhook_holds = Table(
    "webhook_holds",
    metadata,
    Column("receiver", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("held_until", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False),
)

# A duty that one process at a time performs: held until `expires_at` unless renewed.
leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
