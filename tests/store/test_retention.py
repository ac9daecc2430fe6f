"""JOB_RETENTION_DAYS: finished jobs and their output are purged in bounded batches."""

from __future__ import annotations

from datetime import timedelta

from app.broker.publisher import Broker
from app.core.config import Settings
from app.core.exceptions import JobNotFound
from app.ops.maintenance import maintenance_pass
from app.store import JobManager, RunProgress, utcnow
from tests.utils.factories import outcome, running, submit
from tests.utils.stack import wait_until


def _finished(manager: JobManager, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        job_id, attempt = running(manager)
        manager.append_output(
            job_id=job_id, attempt=attempt, offset=0, data=b"x\n", progress=RunProgress()
        )
        manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
        ids.append(job_id)
    return ids


def test_purge_removes_only_old_finished_jobs_in_batches(manager: JobManager) -> None:
    finished = _finished(manager, 5)
    pending = submit(manager)
    still_running, _ = running(manager)
    assert manager.purge_finished(completed_before=utcnow() - timedelta(days=1)) == 0
    later = utcnow() + timedelta(seconds=1)
    assert manager.purge_finished(completed_before=later, batch=2) == 2
    assert manager.purge_finished(completed_before=later, batch=2) == 2
    assert manager.purge_finished(completed_before=later, batch=2) == 1
    assert manager.purge_finished(completed_before=later, batch=2) == 0
    for job_id in finished:
        try:
            manager.get_job(job_id=job_id)
        except JobNotFound:
            continue
        raise AssertionError(f"{job_id} was not purged")
    assert manager.get_job(job_id=pending.id).status == "pending"
    assert manager.get_job(job_id=still_running).status == "running"


def test_maintenance_purges_when_retention_is_set(manager: JobManager, settings: Settings) -> None:
    retention = settings.model_copy(update={"job_retention_days": 1e-6})
    broker = Broker(settings)
    try:
        (job_id,) = _finished(manager, 1)

        def purged() -> bool:
            maintenance_pass(manager, broker, retention)
            return not manager.list_jobs()[0]

        wait_until(purged, timeout=10, what="the finished job to be purged")
        (kept,) = _finished(manager, 1)  # JOB_RETENTION_DAYS unset: nothing is purged
        assert maintenance_pass(manager, broker, settings).purged == 0
        assert manager.get_job(job_id=kept).id == kept != job_id
    finally:
        broker.close()
