"""Stay fast at a million jobs: indexes for every listing filter with its order, and
job counts and run-time histograms kept by triggers in the writing transaction.

`GET /jobs` filters by status, pipeline and user (alone or together) and orders by
(created_at, id); each combination gets an index that serves both. The purge
walks finished jobs by `completed_at`. `GET /metrics` used to count and bucket
every job at each scrape; `job_counts` and `job_durations` now hold those figures,
maintained by triggers on `jobs` in the same transaction as each insert,
transition and delete (on PostgreSQL spread over 8 shards per key, so concurrent
writers do not queue on one counter row).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

# The SQL below is assembled from this module's constants only, never from input.
# ruff: noqa: S608

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen here: the histogram's bucket bounds when this revision was written
# (app/ops/metrics.py DURATION_BUCKETS must match them, or metrics scan instead).
BOUNDS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
SHARDS = 8

INDEXES = {
    "ix_jobs_status_created": ["status", "created_at", "id"],
    "ix_jobs_pipeline_created": ["pipeline_name", "created_at", "id"],
    "ix_jobs_pipeline_status_created": ["pipeline_name", "status", "created_at", "id"],
    "ix_jobs_user_created_id": ["user_id", "created_at", "id"],
    "ix_jobs_user_status_created": ["user_id", "status", "created_at", "id"],
    "ix_jobs_user_pipeline_created": ["user_id", "pipeline_name", "created_at", "id"],
    "ix_jobs_user_pipeline_status_created": [
        "user_id",
        "pipeline_name",
        "status",
        "created_at",
        "id",
    ],
    "ix_jobs_completed": ["completed_at"],
}
# Superseded by the ones above (a prefix of each).
DROPPED = {"ix_jobs_status": ["status"], "ix_jobs_user_created": ["user_id", "created_at"]}

BUCKETS = [f"b{i}" for i in range(len(BOUNDS))]


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)
    for name in DROPPED:
        op.drop_index(name, table_name="jobs")
    op.create_table(
        "job_counts",
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("pipeline_name", sa.String(200), primary_key=True),
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "job_durations",
        sa.Column("pipeline_name", sa.String(200), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        *(sa.Column(b, sa.BigInteger, nullable=False) for b in BUCKETS),
    )
    op.execute(
        "INSERT INTO job_counts (status, pipeline_name, queue, shard, n) "
        "SELECT status, pipeline_name, queue, 0, COUNT(*) FROM jobs "
        "GROUP BY status, pipeline_name, queue"
    )
    sums = ", ".join(
        f"SUM(CASE WHEN execution_time <= {bound} THEN 1 ELSE 0 END)" for bound in BOUNDS
    )
    op.execute(
        f"INSERT INTO job_durations (pipeline_name, shard, n, total, {', '.join(BUCKETS)}) "
        f"SELECT pipeline_name, 0, COUNT(*), SUM(execution_time), {sums} FROM jobs "
        "WHERE execution_time IS NOT NULL GROUP BY pipeline_name"
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def _count(row: str, shard: str, sign: str) -> str:
    """Add (sign `+`) or take away (`-`) one job of `row`'s kind in `job_counts`."""
    return (
        "INSERT INTO job_counts (status, pipeline_name, queue, shard, n) "
        f"VALUES ({row}.status, {row}.pipeline_name, {row}.queue, {shard}, {sign}1) "
        "ON CONFLICT (status, pipeline_name, queue, shard) "
        f"DO UPDATE SET n = job_counts.n {sign} 1;"
    )


def _duration(row: str, shard: str, sign: str) -> str:
    """Add or take away `row`'s run time in `job_durations`."""
    value = f"{row}.execution_time"
    buckets = ", ".join(f"{sign}CASE WHEN {value} <= {bound} THEN 1 ELSE 0 END" for bound in BOUNDS)
    excluded = ", ".join(f"{b} = job_durations.{b} + excluded.{b}" for b in BUCKETS)
    return (
        f"INSERT INTO job_durations (pipeline_name, shard, n, total, {', '.join(BUCKETS)}) "
        f"VALUES ({row}.pipeline_name, {shard}, {sign}1, {sign}{value}, {buckets}) "
        "ON CONFLICT (pipeline_name, shard) DO UPDATE SET n = job_durations.n + excluded.n, "
        f"total = job_durations.total + excluded.total, {excluded};"
    )


