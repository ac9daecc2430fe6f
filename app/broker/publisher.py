"""The API's side of the broker: publish job messages, ask for refreshes, read queue depths.

A job is committed before its message is published. If the broker is down the
job stays `pending` and the maintenance pass publishes it later. Duplicates are
harmless: only one delivery can claim a job.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import uuid_utils
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
        self._run_message: RunMessage | None = None
        self._send_each = False  # Celery's configuration gives messages the template lacks

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
        if not jobs:
            return []
        try:
            with self._celery.producer_or_acquire() as producer:
                for queue in {job.queue for job in jobs} - self._declared:
                    producer.maybe_declare(
                        self._celery.amqp.queues[queue], retry=True, **_PUBLISH_RETRY
                    )
                    self._declared.add(queue)
                push = producer.connection.ensure(producer, self._push, **_PUBLISH_RETRY)
                push(producer, jobs)
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

    def _push(self, producer: Any, jobs: Sequence[Job]) -> None:
        """Push each job's run message onto its queue's Redis list, in one pipeline."""
        message = self._run_message or self._make_run_message(producer)
        if message is None:
            for job in jobs:
                self._send(RUN_JOB_TASK, job.id, queue=job.queue, producer=producer)
            return
        parent = self._celery.current_worker_task  # a run's end admitting the next ones
        lineage = (
            (parent.request.root_id or parent.request.id, parent.request.id) if parent else None
        )
        with producer.channel.conn_or_acquire() as client:
            pipeline = client.pipeline(transaction=False)
            for job in jobs:
                pipeline.lpush(job.queue, message.for_job(job.id, job.queue, lineage))
            pipeline.execute()

    def _make_run_message(self, producer: Any) -> RunMessage | None:
        """Have Celery publish a run with marks for what differs per job, onto a list of
        its own, and read it back: its format stays Celery's own. None (and each message
        sent by Celery from then on) if Celery's configuration gives it a form the marks
        cannot fill in, such as a priority (it then lands on another list) or compression."""
        if self._send_each:
            return None
        queue_mark = f"gateway-template-queue-{uuid.uuid4().hex}"
        self._declared.add(queue_mark)  # read back at once: nothing to declare
        self._send(
            RUN_JOB_TASK,
            _JOB_MARK,
            queue=queue_mark,
            producer=producer,
            task_id=_TASK_MARK,
            root_id=_ROOT_MARK,
            parent_id=_PARENT_MARK,
        )
        with producer.channel.conn_or_acquire() as client:
            published = client.rpop(queue_mark)
        try:
            self._run_message = RunMessage.from_published(published, queue_mark)
        except UnfillableMessage as exc:
            logger.warning("run messages are sent one by one by Celery: %s", exc)
            self._send_each = True
        return self._run_message

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

    def _send(
        self, task: str, argument: str, *, queue: str, producer: Any = None, **options: Any
    ) -> None:
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
            **options,
        )
        if not declared:
            self._declared.add(queue)

    @contextlib.contextmanager
    def _redis(self) -> Iterator[Any]:
        """The broker's Redis client, connected with a short timeout."""
        with self._celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
            yield connection.default_channel.client


_JOB_MARK = "gateway-mark-job"
_TASK_MARK = "gateway-mark-task"
_TAG_MARK = "gateway-mark-delivery-tag"
_BODY_MARK = "gateway-mark-body"
_ROOT_MARK = "gateway-mark-root"
_PARENT_MARK = "gateway-mark-parent"


class UnfillableMessage(RuntimeError):
    """Celery's message is not in the form `RunMessage` fills in."""


@dataclass(frozen=True)
class RunMessage:
    """A run's message as Celery's Redis transport writes it, with marks in place of
    the job, the task id, the delivery tag and the queue. Filling it in costs a few
    microseconds; `send_task` built each message anew (a tenth of a busy API's CPU).
    The marks hold a `-`, which base64 has not, so none can occur in an encoded body."""

    envelope: str
    body: str
    queue_mark: str

    @classmethod
    def from_published(cls, published: bytes | str | None, queue_mark: str) -> RunMessage:
        if published is None:
            raise UnfillableMessage("it did not land on the queue's own list (a priority?)")
        message = json.loads(published)
        properties = message["properties"]
        if properties.get("body_encoding") != "base64" or "compression" in message["headers"]:
            raise UnfillableMessage(f"its body is encoded or compressed: {properties!r}")
        body = base64.b64decode(message["body"]).decode()
        message["body"] = _BODY_MARK
        properties["delivery_tag"] = _TAG_MARK
        envelope = json.dumps(message)
        if _JOB_MARK not in body or f'"{_PARENT_MARK}"' not in envelope:
            raise UnfillableMessage("its body or headers are not Celery's protocol 2")
        return cls(envelope=envelope, body=body, queue_mark=queue_mark)

    def for_job(self, job_id: str, queue: str, lineage: tuple[str, str] | None = None) -> str:
        """The message that runs `job_id` (a UUID), for `queue`; `lineage`, the root and
        parent task ids of a message sent from a task (none: the message is its own root).

        Its task id and delivery tag come from `uuid_utils`, whose generator runs in the
        process: `uuid.uuid4()` reads the system's randomness for each id, a call that lets
        go of the GIL, and a group's thread publishing while the event loop is busy then
        waits to get it back (a tenth of that thread's time)."""
        task_id = str(uuid_utils.uuid4())
        root, parent = lineage or (task_id, None)
        body = base64.b64encode(self.body.replace(_JOB_MARK, job_id).encode()).decode()
        return (
            self.envelope.replace(_BODY_MARK, body)
            .replace(_JOB_MARK, job_id)
            .replace(_ROOT_MARK, root)
            .replace(f'"{_PARENT_MARK}"', json.dumps(parent))
            .replace(_TASK_MARK, task_id)
            .replace(_TAG_MARK, str(uuid_utils.uuid4()))
            .replace(self.queue_mark, json.dumps(queue)[1:-1])
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
