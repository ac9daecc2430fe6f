"""Each worker's runner mode and why warming failed, if it did.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("runner_mode", sa.String(10)))
        batch.add_column(sa.Column("warm_error", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("warm_error")
        batch.drop_column("runner_mode")
