"""Admission on a real Redis: submit holds jobs back, freed slots and new limits release them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.broker.publisher import Broker
from app.core.config import Settings
from app.core.exceptions import TooManyPendingJobs
from app.ops.admission import change_limits, seed_limits
from app.ops.maintenance import maintenance_pass
from app.ops.metrics import GatewayCollector
from app.ops.submit import Submitter
from app.schemas.jobs import JobCreate, JobStatus
from app.schemas.limits import Limits
from app.store import JobManager
from tests.utils.factories import WORKER, outcome


def _submit(submitter: Submitter, user: str | None = None, **fields) -> str:
    job, created = submitter.submit_job(
        request=JobCreate(pipeline_name="train", **fields), user_id=user, idempotency_key=None
    )
    assert created
    return job.id


def _finish(manager: JobManager, job_id: str) -> None:
    claim = manager.claim_job(job_id=job_id, worker=WORKER)
    assert claim is not None
    manager.finish_job(job_id=job_id, attempt=claim.attempt, outcome=outcome())


def test_jobs_over_a_limit_are_recorded_but_not_published_until_a_slot_frees(
    manager: JobManager, broker: Broker, broker_settings: Settings, queue_length
) -> None:
    manager.set_limits(limits=Limits(pipelines={"train": 1}))
    submitter = Submitter(manager=manager, broker=broker)
    first, second = _submit(submitter), _submit(submitter)
    assert queue_length() == 1
    job = manager.get_job(job_id=second)
    assert (job.status, job.waiting_reason, job.position) == (
        JobStatus.pending,
        "pipeline train: 1 of 1 running",
        1,
    )
    assert maintenance_pass(manager, broker, broker_settings).admitted == 0
    assert queue_length() == 1
    _finish(manager, first)
    report = maintenance_pass(manager, broker, broker_settings)
    assert (report.admitted, report.published) == (1, 0)
    assert queue_length() == 2
    assert manager.get_job(job_id=second).waiting_reason is None


def test_a_job_no_limit_applies_to_is_published_at_once(
    manager: JobManager, broker: Broker, queue_length
) -> None:
    manager.set_limits(limits=Limits(pipelines={"other": 0}))
    submitter = Submitter(manager=manager, broker=broker)
    job_id = _submit(submitter)
    assert queue_length() == 1
    assert manager.get_job(job_id=job_id).waiting_reason is None


def test_raising_a_limit_releases_waiting_jobs_at_once(
    manager: JobManager, broker: Broker, queue_length
) -> None:
    manager.set_limits(limits=Limits(pipelines={"train": 0}))
    submitter = Submitter(manager=manager, broker=broker)
    ids = [_submit(submitter) for _ in range(3)]
    assert queue_length() == 0
    change_limits(manager, broker, limits=Limits(pipelines={"train": 2}), changed_by="root")
    assert queue_length() == 2
    assert [manager.get_job(job_id=i).waiting_reason for i in ids] == [
        None,
        None,
        "pipeline train: 2 of 2 running",
    ]


def test_a_job_admitted_while_the_broker_is_down_is_published_by_the_next_pass(
    manager: JobManager,
    broker: Broker,
    dead_broker: Broker,
    broker_settings: Settings,
    queue_length,
) -> None:
    manager.set_limits(limits=Limits(pipelines={"train": 1}))
    job_id = _submit(Submitter(manager=manager, broker=dead_broker))
    job = manager.get_job(job_id=job_id)
    assert job.waiting_reason is None  # admitted: it holds the slot, unpublished
    report = maintenance_pass(manager, broker, broker_settings)
    assert (report.admitted, report.published) == (0, 1)
    assert queue_length() == 1


def test_over_the_pending_cap_a_submit_is_refused_and_nothing_recorded(
    manager: JobManager, broker: Broker
) -> None:
    manager.set_limits(limits=Limits(pipelines={"train": 0}, max_pending_per_user=2))
    submitter = Submitter(manager=manager, broker=broker)
    _submit(submitter, "alice")
    _submit(submitter, "alice")
    with pytest.raises(TooManyPendingJobs, match="2 pending") as refused:
        _submit(submitter, "alice")
    assert refused.value.retry_after_seconds > 0
    assert len(manager.list_jobs()[0]) == 2
    _submit(submitter, "bob")  # the cap is per user


def test_the_limits_setting_is_stored_once_and_an_invalid_one_refused(
    manager: JobManager, settings: Settings
) -> None:
    seed_limits(manager, settings)
    assert manager.get_limits() == Limits()
    seeded = settings.model_copy(update={"limits": '{"pipelines": {"train": 1}}'})
    seed_limits(manager, seeded)
    assert manager.get_limits() == Limits(pipelines={"train": 1})
    manager.set_limits(limits=Limits(users={"*": 3}))
    seed_limits(manager, seeded)  # a restart keeps what the admin set
    assert manager.get_limits() == Limits(users={"*": 3})
    with pytest.raises(ValidationError):
        seed_limits(manager, settings.model_copy(update={"limits": '{"pipelines": {"x": -1}}'}))


def test_metrics_count_waiting_jobs_per_queue_and_reason(
    manager: JobManager, broker: Broker, broker_settings: Settings
) -> None:
    manager.set_limits(limits=Limits(pipelines={"train": 1}, users={"alice": 0}))
    submitter = Submitter(manager=manager, broker=broker)
    for user in (None, None, None, "alice"):
        _submit(submitter, user)
    collector = GatewayCollector(manager, broker, broker_settings)
    [family] = [f for f in collector.collect() if f.name == "gateway_jobs_waiting"]
    samples = {(s.labels["queue"], s.labels["reason"]): s.value for s in family.samples}
    assert samples == {("default", "pipeline train"): 3.0}
