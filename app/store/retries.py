"""How an attempt ends when the job may retry: back to `pending`, or terminal.

Every end of an attempt goes through `finish_job` (the runner's outcome, and the
reaper's "worker lost"), so this is where the job's retry policy is applied. Both
ends stay compare-and-sets on (id, running, attempt): the attempt that claimed the
job is the only one that can end it, once. A terminal state is still final.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from app.schemas.jobs import JobStatus
from app.schemas.retry import RetryPolicy
from app.schemas.webhooks import WebhookEvent
from app.store.outbox import enqueue_job_event
from app.store.rows import OWNED, owner, record_event
from app.store.tables import jobs
from app.store.transitions import JobTransitions
from app.store.types import OutputBatch, RunOutcome, utcnow

logger = logging.getLogger(__name__)

# What ending an attempt needs from its row, locked until the attempt's end commits: a
# cancel landing in between would otherwise be lost to a retry (SQLite's writers take
# turns anyway; it has no FOR UPDATE).
_ATTEMPT = (
    select(
        jobs.c.retry,
        jobs.c.results,
        jobs.c.completed_nodes,
        jobs.c.started_at,
        jobs.c.worker,
        jobs.c.cancel_requested,
        jobs.c.resume_from,
    )
    .where(*OWNED)
    .with_for_update()
)


class JobRetries(JobTransitions):
    """End attempts by the job's retry policy; record each attempt in `results.attempts`."""

    def finish_job(
        self, *, job_id: str, attempt: int, outcome: RunOutcome, output: OutputBatch | None = None
    ) -> bool:
        """End the claimed attempt: `pending` again when the retry policy covers this
        failure and attempts remain, else terminal. False if the attempt no longer owns
        the job. The policy is read, and `output` (the attempt's last output) stored, in
        the transaction that ends the attempt."""
        retry_reason = None
        with self._write() as connection:
            row = connection.execute(_ATTEMPT, owner(job_id, attempt)).one_or_none()
            if row is None:
                return False
            policy = RetryPolicy.model_validate(row.retry) if row.retry else RetryPolicy()
            earlier = list((row.results or {}).get("attempts", []))
            attempts = [*earlier, _attempt_record(attempt, outcome, row)]
            if (
                outcome.status == JobStatus.failed
                and outcome.failure in policy.on
                and attempt < policy.max_attempts
                and not row.cancel_requested
            ):
                retry_reason = self._schedule_retry(
                    connection, job_id, attempt, outcome, policy, attempts, output
                )
                ended = retry_reason is not None
            else:
                outcome = replace(outcome, results={**outcome.results, "attempts": attempts})
                ended = self._finish_in(
                    connection, job_id=job_id, attempt=attempt, outcome=outcome, output=output
                )
        if retry_reason is not None:
            logger.warning("job %s: %s", job_id, retry_reason, extra={"job_id": job_id})
        elif ended:
            self._log_finished(job_id, outcome)
        return ended

    def _schedule_retry(
        self,
        connection: Connection,
        job_id: str,
        attempt: int,
        outcome: RunOutcome,
        policy: RetryPolicy,
        attempts: list[dict[str, Any]],
        output: OutputBatch | None,
    ) -> str | None:
        """running → pending, due after the policy's delay (the maintenance pass publishes
        it), in the caller's write transaction; returns why, or None if not owned."""
        now = utcnow()
        due = now + timedelta(seconds=policy.delay_before(attempt + 1))
        reason = (
            f"retrying after {str(outcome.failure).replace('_', ' ')}: attempt {attempt + 1} of "
            f"{policy.max_attempts} at {due.isoformat()} ({outcome.error_message})"
        )
        if output is not None:
            self._store_output(connection, job_id=job_id, attempt=attempt, batch=output)
        worker = connection.execute(
            update(jobs)
            .where(*OWNED)
            .values(
                status=JobStatus.pending.value,
                next_attempt_at=due,
                dispatched_at=None,
                dispatch_count=0,
                running_nodes=[],
                completed_nodes=[],
                total_nodes=None,
                exit_code=outcome.exit_code,
                execution_time=outcome.execution_time,
                error_message=outcome.error_message,
                results={"attempts": attempts},
                resume_from=None,
            )
            .returning(jobs.c.worker),
            owner(job_id, attempt),
        ).scalar_one_or_none()
        if worker is None:
            return None
        record_event(connection, job_id, JobStatus.pending, reason, attempt, worker, now)
        enqueue_job_event(connection, job_id=job_id, event=WebhookEvent.retrying, at=now)
        return reason

    def note_resume(
        self, *, job_id: str, attempt: int, resume_from: list[str], planned_nodes: list[str]
    ) -> None:
        """Record where this attempt resumes from and which nodes it runs."""
        with self._write() as connection:
            connection.execute(
                update(jobs)
                .where(*OWNED)
                .values(resume_from=resume_from, planned_nodes=planned_nodes),
                owner(job_id, attempt),
            )


def _attempt_record(attempt: int, outcome: RunOutcome, row: Any) -> dict[str, Any]:
    """One attempt as `results.attempts` lists it."""
    completed = outcome.results.get("completed_nodes", row.completed_nodes)
    return {
        "attempt": attempt,
        "status": outcome.status.value,
        "failure": outcome.failure,
        "exit_code": outcome.exit_code,
        "execution_time": outcome.execution_time,
        "completed_nodes": list(completed or []),
        "error": outcome.error_message,
        "worker": row.worker,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": utcnow().isoformat(),
        "resume_from": row.resume_from,
    }
