"""Submit: check where a job is going, record it, then publish it."""

from __future__ import annotations

import time

from app.broker.admission import release_waiting
from app.broker.publisher import Broker
from app.core.config import DEFAULT_QUEUE
from app.core.exceptions import InvalidJobRequest, TooManyPendingJobs
from app.schemas.jobs import Job, JobCreate
from app.schemas.pipelines import PipelineList
from app.store import JobManager

REGISTRY_CACHE_SECONDS = 2.0
PENDING_CAP_RETRY_AFTER_SECONDS = 10


class Submitter:
    """Validates a request against the workers' projects, records it and publishes it."""

    def __init__(self, *, manager: JobManager, broker: Broker) -> None:
        self._manager = manager
        self._broker = broker
        self._registry_cache: dict[str, tuple[float, PipelineList | None]] = {}

    def submit_job(
        self, *, request: JobCreate, user_id: str | None, idempotency_key: str | None
    ) -> tuple[Job, bool]:
        """Record the job, then publish it (or admit what fits the limits); returns the job
        and whether it is new."""
        self.check_destination(request)
        limited, limits = self._manager.is_limited(
            queue=request.queue,
            pipeline=request.pipeline_name,
            user_id=user_id,
            concurrency_key=request.concurrency_key,
        )
        cap = limits.max_pending_per_user
        if cap is not None and self._manager.pending_count(user_id=user_id, at_most=cap) >= cap:
            raise TooManyPendingJobs(
                f"too many pending jobs: {user_id or 'this user'} has {cap} pending, the most "
                "allowed (max_pending_per_user); submit again once some have started",
                retry_after_seconds=PENDING_CAP_RETRY_AFTER_SECONDS,
            )
        publish_now = not limited and not self._broker.seems_down
        job, created = self._manager.create_job(
            request=request,
            user_id=user_id,
            idempotency_key=idempotency_key,
            dispatched=publish_now,
            admitted=not limited,
        )
        if created and publish_now and not self._broker.publish(job):
            self._manager.mark_undispatched(job_id=job.id)
        if created and limited:
            release_waiting(self._manager, self._broker)
            job = self._manager.get_job(job_id=job.id)
        return job, created

    def check_destination(self, request: JobCreate) -> None:
        """422 for a queue no worker ever served, or a pipeline its project does not have."""
        project = self._project(request.queue)
        if project is None:
            if request.queue != DEFAULT_QUEUE and request.queue not in self._manager.known_queues():
                raise InvalidJobRequest(
                    f"unknown queue {request.queue!r}: no worker has ever served it "
                    f"(start one with -Q {request.queue})"
                )
            return
        names = sorted(pipeline.name for pipeline in project.items)
        if request.pipeline_name not in names:
            raise InvalidJobRequest(
                f"unknown pipeline {request.pipeline_name!r} on queue {request.queue!r}; "
                f"known pipelines: {', '.join(names)}"
            )

    def forget_project(self, queue: str) -> None:
        """Drop the cached registry of `queue` (a refresh was asked for)."""
        self._registry_cache.pop(queue, None)

    def _project(self, queue: str) -> PipelineList | None:
        """The queue's pipeline registry, cached briefly so submits stay one write."""
        now = time.monotonic()
        cached = self._registry_cache.get(queue)
        if cached is None or cached[0] < now:
            cached = (now + REGISTRY_CACHE_SECONDS, self._manager.get_project(queue=queue))
            self._registry_cache[queue] = cached
        return cached[1]
