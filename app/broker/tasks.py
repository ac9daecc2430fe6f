"""Celery tasks: thin wrappers that hand a job id (or a queue) to the core.

Delivery is at least once, so a task re-reads its job and does nothing unless
it can claim it (pending → running) for itself.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from app.broker.admission import release_waiting
from app.broker.celery_app import REFRESH_PIPELINES_TASK, RUN_JOB_TASK, celery_app
from app.broker.presence import known_project, publish_project
from app.broker.publisher import Broker
from app.core.config import Settings, get_settings
from app.core.logs import job_context
from app.runner.run import KedroRunner
from app.runner.warm import warm_pool
from app.services import core_for_this_process
from app.store import JobManager

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
        project = known_project(core.settings)
        KedroRunner(manager=core.manager, settings=core.settings, project=project).run(claim)
        if core.settings.runner_mode == "warm":
            _report_warm_error(core.manager, _worker_name(self))
        _release_freed_slot(core.manager, core.settings)


@celery_app.task(name=REFRESH_PIPELINES_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def refresh_pipelines(self: Any, queue: str) -> None:
    """Re-inspect this worker's Kedro project and store its pipelines for `queue`."""
    core = core_for_this_process(get_settings())
    publish_project(core.manager, core.settings, worker=_worker_name(self), queues=[queue])


_brokers: dict[int, Broker] = {}


def _release_freed_slot(manager: JobManager, settings: Settings) -> None:
    """Admit the waiting jobs this run's end made room for, without waiting for the API."""
    if os.getpid() not in _brokers:
        _brokers[os.getpid()] = Broker(settings, celery_app)
    try:
        release_waiting(manager, _brokers[os.getpid()])
    except Exception:  # the API's maintenance pass admits them anyway
        logger.exception("admitting waiting jobs after a run failed; the API will")


def _report_warm_error(manager: JobManager, worker: str) -> None:
    """Store on the worker's row why warming failed, once per change (None once it works)."""
    pool = warm_pool()
    if pool.error_changed():
        manager.note_warm_error(name=worker, error=pool.last_error)
