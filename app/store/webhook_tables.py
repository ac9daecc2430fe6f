"""Tables of webhooks: subscriptions, per-job notify, the delivery outbox, attempts, leases.

Kept apart from `tables.py` on the same `metadata`; the schema is versioned by
Alembic (revision 0005).
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
    Column("payload", Text, nullable=False),  # the exact body, the same on every attempt
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
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

# A duty that one process at a time performs: held until `expires_at` unless renewed.
leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
