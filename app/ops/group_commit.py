"""Group commit: concurrent submits share one write transaction and one broker producer.

No thread of its own: the first caller to find the turn free leads. It takes every
submit queued so far (its own among them), records them in one transaction, publishes
the new ones, and answers each. Callers that queued while it worked wait for the
turn; the next to get it finds its own submit answered, or leads the next group. A
lone submit is a group of one, with no added wait. On SQLite this turns one write
lock per job into one per group; on PostgreSQL one commit (one WAL flush) per group.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from app.broker.publisher import Broker
from app.schemas.jobs import Job
from app.store import JobManager, NewJob

MAX_GROUP = 256

Answer = Future[tuple[Job, bool]]


class GroupCommit:
    """Records and publishes concurrent submits together; each caller gets its own answer."""

    def __init__(self, *, manager: JobManager, broker: Broker) -> None:
        self._manager = manager
        self._broker = broker
        self._turn = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued: list[tuple[NewJob, Answer]] = []

    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Record `new`, publish it if `new.dispatched`; the job and whether it is new.

        Raises what recording it raised: when a group's transaction fails, every
        submit in it gets that error and none of them is recorded."""
        answer: Answer = Future()
        with self._queue_lock:
            self._queued.append((new, answer))
        with self._turn:
            if not answer.done():
                self._lead()
        return answer.result()

    def _lead(self) -> None:
        with self._queue_lock:
            group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
        try:
            self._record(group)
        except Exception as exc:
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)

    def _record(self, group: list[tuple[NewJob, Answer]]) -> None:
        jobs = self._manager.create_jobs([new for new, _ in group])
        if jobs is None:  # an idempotency key in the group is taken: one by one, then
            for new, answer in group:
                self._record_alone(new, answer)
            return
        self._publish([job for (new, _), job in zip(group, jobs, strict=True) if new.dispatched])
        for (_, answer), job in zip(group, jobs, strict=True):
            answer.set_result((job, True))

    def _record_alone(self, new: NewJob, answer: Answer) -> None:
        try:
            job, created = self._manager.create_job_from(new)
            if created and new.dispatched:
                self._publish([job])
        except Exception as exc:
            answer.set_exception(exc)
            return
        answer.set_result((job, created))

    def _publish(self, jobs: list[Job]) -> None:
        """Publish recorded jobs; one the broker refused stays for the maintenance pass."""
        for job in self._broker.publish_many(jobs):
            self._manager.mark_undispatched(job_id=job.id)
