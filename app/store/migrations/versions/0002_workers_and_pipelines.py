"""Workers' heartbeats and each queue's Kedro project snapshot.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("queues", sa.JSON, nullable=False),
        sa.Column("concurrency", sa.Integer),
        sa.Column("pid", sa.Integer),
        sa.Column("project_path", sa.Text),
        sa.Column("kedro_python", sa.Text),
        sa.Column("kedro_version", sa.String(50)),
        sa.Column("project_ok", sa.Boolean, nullable=False),
        sa.Column("project_error", sa.Text),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.Column("stopped_at", sa.DateTime),
    )
    op.create_table(
        "queue_projects",
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("pipelines", sa.JSON, nullable=False),
        sa.Column("project_path", sa.Text),
        sa.Column("kedro_version", sa.String(50)),
        sa.Column("worker", sa.String(255)),
        sa.Column("refreshed_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_projects")
    op.drop_table("workers")
