"""Reruns and retries: the job a rerun repeats, the retry policy, the next attempt's
time, and the nodes a resumed run starts from and runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("rerun_of", sa.String(36)))
        batch.add_column(sa.Column("retry", sa.JSON))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime))
        batch.add_column(sa.Column("resume_from", sa.JSON))
        batch.add_column(sa.Column("planned_nodes", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("planned_nodes")
        batch.drop_column("resume_from")
        batch.drop_column("next_attempt_at")
        batch.drop_column("retry")
        batch.drop_column("rerun_of")
