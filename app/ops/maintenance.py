"""The maintenance pass, in one place: reap lost runs, admit waiting jobs, publish what
needs it, purge.

The API runs it every `MAINTENANCE_INTERVAL_SECONDS`; a worker that starts reaps
the runs its own name had claimed. Every action is a compare-and-set, so several
API processes may run it at once. A message that Redis lost is re-published
after `REDISPATCH_AFTER_SECONDS`, with backoff, unless its queue still holds
messages (a long queue, not a lost message).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from starlette.concurrency import run_in_threadpool

from app.broker.admission import release_waiting
from app.broker.publisher import Broker
from app.core.config import Settings
from app.store import JobManager, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassReport:
    """What one pass did: the jobs it failed as lost, how many it published and purged,
    and how many waiting jobs it admitted (and published)."""

    lost: list[str]
    published: int
    purged: int
    admitted: int = 0


def maintenance_pass(manager: JobManager, broker: Broker, settings: Settings) -> PassReport:
    """One pass: fail lost runs, admit waiting jobs that fit, publish jobs that need it,
    purge old finished ones."""
    lost = manager.fail_lost_jobs(
        stale_before=manager.database_now() - settings.worker_lost_after,
        reason=f"no heartbeat for {settings.worker_lost_after_seconds:g} s",
    )
    admitted = release_waiting(manager, broker)
    return PassReport(
        lost=lost,
        published=_publish_due(manager, broker, settings),
        purged=_purge_old(manager, settings),
        admitted=admitted,
    )


def reap_restarted_worker(manager: JobManager, worker: str) -> list[str]:
    """Fail the running jobs a starting worker's name had claimed: nothing runs them now."""
    lost = manager.fail_jobs_of_worker(worker=worker, reason="the worker restarted")
    if lost:
        logger.warning("worker %s restarted: failed its unfinished jobs %s", worker, lost)
    return lost


async def maintain_forever(manager: JobManager, broker: Broker, settings: Settings) -> None:
    """Run the pass every `MAINTENANCE_INTERVAL_SECONDS` for as long as the API runs."""
    while True:
        try:
            await run_in_threadpool(maintenance_pass, manager, broker, settings)
        except Exception:
            logger.exception("maintenance pass failed; retrying")
        await asyncio.sleep(settings.maintenance_interval_seconds)


def _publish_due(manager: JobManager, broker: Broker, settings: Settings) -> int:
    due = manager.jobs_to_dispatch(
        redispatch_after=timedelta(seconds=settings.redispatch_after_seconds)
    )
    waiting = _queues_with_messages(broker, {job.queue for job, again in due if again})
    # A job whose queue holds messages is taken to be among them (a long queue, not a
    # lost message): it backs off as if published again, and leaves room in the next
    # pass for jobs that are due.
    queued = {job.id for job, again in due if again and job.queue in waiting}
    published: list[str] = []
    for job, _ in due:
        if job.id in queued:
            continue
        if not broker.publish(job):
            break
        published.append(job.id)
    manager.mark_all_dispatched(job_ids=[*published, *queued])
    return len(published)


def _queues_with_messages(broker: Broker, queues: set[str]) -> set[str]:
    if not queues:
        return set()
    try:
        return {queue for queue, depth in broker.queue_depths(queues).items() if depth}
    except Exception:  # the broker is down: the publishes fail and are retried next pass
        return set()


def _purge_old(manager: JobManager, settings: Settings) -> int:
    if settings.job_retention_days is None:
        return 0
    cutoff = utcnow() - timedelta(days=settings.job_retention_days)
    return manager.purge_finished(completed_before=cutoff)
