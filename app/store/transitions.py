"""Job state transitions, each a compare-and-set on (id, status[, attempt]).

Celery delivers at least once, so a redelivered task that cannot claim its job
does nothing, only the attempt that claimed a job may finish it, and terminal
states never change.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from app.core.exceptions import JobConflict
from app.schemas.jobs import Job, JobStatus
from app.store.clock import NOW, database_now_expression, read_database_now
from app.store.outbox import enqueue_status_event
from app.store.output import OutputLog
from app.store.rows import JOB_COLUMNS, OWNED, owner, record_event, to_job
from app.store.tables import jobs
from app.store.types import EVERYONE, Claim, OutputBatch, RunOutcome, Visibility, utcnow

logger = logging.getLogger(__name__)

DISPATCH_BATCH = 200
# A job published but not claimed is due again after `redispatch_after`, doubled with
# each publish up to this many times: a long queue is not a lost message.
MAX_BACKOFF_DOUBLINGS = 6


class JobTransitions(OutputLog):
    """Dispatch bookkeeping, claim, heartbeat, finish, cancel and reaping of lost runs."""

    def jobs_to_dispatch(
        self, *, redispatch_after: timedelta, limit: int = DISPATCH_BATCH
    ) -> list[tuple[Job, bool]]:
        """Pending jobs never published, or published long ago and still unclaimed,
        oldest first.

        Each comes with whether it was published before (a re-publish). The backoff is
        part of the query, so jobs still backing off never fill the `limit` in front of
        a due one."""
        now = utcnow()
        with self._read() as connection:
            rows = connection.execute(
                select(*JOB_COLUMNS, jobs.c.dispatched_at)
                .where(
                    jobs.c.status == JobStatus.pending.value,
                    jobs.c.cancel_requested.is_(False),
                    or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at <= now),
                    jobs.c.admitted_at.is_not(None),
                    _dispatch_due(now, redispatch_after),
                )
                .order_by(jobs.c.created_at)
                .limit(limit)
            ).all()
        return [(to_job(row._mapping), row.dispatched_at is not None) for row in rows]

    def mark_all_dispatched(self, *, job_ids: list[str]) -> None:
        """Note that a message for each job was just published, or is known to be queued:
        each backs off further before it is due again."""
        if not job_ids:
            return
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.id.in_(job_ids), jobs.c.status == JobStatus.pending.value)
                .values(dispatched_at=utcnow(), dispatch_count=jobs.c.dispatch_count + 1)
            )

    def forget_dispatches(self) -> None:
        """Treat every pending job as never published (the broker was replaced)."""
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.status == JobStatus.pending.value)
                .values(dispatched_at=None, dispatch_count=0)
            )

    def mark_undispatched(self, *, job_id: str) -> None:
        """The publish failed: leave the job for the maintenance pass."""
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.pending.value)
                .values(dispatched_at=None)
            )

    def claim_job(self, *, job_id: str, worker: str) -> Claim | None:
        """pending → running for exactly one caller; None if it is not ours to run."""
        now = utcnow()
        with self._write() as connection:
            row = connection.execute(
                _claim_statement(connection.dialect.name),
                {"job_id": job_id, "now": now, "new_worker": worker},
            ).one_or_none()
            if row is None:
                return None
            record_event(connection, job_id, JobStatus.running, "claimed", row.attempt, worker, now)
            enqueue_status_event(connection, job_id=job_id, status=JobStatus.running, at=now)
        return Claim(job=to_job(row._mapping), attempt=row.attempt)

    def heartbeat(self, *, job_id: str, attempt: int) -> str | None:
        """Refresh the job's heartbeat; returns why the run must stop, or None to go on."""
        with self._write() as connection:
            row = connection.execute(
                _heartbeat_statement(connection.dialect.name),
                {**owner(job_id, attempt), "now": utcnow()},
            ).one_or_none()
        if row is None:
            return "the job is no longer owned by this attempt"
        if row.cancel_requested:
            return str(row.cancel_reason or "cancelled")
        return None

    def finish_job(
        self, *, job_id: str, attempt: int, outcome: RunOutcome, output: OutputBatch | None = None
    ) -> bool:
        """running → terminal, only for the attempt that claimed the job; `output`, the
        run's last output, is stored in the same transaction."""
        with self._write() as connection:
            finished = self._finish_in(
                connection, job_id=job_id, attempt=attempt, outcome=outcome, output=output
            )
        if finished:
            self._log_finished(job_id, outcome)
        return finished

    @staticmethod
    def _log_finished(job_id: str, outcome: RunOutcome) -> None:
        logger.info(
            "job %s %s (exit code %s)",
            job_id,
            outcome.status.value,
            outcome.exit_code,
            extra={"job_id": job_id},
        )

    def _finish_in(
        self,
        connection: Connection,
        *,
        job_id: str,
        attempt: int,
        outcome: RunOutcome,
        output: OutputBatch | None,
    ) -> bool:
        """`finish_job`'s writes, in the caller's write transaction."""
        now = utcnow()
        if output is not None:
            self._store_output(connection, job_id=job_id, attempt=attempt, batch=output)
        worker = connection.execute(
            _FINISH,
            {
                **owner(job_id, attempt),
                "new_status": outcome.status.value,
                "now": now,
                "new_exit_code": outcome.exit_code,
                "new_execution_time": outcome.execution_time,
                "new_error_message": outcome.error_message,
                "new_results": outcome.results,
            },
        ).scalar_one_or_none()
        if worker is None:
            return False
        record_event(
            connection, job_id, outcome.status, outcome.error_message, attempt, worker, now
        )
        enqueue_status_event(connection, job_id=job_id, status=outcome.status, at=now)
        return True

    def request_cancel(self, *, job_id: str, reason: str, visibility: Visibility = EVERYONE) -> Job:
        """Cancel a pending job at once, or ask the attempt running it to stop."""
        for _ in range(5):
            job = self.get_job(job_id=job_id, visibility=visibility)
            if job.status.is_terminal:
                raise JobConflict(f"job {job_id} is already {job.status.value}")
            if self._cancel_if_still(job.status, job_id=job_id, reason=reason):
                return self._get(job_id)
        raise JobConflict(f"job {job_id} changed state while being cancelled; try again")

    def _cancel_if_still(self, status: JobStatus, *, job_id: str, reason: str) -> bool:
        now = utcnow()
        still = (jobs.c.id == job_id, jobs.c.status == status.value)
        with self._write() as connection:
            if status == JobStatus.running:
                return bool(
                    connection.execute(
                        update(jobs)
                        .where(*still)
                        .values(cancel_requested=True, cancel_reason=reason)
                    ).rowcount
                )
            cancelled = connection.execute(
                update(jobs)
                .where(*still)
                .values(
                    status=JobStatus.cancelled.value,
                    completed_at=now,
                    cancel_requested=True,
                    cancel_reason=reason,
                    error_message=reason,
                )
            ).rowcount
            if cancelled:
                record_event(connection, job_id, JobStatus.cancelled, reason, 0, None, now)
                enqueue_status_event(connection, job_id=job_id, status=JobStatus.cancelled, at=now)
        return bool(cancelled)

    def database_now(self) -> datetime:
        """The database's clock: heartbeats are written by it, so lost runs are judged by it."""
        with self._read() as connection:
            return read_database_now(connection)

    def fail_lost_jobs(self, *, stale_before: datetime, reason: str) -> list[str]:
        """Fail running jobs whose heartbeat is older than `stale_before`."""
        with self._read() as connection:
            rows = connection.execute(
                select(jobs.c.id, jobs.c.attempt, jobs.c.worker).where(
                    jobs.c.status == JobStatus.running.value, jobs.c.heartbeat_at < stale_before
                )
            ).all()
        return [row.id for row in rows if self._fail_lost(row.id, row.attempt, row.worker, reason)]

    def fail_jobs_of_worker(self, *, worker: str, reason: str) -> list[str]:
        """Fail the running jobs a (re)starting worker had claimed: it no longer runs them."""
        with self._read() as connection:
            rows = connection.execute(
                select(jobs.c.id, jobs.c.attempt).where(
                    jobs.c.status == JobStatus.running.value, jobs.c.worker == worker
                )
            ).all()
        return [row.id for row in rows if self._fail_lost(row.id, row.attempt, worker, reason)]

    def _fail_lost(self, job_id: str, attempt: int, worker: str | None, reason: str) -> bool:
        message = f"worker lost: {reason}" + (f" ({worker})" if worker else "")
        outcome = RunOutcome(
            status=JobStatus.failed,
            exit_code=None,
            execution_time=None,
            error_message=message,
            results={"error": message},
            failure="worker_lost",
        )
        finished = self.finish_job(job_id=job_id, attempt=attempt, outcome=outcome)
        if finished:
            logger.warning("job %s failed: %s", job_id, message, extra={"job_id": job_id})
        return finished


