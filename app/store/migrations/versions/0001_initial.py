"""Jobs, their output chunks and their state transitions.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("pipeline_name", sa.String(200), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("timeout_seconds", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("idempotency_scope", sa.String(600), unique=True),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("completed_at", sa.DateTime),
        sa.Column("execution_time", sa.Float),
        sa.Column("exit_code", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("completed_nodes", sa.JSON, nullable=False),
        sa.Column("total_nodes", sa.Integer),
        sa.Column("results", sa.JSON),
        sa.Column("worker", sa.String(255)),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("cancel_reason", sa.String(300)),
        sa.Column("output_bytes", sa.BigInteger, nullable=False),
        sa.Column("output_dropped_bytes", sa.BigInteger, nullable=False),
        sa.Column("dispatched_at", sa.DateTime),
        sa.Column("dispatch_count", sa.Integer, nullable=False),
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_at"])
    op.create_table(
        "job_output",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("offset", sa.BigInteger, primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(255)),
    )
    op.create_index("ix_job_events_job", "job_events", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("job_events")
    op.drop_table("job_output")
    op.drop_table("jobs")
