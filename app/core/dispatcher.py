"""Submit jobs and keep them moving: publish to Celery, re-publish, reap lost runs.

A job is committed before its message is published. If the broker is down the
job stays `pending` and the maintenance pass publishes it later; a message that
Redis lost is re-published after `REDISPATCH_AFTER_SECONDS` (with backoff).
Duplicates are harmless: only one delivery can claim a job.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from celery import Celery

from app.celery_app import REFRESH_PIPELINES_TASK, RUN_JOB_TASK, create_celery
from app.core.config import DEFAULT_QUEUE, Settings
from app.core.exceptions import BrokerUnavailable, InvalidJobRequest
from app.core.job_manager import JobManager, utcnow
from app.schemas.jobs import Job, JobCreate
from app.schemas.pipelines import PipelineList

logger = logging.getLogger(__name__)

BROKER_RETRY_AFTER_SECONDS = 2.0
REGISTRY_CACHE_SECONDS = 2.0
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class Dispatcher:
    """Publishes job messages; remembers a failing broker briefly so submits stay fast."""

    def __init__(
        self, *, manager: JobManager, settings: Settings, celery: Celery | None = None
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._celery = celery or create_celery(settings)
        self._broker_down_until = 0.0
        self._registry_cache: dict[str, tuple[float, PipelineList | None]] = {}

    def submit_job(
        self, *, request: JobCreate, user_id: str | None, idempotency_key: str | None
    ) -> tuple[Job, bool]:
        """Record the job, then publish it; returns the job and whether it is new."""
        self.check_destination(request)
        publish_now = time.monotonic() >= self._broker_down_until
        job, created = self._manager.create_job(
            request=request,
            user_id=user_id,
            idempotency_key=idempotency_key,
            dispatched=publish_now,
        )
        if created and publish_now and not self.publish(job):
            self._manager.mark_undispatched(job_id=job.id)
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

    def _project(self, queue: str) -> PipelineList | None:
        """The queue's pipeline registry, cached briefly so submits stay one write."""
        now = time.monotonic()
        cached = self._registry_cache.get(queue)
        if cached is None or cached[0] < now:
            cached = (now + REGISTRY_CACHE_SECONDS, self._manager.get_project(queue=queue))
            self._registry_cache[queue] = cached
        return cached[1]

    def request_refresh(self, queue: str) -> None:
        """Ask a worker of `queue` to inspect its project again."""
        try:
            self._celery.send_task(
                REFRESH_PIPELINES_TASK,
                args=[queue],
                queue=queue,
                retry=True,
                retry_policy=_PUBLISH_RETRY,
            )
        except Exception as exc:  # kombu raises many types; any of them means "not sent"
            logger.warning("refresh of queue %s not sent: %s", queue, _describe(exc))
            raise BrokerUnavailable("the broker is unavailable; try again later") from None
        self._registry_cache.pop(queue, None)

    def ping_broker(self) -> None:
        """A round trip to Redis; raises if it does not answer."""
        with self._redis() as client:
            client.ping()

    def queue_depths(self, queues: set[str]) -> dict[str, int]:
        """Messages waiting in each queue's Redis list."""
        with self._redis() as client:
            return {queue: int(client.llen(queue)) for queue in queues}

    @contextlib.contextmanager
    def _redis(self) -> Iterator[Any]:
        """The broker's Redis client, connected with a short timeout."""
        with self._celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
            yield connection.default_channel.client

    def publish(self, job: Job) -> bool:
        """Send the job's message to its queue; False (and logged) if the broker refused."""
        try:
            self._celery.send_task(
                RUN_JOB_TASK,
                args=[job.id],
                queue=job.queue,
                retry=True,
                retry_policy=_PUBLISH_RETRY,
            )
        except Exception as exc:  # kombu raises many types; any of them means "not sent"
            self._broker_down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
            logger.warning(
                "job %s: publish failed, will retry: %s",
                job.id,
                _describe(exc),
                extra={"job_id": job.id},
            )
            return False
        self._broker_down_until = 0.0
        return True

    def maintain(self) -> dict[str, Any]:
        """One maintenance pass: fail lost runs, publish jobs that need it, purge old ones."""
        lost = self._manager.fail_lost_jobs(
            stale_before=utcnow() - self._settings.worker_lost_after,
            reason=f"no heartbeat for {self._settings.worker_lost_after_seconds:g} s",
        )
        published = 0
        due = self._manager.jobs_to_dispatch(
            redispatch_after=timedelta(seconds=self._settings.redispatch_after_seconds)
        )
        waiting = self._queues_with_messages({job.queue for job, again in due if again})
        for job, again in due:
            if again and job.queue in waiting:
                continue  # its queue still holds messages: a long queue, not a lost message
            if not self.publish(job):
                break
            self._manager.mark_dispatched(job_id=job.id)
            published += 1
        purged = 0
        if self._settings.job_retention_days is not None:
            cutoff = utcnow() - timedelta(days=self._settings.job_retention_days)
            purged = self._manager.purge_finished(completed_before=cutoff)
        return {"lost": lost, "published": published, "purged": purged}

    def _queues_with_messages(self, queues: set[str]) -> set[str]:
        if not queues:
            return set()
        try:
            return {queue for queue, depth in self.queue_depths(queues).items() if depth}
        except Exception:  # the broker is down: the publishes below fail and are retried
            return set()

    def close(self) -> None:
        self._celery.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
