"""Admission control: priorities, concurrency keys, admitted jobs, limits and users' turns.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WAITING = "status = 'pending' AND admitted_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("concurrency_key", sa.String(200)))
        batch.add_column(sa.Column("admitted_at", sa.DateTime))
        batch.add_column(sa.Column("admission_lane", sa.String(800)))
    # Every job recorded before admission existed was published at once: it is admitted.
    op.execute("UPDATE jobs SET admitted_at = created_at")
    op.create_index(
        "ix_jobs_waiting",
        "jobs",
        ["admission_lane", sa.text("priority DESC"), "created_at", "id"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )
    op.create_index("ix_jobs_user_status", "jobs", ["user_id", "status"])
    op.create_index("ix_jobs_admitted", "jobs", ["status", "admitted_at"])
    op.create_table(
        "admission_limits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(200)),
    )
    op.create_table(
        "admission_turns",
        sa.Column("user_key", sa.String(200), primary_key=True),
        sa.Column("turn", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("admission_turns")
    op.drop_table("admission_limits")
    op.drop_index("ix_jobs_admitted", table_name="jobs")
    op.drop_index("ix_jobs_user_status", table_name="jobs")
    op.drop_index("ix_jobs_waiting", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("admission_lane")
        batch.drop_column("admitted_at")
        batch.drop_column("concurrency_key")
        batch.drop_column("priority")