@cache
def _claim_statement(dialect: str) -> Any:
    return (
        update(jobs)
        .where(
            jobs.c.id == bindparam("job_id"),
            jobs.c.status == JobStatus.pending.value,
            jobs.c.cancel_requested.is_(False),
            # A retry waits for its time even if an old message turns up early.
            or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at <= NOW),
        )
        .values(
            status=JobStatus.running.value,
            next_attempt_at=None,
            attempt=jobs.c.attempt + 1,
            worker=bindparam("new_worker"),
            started_at=NOW,
            heartbeat_at=database_now_expression(dialect),
        )
        .returning(*JOB_COLUMNS)
    )


@cache
def _heartbeat_statement(dialect: str) -> Any:
    return (
        update(jobs)
        .where(*OWNED)
        .values(heartbeat_at=database_now_expression(dialect))
        .returning(jobs.c.cancel_requested, jobs.c.cancel_reason)
    )


_FINISH = (
    update(jobs)
    .where(*OWNED)
    .values(
        status=bindparam("new_status"),
        completed_at=NOW,
        running_nodes=[],
        exit_code=bindparam("new_exit_code"),
        execution_time=bindparam("new_execution_time"),
        error_message=bindparam("new_error_message"),
        results=bindparam("new_results", type_=jobs.c.results.type),
    )
    .returning(jobs.c.worker)
)


def _dispatch_due(now: datetime, redispatch_after: timedelta) -> Any:
    """Never published, or published more than `redispatch_after` ago, doubled per
    publish after the first (up to `MAX_BACKOFF_DOUBLINGS` times)."""
    published_before = [
        jobs.c.dispatched_at < now - redispatch_after * 2**doublings
        for doublings in range(MAX_BACKOFF_DOUBLINGS + 1)
    ]
    count = jobs.c.dispatch_count
    return or_(
        jobs.c.dispatched_at.is_(None),
        and_(count <= 1, published_before[0]),
        *(
            and_(count == doublings + 1, published_before[doublings])
            for doublings in range(1, MAX_BACKOFF_DOUBLINGS)
        ),
        and_(count > MAX_BACKOFF_DOUBLINGS, published_before[MAX_BACKOFF_DOUBLINGS]),
    )
