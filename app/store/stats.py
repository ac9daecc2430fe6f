"""Operations on the store as a whole: liveness, counts for metrics, retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, delete, func, literal, select

from app.schemas.stats import PipelineRun
from app.store.base import StoreBase
from app.store.rows import TERMINAL
from app.store.stat_tables import COUNTED_BOUNDS, job_counts, job_durations
from app.store.tables import job_events, job_output, jobs
from app.store.types import EVERYONE, Visibility


class StoreStats(StoreBase):
    """Ping, job counts and duration buckets, purge of old finished jobs."""

    def ping(self) -> None:
        """A round trip to the database; raises if it does not answer."""
        with self._read() as connection:
            connection.execute(select(literal(1))).scalar_one()

    def job_counts(self) -> list[tuple[str, str, str, int]]:
        """(status, pipeline, queue, count) for every combination present (from the
        counters the triggers keep: no scan of the jobs)."""
        total = func.sum(job_counts.c.n)
        with self._read() as connection:
            rows = connection.execute(
                select(job_counts.c.status, job_counts.c.pipeline_name, job_counts.c.queue, total)
                .group_by(job_counts.c.status, job_counts.c.pipeline_name, job_counts.c.queue)
                .having(total > 0)
            ).all()
        return [(row[0], row[1], row[2], int(row[3])) for row in rows]

    def duration_buckets(self, bounds: Sequence[float]) -> dict[str, tuple[list[int], int, float]]:
        """Per pipeline: cumulative counts of finished runs under each bound, count, sum.

        From the counters when `bounds` are the ones they count by, else by a scan."""
        if tuple(bounds) == COUNTED_BOUNDS:
            return self._counted_durations()
        columns = [func.sum(case((jobs.c.execution_time <= bound, 1), else_=0)) for bound in bounds]
        with self._read() as connection:
            rows = connection.execute(
                select(
                    jobs.c.pipeline_name, func.count(), func.sum(jobs.c.execution_time), *columns
                )
                .where(jobs.c.execution_time.is_not(None))
                .group_by(jobs.c.pipeline_name)
            ).all()
        return {
            row[0]: ([int(value or 0) for value in row[3:]], int(row[1]), float(row[2] or 0))
            for row in rows
        }

    def recent_runs(
        self,
        *,
        pipeline_name: str,
        queue: str | None = None,
        limit: int = 50,
        visibility: Visibility = EVERYONE,
    ) -> list[PipelineRun]:
        """A pipeline's most recent jobs (newest first) that the caller may see."""
        query = select(
            jobs.c.id,
            jobs.c.status,
            jobs.c.queue,
            jobs.c.created_at,
            jobs.c.started_at,
            jobs.c.completed_at,
            jobs.c.execution_time,
            jobs.c.attempt,
        ).where(jobs.c.pipeline_name == pipeline_name, visibility.clause())
        if queue is not None:
            query = query.where(jobs.c.queue == queue)
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [PipelineRun.model_validate(dict(row._mapping)) for row in rows]

    def _counted_durations(self) -> dict[str, tuple[list[int], int, float]]:
        buckets = [func.sum(job_durations.c[f"b{i}"]) for i in range(len(COUNTED_BOUNDS))]
        count = func.sum(job_durations.c.n)
        with self._read() as connection:
            rows = connection.execute(
                select(
                    job_durations.c.pipeline_name, count, func.sum(job_durations.c.total), *buckets
                )
                .group_by(job_durations.c.pipeline_name)
                .having(count > 0)
            ).all()
        return {
            row[0]: ([int(value or 0) for value in row[3:]], int(row[1]), float(row[2] or 0))
            for row in rows
        }

    def purge_finished(self, *, completed_before: datetime, batch: int = 500) -> int:
        """Delete one batch of terminal jobs (with output and events) finished before a time.

        In no order: sorting every terminal job by its end took seconds at a million jobs,
        with the write lock held. Expired jobs are the oldest, so either index finds a
        batch of them at once."""
        with self._write() as connection:
            ids = (
                connection.execute(
                    select(jobs.c.id)
                    .where(jobs.c.status.in_(TERMINAL), jobs.c.completed_at < completed_before)
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if ids:
                connection.execute(delete(job_output).where(job_output.c.job_id.in_(ids)))
                connection.execute(delete(job_events).where(job_events.c.job_id.in_(ids)))
                connection.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        return len(ids)
