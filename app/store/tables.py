"""Table definitions of the job store (the schema itself is versioned by Alembic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(parsed, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return parsed.replace(tzinfo=UTC)


metadata = MetaData()

WAITING = "status = 'pending' AND admitted_at IS NULL"

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("pipeline_name", String(200), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("queue", String(100), nullable=False),
    Column("timeout_seconds", Float),
    Column("status", String(16), nullable=False),
    Column("user_id", String(200)),
    Column("idempotency_scope", String(600), unique=True),
    Column("request_hash", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("execution_time", Float),
    Column("exit_code", Integer),
    Column("error_message", Text),
    Column("completed_nodes", JSON, nullable=False),
    Column("total_nodes", Integer),
    Column("running_nodes", JSON),
    Column("results", JSON),
    Column("worker", String(255)),
    Column("attempt", Integer, nullable=False),
    Column("pid", Integer),
    Column("heartbeat_at", UTCDateTime),
    Column("cancel_requested", Boolean, nullable=False),
    Column("cancel_reason", String(300)),
    Column("output_bytes", BigInteger, nullable=False),
    Column("output_dropped_bytes", BigInteger, nullable=False),
    Column("dispatched_at", UTCDateTime),
    Column("dispatch_count", Integer, nullable=False),
    Column("rerun_of", String(36)),
    Column("retry", JSON),
    Column("next_attempt_at", UTCDateTime),
    Column("resume_from", JSON),
    Column("planned_nodes", JSON),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("concurrency_key", String(200)),
    # Admitted: holds a slot under the limits (published, or running) until it ends.
    Column("admitted_at", UTCDateTime),
    # Which limits apply to the job: waiting jobs of one lane are all held or all free.
    Column("admission_lane", String(800)),
    # Each listing filter (status, pipeline, user, together) with the listing's order.
    Index("ix_jobs_created", "created_at", "id"),
    Index("ix_jobs_status_created", "status", "created_at", "id"),
    Index("ix_jobs_pipeline_created", "pipeline_name", "created_at", "id"),
    Index("ix_jobs_pipeline_status_created", "pipeline_name", "status", "created_at", "id"),
    Index("ix_jobs_user_created_id", "user_id", "created_at", "id"),
    Index("ix_jobs_user_status_created", "user_id", "status", "created_at", "id"),
    Index("ix_jobs_user_pipeline_created", "user_id", "pipeline_name", "created_at", "id"),
    Index(
        "ix_jobs_user_pipeline_status_created",
        "user_id",
        "pipeline_name",
        "status",
        "created_at",
        "id",
    ),
    Index("ix_jobs_completed", "completed_at"),
    Index("ix_jobs_admitted", "status", "admitted_at"),
    Index(
        "ix_jobs_waiting",
        "admission_lane",
        text("priority DESC"),
        "created_at",
        "id",
        sqlite_where=text(WAITING),
        postgresql_where=text(WAITING),
    ),
)

job_output = Table(
    "job_output",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(255)),
    Index("ix_job_events_job", "job_id", "id"),
)

workers = Table(
    "workers",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("queues", JSON, nullable=False),
    Column("concurrency", Integer),
    Column("pid", Integer),
    Column("project_path", Text),
    Column("kedro_python", Text),
    Column("kedro_version", String(50)),
    Column("project_ok", Boolean, nullable=False),
    Column("project_error", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    Column("runner_mode", String(10)),
    Column("warm_error", Text),
)

queue_projects = Table(
    "queue_projects",
    metadata,
    Column("queue", String(100), primary_key=True),
    Column("pipelines", JSON, nullable=False),
    Column("project_path", Text),
    Column("kedro_version", String(50)),
    Column("worker", String(255)),
    Column("refreshed_at", UTCDateTime, nullable=False),
)

admission_limits = Table(
    "admission_limits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("limits", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(200)),
)

admission_turns = Table(
    "admission_turns",
    metadata,
    Column("user_key", String(200), primary_key=True),
    Column("turn", BigInteger, nullable=False),
)
