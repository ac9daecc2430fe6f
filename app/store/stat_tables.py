"""Counters kept by triggers on `jobs` (revision 0009): job counts and run-time buckets.

The triggers add and take away in the writing transaction, so the figures are
always those of the stored jobs, without scanning them. On PostgreSQL a key's
count is spread over shards (sum them); on SQLite there is one.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, String, Table

from app.store.tables import metadata

# The bucket bounds the triggers were written with (revision 0009).
COUNTED_BOUNDS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)

job_counts = Table(
    "job_counts",
    metadata,
    Column("status", String(16), primary_key=True),
    Column("pipeline_name", String(200), primary_key=True),
    Column("queue", String(100), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)

job_durations = Table(
    "job_durations",
    metadata,
    Column("pipeline_name", String(200), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("total", Float, nullable=False),
    *(Column(f"b{index}", BigInteger, nullable=False) for index in range(len(COUNTED_BOUNDS))),
)
