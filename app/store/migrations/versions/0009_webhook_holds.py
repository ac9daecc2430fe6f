"""Hold back a failing webhook receiver with one row, instead of rewriting its deliveries.

`webhook_holds` has one row per receiver (URL) that failed since it last answered
2xx: the time before which nothing is sent to it, and its failures in a row.
Deliveries get `receiver`, the SHA-256 of their URL (a URL may be longer than a
PostgreSQL index entry), and an index on (status, receiver, created_at, id) from which
the sender reads each receiver's oldest pending deliveries; the index on (status,
next_attempt_at) that picking due deliveries used to sort is dropped.

Pending deliveries get their key, and a receiver that was failing (it has a pending
delivery with attempts) gets its hold: until the latest `next_attempt_at` of those
deliveries, with their most attempts as its failures.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RECEIVER_INDEX = ["status", "receiver", "created_at", "id"]
DUE_INDEX = ["status", "next_attempt_at"]

deliveries = sa.table(
    "webhook_deliveries",
    sa.column("id", sa.String),
    sa.column("url", sa.Text),
    sa.column("receiver", sa.String),
    sa.column("status", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime),
)


def receiver_key(url: str) -> str:
    """Frozen here: what `app.store.outbox.receiver_key` computed when this was written."""
    return hashlib.sha256(url.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("receiver", sa.String(64)))
    op.create_index("ix_webhook_deliveries_receiver", "webhook_deliveries", RECEIVER_INDEX)
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    holds = op.create_table(
        "webhook_holds",
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("held_until", sa.DateTime, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
    )
    pending = op.get_bind().execute(
        sa.select(
            deliveries.c.id, deliveries.c.url, deliveries.c.attempts, deliveries.c.next_attempt_at
        ).where(deliveries.c.status == "pending")
    )
    held: dict[str, dict[str, Any]] = {}
    keys = []
    for row in pending:
        key = receiver_key(row.url)
        keys.append({"delivery": row.id, "key": key})
        if row.attempts and row.next_attempt_at is not None:
            hold = held.setdefault(
                key, {"receiver": key, "url": row.url, "held_until": row.next_attempt_at}
            )
            hold["held_until"] = max(hold["held_until"], row.next_attempt_at)
            hold["failures"] = max(hold.get("failures", 0), row.attempts)
    if keys:
        op.get_bind().execute(
            sa.update(deliveries)
            .where(deliveries.c.id == sa.bindparam("delivery"))
            .values(receiver=sa.bindparam("key")),
            keys,
        )
    if held:
        op.bulk_insert(holds, list(held.values()))


def downgrade() -> None:
    op.drop_table("webhook_holds")
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", DUE_INDEX)
    op.drop_index("ix_webhook_deliveries_receiver", table_name="webhook_deliveries")
    # Not in a batch: on SQLite that copies the table, and dropping the original deletes
    # its attempts (ON DELETE CASCADE). SQLite drops an unindexed column in place.
    op.drop_column("webhook_deliveries", "receiver")
