"""The API's side of the broker: publish job messages, ask for refreshes, read queue depths.

A job is committed before its message is published. If the broker is down the
job stays `pending` and the maintenance pass publishes it later. Duplicates are
harmless: only one delivery can claim a job.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from celery import Celery

from app.broker.celery_app import REFRESH_PIPELINES_TASK, RUN_JOB_TASK, create_celery
from app.core.config import Settings
from app.core.exceptions import BrokerUnavailable
from app.schemas.jobs import Job

logger = logging.getLogger(__name__)

BROKER_RETRY_AFTER_SECONDS = 2.0
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class Broker:
    """Publishes messages; remembers a failing broker briefly so submits stay fast."""

    def __init__(self, settings: Settings, celery: Celery | None = None) -> None:
        self._celery = celery or create_celery(settings)
        self._down_until = 0.0
        self._declared: set[str] = set()

    @property
    def seems_down(self) -> bool:
        """Whether a publish failed in the last few seconds (then submits skip publishing)."""
        return time.monotonic() < self._down_until

    def publish(self, job: Job) -> bool:
        """Send the job's message to its queue; False (and logged) if the broker refused."""
        return not self.publish_many([job])

    def publish_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Send the jobs' messages in one Redis pipeline; returns the jobs not sent (each
        logged): all of them when the broker refused the batch.

        Some of a refused batch may have reached Redis: their jobs are published again
        later, and only one delivery can claim a job."""
        try:
            with self._celery.producer_or_acquire() as producer, producer.batch():
                for job in jobs:
                    self._send(RUN_JOB_TASK, job.id, queue=job.queue, producer=producer)
        except Exception as exc:  # kombu raises many types; any of them means "not sent"
            self._down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
            for job in jobs:
                logger.warning(
                    "job %s: publish failed, will retry: %s",
                    job.id,
                    _describe(exc),
                    extra={"job_id": job.id},
                )
            return list(jobs)
        self._down_until = 0.0
        return []

    def request_refresh(self, queue: str) -> None:
        """Ask a worker of `queue` to inspect its project again."""
        try:
            self._send(REFRESH_PIPELINES_TASK, queue, queue=queue)
        except Exception as exc:  # kombu raises many types; any of them means "not sent"
            logger.warning("refresh of queue %s not sent: %s", queue, _describe(exc))
            raise BrokerUnavailable("the broker is unavailable; try again later") from None

    def ping(self) -> None:
        """A round trip to Redis; raises if it does not answer."""
        with self._redis() as client:
            client.ping()

    def queue_depths(self, queues: set[str]) -> dict[str, int]:
        """Messages waiting in each queue's Redis list."""
        with self._redis() as client:
            return {queue: int(client.llen(queue)) for queue in queues}

    def close(self) -> None:
        self._celery.close()

    def _send(self, task: str, argument: str, *, queue: str, producer: Any = None) -> None:
        # Celery declares the queue (a Redis round trip) and builds the argument's repr
        # for every message unless told: once per queue and process is enough.
        declared = queue in self._declared
        self._celery.send_task(
            task,
            args=[argument],
            queue=queue,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
            producer=producer,
            declare=[] if declared else None,
            argsrepr=repr([argument]),
            kwargsrepr="{}",
        )
        if not declared:
            self._declared.add(queue)

    @contextlib.contextmanager
    def _redis(self) -> Iterator[Any]:
        """The broker's Redis client, connected with a short timeout."""
        with self._celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
            yield connection.default_channel.client


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
