"""Drop `ix_jobs_user_status`: `ix_jobs_user_status_created` begins with the same two
columns and serves every query it served (the pending cap's count among them), and
each index is one more to update in every submit's write transaction.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_jobs_user_status", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_user_status", "jobs", ["user_id", "status"])
