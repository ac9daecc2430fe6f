"""Celery tasks: thin wrappers that hand a job id (or a queue) to the core.

Delivery is at least once, so a task re-reads its job and does nothing unless
it can claim it (pending → running) for itself.
"""

from __future__ import annotations

import logging
from typing import Any

from app.celery_app import REFRESH_PIPELINES_TASK, RUN_JOB_TASK, celery_app
from app.core.config import get_settings
from app.core.kedro_runner import KedroRunner
from app.core.logs import job_context
from app.core.services import core_for_this_process
from app.core.worker_presence import publish_project

logger = logging.getLogger(__name__)


def _worker_name(task: Any) -> str:
    return str(getattr(task.request, "hostname", None) or "unknown")


@celery_app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def run_job(self: Any, job_id: str) -> None:
    """Claim the job and run it to its end; skip it if another attempt owns it."""
    core = core_for_this_process(get_settings())
    with job_context(job_id):
        claim = core.manager.claim_job(job_id=job_id, worker=_worker_name(self))
        if claim is None:
            logger.info(
                "job %s: not claimable (already claimed, finished or cancelled); skipped", job_id
            )
            return
        KedroRunner(manager=core.manager, settings=core.settings).run(claim)


@celery_app.task(name=REFRESH_PIPELINES_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def refresh_pipelines(self: Any, queue: str) -> None:
    """Re-inspect this worker's Kedro project and store its pipelines for `queue`."""
    core = core_for_this_process(get_settings())
    publish_project(core.manager, core.settings, worker=_worker_name(self), queues=[queue])