def _sqlite_triggers() -> None:
    # One writer at a time on SQLite: one shard is enough.
    op.execute(
        f"CREATE TRIGGER jobs_stats_insert AFTER INSERT ON jobs BEGIN {_count('NEW', '0', '+')} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_stats_status AFTER UPDATE OF status ON jobs "
        "WHEN OLD.status IS NOT NEW.status "
        f"BEGIN {_count('OLD', '0', '-')} {_count('NEW', '0', '+')} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_stats_duration_old AFTER UPDATE OF execution_time ON jobs "
        "WHEN OLD.execution_time IS NOT NULL AND OLD.execution_time IS NOT NEW.execution_time "
        f"BEGIN {_duration('OLD', '0', '-')} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_stats_duration_new AFTER UPDATE OF execution_time ON jobs "
        "WHEN NEW.execution_time IS NOT NULL AND OLD.execution_time IS NOT NEW.execution_time "
        f"BEGIN {_duration('NEW', '0', '+')} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_stats_insert_duration AFTER INSERT ON jobs "
        f"WHEN NEW.execution_time IS NOT NULL BEGIN {_duration('NEW', '0', '+')} END"
    )
    op.execute(
        f"CREATE TRIGGER jobs_stats_delete AFTER DELETE ON jobs BEGIN {_count('OLD', '0', '-')} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_stats_delete_duration AFTER DELETE ON jobs "
        f"WHEN OLD.execution_time IS NOT NULL BEGIN {_duration('OLD', '0', '-')} END"
    )


def _postgresql_triggers() -> None:
    shard = f"(abs(hashtext(%s.id)) %% {SHARDS})"
    new_shard, old_shard = shard % "NEW", shard % "OLD"
    body = f"""
    BEGIN
      IF TG_OP = 'DELETE' THEN
        {_count("OLD", old_shard, "-")}
        IF OLD.execution_time IS NOT NULL THEN {_duration("OLD", old_shard, "-")} END IF;
        RETURN NULL;
      END IF;
      IF TG_OP = 'INSERT' THEN
        {_count("NEW", new_shard, "+")}
        IF NEW.execution_time IS NOT NULL THEN {_duration("NEW", new_shard, "+")} END IF;
        RETURN NULL;
      END IF;
      IF OLD.status IS DISTINCT FROM NEW.status THEN
        {_count("OLD", old_shard, "-")}
        {_count("NEW", new_shard, "+")}
      END IF;
      IF OLD.execution_time IS DISTINCT FROM NEW.execution_time THEN
        IF OLD.execution_time IS NOT NULL THEN {_duration("OLD", old_shard, "-")} END IF;
        IF NEW.execution_time IS NOT NULL THEN {_duration("NEW", new_shard, "+")} END IF;
      END IF;
      RETURN NULL;
    END
    """
    op.execute(
        "CREATE OR REPLACE FUNCTION gateway_job_stats() RETURNS trigger LANGUAGE plpgsql AS $$"
        + body.replace("%%", "%")
        + "$$"
    )
    op.execute(
        "CREATE TRIGGER jobs_stats AFTER INSERT OR DELETE OR UPDATE OF status, execution_time "
        "ON jobs FOR EACH ROW EXECUTE FUNCTION gateway_job_stats()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS jobs_stats ON jobs")
        op.execute("DROP FUNCTION IF EXISTS gateway_job_stats()")
    else:
        for name in (
            "jobs_stats_insert",
            "jobs_stats_status",
            "jobs_stats_duration_old",
            "jobs_stats_duration_new",
            "jobs_stats_insert_duration",
            "jobs_stats_delete",
            "jobs_stats_delete_duration",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("job_durations")
    op.drop_table("job_counts")
    for name, columns in DROPPED.items():
        op.create_index(name, "jobs", columns)
    for name in INDEXES:
        op.drop_index(name, table_name="jobs")
