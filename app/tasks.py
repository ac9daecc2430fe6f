"""Celery tasks: thin wrappers that hand a job id to the core.

Delivery is at least once, so a task re-reads its job and does nothing unless
it can claim it (pending → running) for itself.
"""

from __future__ import annotations

import logging

from app.celery_app import RUN_JOB_TASK, celery_app
from app.core.config import get_settings
from app.core.kedro_runner import KedroRunner
from app.core.services import core_for_this_process

logger = logging.getLogger(__name__)


@celery_app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def run_job(self: object, job_id: str) -> None:
    """Claim the job and run it to its end; skip it if another attempt owns it."""
    core = core_for_this_process(get_settings())
    worker = str(getattr(getattr(self, "request", None), "hostname", None) or "unknown")
    claim = core.manager.claim_job(job_id=job_id, worker=worker)
    if claim is None:
        logger.info(
            "job %s: not claimable (already claimed, finished or cancelled); skipped", job_id
        )
        return
    KedroRunner(manager=core.manager, settings=core.settings).run(claim)
