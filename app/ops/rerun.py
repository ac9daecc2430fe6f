"""Reruns: a finished job again, from its start or from where it failed; retry defaults."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.core.config import Settings
from app.core.exceptions import InvalidJobRequest, JobConflict
from app.ops.submit import Submitter
from app.runner.graph import Graph, InvalidRunOptions, done_nodes, plan_resume
from app.schemas.jobs import Job, JobCreate, JobStatus, RunOptions
from app.schemas.rerun import JobRerun
from app.schemas.retry import RetryPolicy


def retry_defaults(settings: Settings) -> RetryPolicy:
    """The server-wide retry policy (`RETRY_*` settings) a job's `retry` falls back on."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        on=list(settings.retry_on),
        delay_seconds=settings.retry_delay_seconds,
        backoff=settings.retry_backoff,
        strategy=settings.retry_strategy,
    )


def rerun_job(submitter: Submitter, *, job: Job, body: JobRerun, user_id: str | None) -> Job:
    """Record and publish a new job repeating `job`, linked to it by `rerun_of`.

    From failure, it starts at the nodes Kedro would suggest (the nearest ones whose
    inputs are persisted) and runs only what did not complete; options in `body`
    replace the original's."""
    if not job.status.is_terminal:
        raise JobConflict(f"job {job.id} is {job.status.value}: only a finished job can be rerun")
    given = body.model_fields_set
    values: dict[str, Any] = {
        name: getattr(body if name in given else job, name) for name in RunOptions.model_fields
    }
    values.update(
        pipeline_name=job.pipeline_name,
        queue=job.queue,
        parameters=job.parameters if body.parameters is None else body.parameters,
        timeout_seconds=body.timeout_seconds if "timeout_seconds" in given else job.timeout_seconds,
        retry=body.retry if "retry" in given else job.retry,
    )
    planned = None
    if body.start == "failure":
        if "from_nodes" in given:
            raise InvalidJobRequest(
                'a rerun from failure computes its from_nodes; use "from": "start" to set them'
            )
        values["from_nodes"] = _resume_point(submitter, job)
    try:
        request = JobCreate.model_validate(values)
    except ValidationError as exc:
        raise InvalidJobRequest(_describe(exc)) from None
    if body.start == "failure":
        nodes = submitter.pipeline(job.queue, job.pipeline_name).nodes or []
        try:
            planned = Graph(nodes).selected(request)
        except InvalidRunOptions as exc:
            raise InvalidJobRequest(
                f"cannot rerun job {job.id} with these options: {exc}"
            ) from None
    rerun, _ = submitter.submit_job(
        request=request,
        user_id=user_id,
        idempotency_key=None,
        rerun_of=job.id,
        planned_nodes=planned,
    )
    return rerun


def _resume_point(submitter: Submitter, job: Job) -> list[str]:
    """The `from_nodes` that finish `job`'s own selection; 422 when nothing is left."""
    if job.status == JobStatus.completed:
        raise InvalidJobRequest(
            f'job {job.id} completed: there is nothing to resume (use "from": "start")'
        )
    pipeline = submitter.pipeline(job.queue, job.pipeline_name)
    try:
        plan = plan_resume(pipeline, job, done_nodes(job))
    except InvalidRunOptions as exc:
        raise InvalidJobRequest(f"cannot resume job {job.id}: {exc}") from None
    if not plan.from_nodes:
        raise InvalidJobRequest(
            f"job {job.id}: every node it selected completed; there is nothing to resume"
        )
    return plan.from_nodes


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
