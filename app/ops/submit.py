"""Submit: check where a job is going, record it, then publish it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from app.broker.publisher import Broker
from app.core.config import DEFAULT_QUEUE
from app.core.exceptions import InvalidJobRequest, TooManyPendingJobs
from app.ops.group_commit import GroupCommit
from app.runner.command import check_for_kedro
from app.runner.graph import Graph, InvalidRunOptions
from app.schemas.jobs import Job, JobCreate
from app.schemas.pipelines import Pipeline, PipelineList
from app.schemas.retry import RetryPolicy
from app.store import JobManager, NewJob

REGISTRY_CACHE_SECONDS = 2.0
PENDING_CAP_RETRY_AFTER_SECONDS = 10


class Submitter:
    """Validates a request against the workers' projects, records it and publishes it."""

    def __init__(
        self, *, manager: JobManager, broker: Broker, retry_defaults: RetryPolicy | None = None
    ) -> None:
        self._manager = manager
        self._broker = broker
        self._group = GroupCommit(manager=manager, broker=broker, decide=self._decide)
        self._retry_defaults = retry_defaults or RetryPolicy()
        self._registry_cache: dict[str, tuple[float, PipelineList | None]] = {}

    def submit_job(
        self,
        *,
        request: JobCreate,
        user_id: str | None,
        idempotency_key: str | None,
        rerun_of: str | None = None,
        planned_nodes: list[str] | None = None,
    ) -> tuple[Job, bool]:
        """Record the job, then publish it (or admit what fits the limits); returns the job
        and whether it is new."""
        return self._group.submit(
            self._new_job(request, user_id, idempotency_key, rerun_of, planned_nodes)
        )

    async def submit_plain(self, *, request: JobCreate, user_id: str | None) -> tuple[Job, bool]:
        """`submit_job` of a request with no idempotency key, awaited on the event loop."""
        return await self._group.submit_async(self._new_job(request, user_id))

    def _new_job(
        self,
        request: JobCreate,
        user_id: str | None,
        idempotency_key: str | None = None,
        rerun_of: str | None = None,
        planned_nodes: list[str] | None = None,
    ) -> NewJob:
        """The job to record; its group's `_decide` sets `admitted` and `dispatched`."""
        return NewJob(
            request=request,
            user_id=user_id,
            idempotency_key=idempotency_key,
            dispatched=False,
            retry=self.retry_policy(request.retry),
            rerun_of=rerun_of,
            planned_nodes=planned_nodes,
        )

    def _decide(self, news: Sequence[NewJob]) -> list[NewJob | Exception]:
        """Check each submit of a group and decide whether it waits for admission, with one
        read of the limits for the whole group."""
        limits = self._manager.get_limits()
        pending: dict[str | None, int] = {}
        seems_down = self._broker.seems_down
        decided: list[NewJob | Exception] = []
        for new in news:
            try:
                self.check_destination(new.request)
                self._check_pending_cap(new.user_id, limits.max_pending_per_user, pending)
            except (InvalidJobRequest, TooManyPendingJobs) as exc:
                decided.append(exc)
                continue
            request = new.request
            limited = self._manager.is_limited(
                queue=request.queue,
                pipeline=request.pipeline_name,
                user_id=new.user_id,
                concurrency_key=request.concurrency_key,
                limits=limits,
            )
            decided.append(
                replace(new, admitted=not limited, dispatched=not limited and not seems_down)
            )
        return decided

    def _check_pending_cap(
        self, user_id: str | None, cap: int | None, pending: dict[str | None, int]
    ) -> None:
        """429 once the user has `cap` pending jobs, counting those earlier in the group."""
        if cap is None:
            return
        if user_id not in pending:
            pending[user_id] = self._manager.pending_count(user_id=user_id, at_most=cap)
        if pending[user_id] >= cap:
            raise TooManyPendingJobs(
                f"too many pending jobs: {user_id or 'this user'} has {cap} pending, the most "
                "allowed (max_pending_per_user); submit again once some have started",
                retry_after_seconds=PENDING_CAP_RETRY_AFTER_SECONDS,
            )
        pending[user_id] += 1

    def check_destination(self, request: JobCreate) -> None:
        """422 for a queue no worker ever served, a pipeline its project does not have, or
        what the project's Kedro version cannot run as asked."""
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
        check_for_kedro(request, request.parameters, kedro_version=project.kedro_version)
        nodes = self.pipeline(request.queue, request.pipeline_name).nodes
        if nodes:  # None or empty: the worker could not list them
            try:
                Graph(nodes).selected(request)
            except InvalidRunOptions as exc:
                raise InvalidJobRequest(f"pipeline {request.pipeline_name!r}: {exc}") from None

    def pipeline(self, queue: str, name: str) -> Pipeline:
        """The pipeline as the queue's workers last reported it; `nodes` None if unknown."""
        project = self._project(queue)
        found = [p for p in project.items if p.name == name] if project is not None else []
        return found[0] if found else Pipeline(name=name, nodes=None)

    def retry_policy(self, requested: RetryPolicy | None) -> RetryPolicy:
        """The request's retry policy, with the server's defaults for what it leaves out."""
        if requested is None:
            return self._retry_defaults
        return self._retry_defaults.model_copy(update=requested.model_dump(exclude_unset=True))

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
