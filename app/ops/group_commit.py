"""Group commit: concurrent submits share one decision, one write transaction and one
broker pipeline.

No thread of its own: the first caller to find the turn free leads. It takes every
submit queued so far (its own among them), decides them together (`decide`: one
read of the limits for the group), records the accepted ones in one transaction,
answers each, then publishes the new ones. Callers that queued while it worked wait
for the turn; the next to get it finds its own submit answered, or leads the next
group. A lone submit is a group of one, with no added wait. On SQLite this turns one
write lock per job into one per group; on PostgreSQL one commit (one WAL flush) per
group.

A job is the store's once its transaction commits: a publish the broker refuses (or
one cut short by a crash) leaves it for the maintenance pass, which publishes it
again, so the answer does not wait for the publish. The callers' event loop sends
their answers, and takes their next submits, while the leader publishes.

An asynchronous caller (`submit_async`) does not hold a thread while it waits: the
first of them to find no leader at work starts one on a thread, which leads groups
until none is queued.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from app.broker.admission import release_waiting
from app.broker.publisher import Broker
from app.schemas.jobs import Job
from app.store import JobManager, NewJob

logger = logging.getLogger(__name__)

MAX_GROUP = 256

Answer = Future[tuple[Job, bool]]
Decide = Callable[[Sequence[NewJob]], list[NewJob | Exception]]


def _accept_all(news: Sequence[NewJob]) -> list[NewJob | Exception]:
    return list(news)


class GroupCommit:
    """Records and publishes concurrent submits together; each caller gets its own answer.

    `decide` sees each group before it is recorded and returns, per submit, the job to
    record (its `admitted` and `dispatched` decided) or the error to answer it with."""

    def __init__(
        self, *, manager: JobManager, broker: Broker, decide: Decide = _accept_all
    ) -> None:
        self._manager = manager
        self._broker = broker
        self._decide = decide
        self._turn = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued: list[tuple[NewJob, Answer]] = []
        self._leading = False

    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Record `new`, publish it if it is dispatched; the job and whether it is new.

        Raises what deciding or recording it raised: when a group's transaction fails,
        every submit in it gets that error and none of them is recorded."""
        answer = self._enqueue(new)
        with self._turn:
            if not answer.done():
                self._lead()
        return answer.result()

    async def submit_async(self, new: NewJob) -> tuple[Job, bool]:
        """As `submit`, waiting on the event loop rather than on a thread. A caller that
        goes away still has its submit recorded (the group does not drop it)."""
        answer = self._enqueue(new)
        with self._queue_lock:
            start, self._leading = not self._leading, True
        if start:
            asyncio.get_running_loop().run_in_executor(None, self._lead_while_queued)
        return await asyncio.shield(asyncio.wrap_future(answer))

    def _enqueue(self, new: NewJob) -> Answer:
        answer: Answer = Future()
        with self._queue_lock:
            self._queued.append((new, answer))
        return answer

    def _lead_while_queued(self) -> None:
        while True:
            with self._queue_lock:
                if not self._queued:
                    self._leading = False
                    return
            with self._turn:
                self._lead()

    def _lead(self) -> None:
        with self._queue_lock:
            group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
        if not group:
            return
        try:
            recorded = self._record(self._decided(group))
        except Exception as exc:
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)
            return
        self._publish(recorded)

    def _decided(self, group: list[tuple[NewJob, Answer]]) -> list[tuple[NewJob, Answer]]:
        """The group's accepted submits, as decided; the refused ones are answered."""
        accepted = []
        for (_, answer), decided in zip(
            group, self._decide([new for new, _ in group]), strict=True
        ):
            if isinstance(decided, Exception):
                answer.set_exception(decided)
            else:
                accepted.append((decided, answer))
        return accepted

    def _record(self, group: list[tuple[NewJob, Answer]]) -> list[Job]:
        """Record the group's submits and answer each; returns the new jobs to publish."""
        if not group:
            return []
        news = [new for new, _ in group]
        jobs = self._manager.create_jobs(news)
        found: list[tuple[Job, bool] | None]
        if jobs is None:  # an idempotency key in the group is taken: one by one, then
            found = [self._record_alone(new, answer) for new, answer in group]
        else:
            found = [(job, True) for job in jobs]
        self._answer(group, found)
        return [
            each[0]
            for new, each in zip(news, found, strict=True)
            if each is not None and each[1] and new.dispatched
        ]

    def _record_alone(self, new: NewJob, answer: Answer) -> tuple[Job, bool] | None:
        try:
            return self._manager.create_job_from(new)
        except Exception as exc:
            answer.set_exception(exc)
            return None

    def _answer(
        self, group: list[tuple[NewJob, Answer]], found: list[tuple[Job, bool] | None]
    ) -> None:
        """Answer each recorded submit; first, when a new one waits for admission, admit
        what fits (it may be admitted at once) and answer those as they are now."""
        waits = {
            each[0].id
            for (new, _), each in zip(group, found, strict=True)
            if each is not None and each[1] and not new.admitted
        }
        if waits:
            release_waiting(self._manager, self._broker)
        for (_, answer), each in zip(group, found, strict=True):
            if each is not None:
                job, created = each
                if job.id in waits:
                    job = self._manager.get_job(job_id=job.id)
                answer.set_result((job, created))

    def _publish(self, jobs: list[Job]) -> None:
        """Publish recorded jobs; one the broker refused stays for the maintenance pass
        (marked so; one that cannot be marked is published again once its dispatch is
        overdue)."""
        for job in self._broker.publish_many(jobs):
            try:
                self._manager.mark_undispatched(job_id=job.id)
            except Exception:
                logger.exception(
                    "job %s: could not mark it unpublished", job.id, extra={"job_id": job.id}
                )
