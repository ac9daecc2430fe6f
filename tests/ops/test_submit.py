"""Submit checks: where a job may go, and what happens when the broker is down."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.broker.publisher import Broker
from app.core.exceptions import InvalidJobRequest
from app.ops.submit import Submitter
from app.schemas.jobs import JobCreate, JobStatus
from app.schemas.pipelines import Pipeline
from app.store import JobManager


def _request(pipeline: str = "arithmetic", queue: str = "default") -> JobCreate:
    return JobCreate(pipeline_name=pipeline, queue=queue)


def _report_project(manager: JobManager, queue: str, *names: str) -> None:
    manager.record_project(
        queue=queue,
        pipelines=[Pipeline(name=name, nodes=[]) for name in names],
        project_path="/project",
        kedro_version="1.7.0",
        worker="w1@host",
    )


def test_unknown_queue_is_refused_until_a_worker_serves_it(
    manager: JobManager, broker: Broker, queue_length
) -> None:
    submitter = Submitter(manager=manager, broker=broker)
    with pytest.raises(InvalidJobRequest, match=r"unknown queue 'gpu'.*-Q gpu"):
        submitter.submit_job(request=_request(queue="gpu"), user_id=None, idempotency_key=None)
    assert manager.list_jobs()[0] == []
    _report_project(manager, "gpu", "arithmetic")
    submitter.forget_project("gpu")  # as a refresh does; else the snapshot is seen within 2 s
    job, created = submitter.submit_job(
        request=_request(queue="gpu"), user_id=None, idempotency_key=None
    )
    assert created and job.queue == "gpu" and queue_length("gpu") == 1


def test_unknown_pipeline_is_refused_naming_the_known_ones(
    manager: JobManager, broker: Broker
) -> None:
    _report_project(manager, "default", "arithmetic", "fail")
    submitter = Submitter(manager=manager, broker=broker)
    with pytest.raises(InvalidJobRequest, match=r"unknown pipeline 'nope'.*arithmetic, fail"):
        submitter.submit_job(request=_request("nope"), user_id=None, idempotency_key=None)
    assert manager.list_jobs()[0] == []


def test_before_any_worker_reports_the_default_queue_takes_any_valid_name(
    manager: JobManager, broker: Broker, queue_length
) -> None:
    submitter = Submitter(manager=manager, broker=broker)
    job, _ = submitter.submit_job(request=_request("anything"), user_id=None, idempotency_key=None)
    assert job.status == JobStatus.pending and queue_length() == 1


def test_a_refreshed_project_is_seen_once_its_cache_is_dropped(
    manager: JobManager, broker: Broker
) -> None:
    _report_project(manager, "default", "arithmetic")
    submitter = Submitter(manager=manager, broker=broker)
    with pytest.raises(InvalidJobRequest):
        submitter.check_destination(_request("new_one"))
    _report_project(manager, "default", "arithmetic", "new_one")
    submitter.forget_project("default")
    submitter.check_destination(_request("new_one"))


def test_with_the_broker_down_the_job_is_recorded_for_the_maintenance_pass(
    manager: JobManager, dead_broker: Broker
) -> None:
    submitter = Submitter(manager=manager, broker=dead_broker)
    first, _ = submitter.submit_job(request=_request(), user_id=None, idempotency_key=None)
    assert dead_broker.seems_down
    second, _ = submitter.submit_job(request=_request(), user_id=None, idempotency_key=None)
    due = manager.jobs_to_dispatch(redispatch_after=timedelta(hours=1))
    assert {job.id for job, again in due if not again} == {first.id, second.id}


def test_an_idempotent_repeat_publishes_nothing_more(
    manager: JobManager, broker: Broker, queue_length
) -> None:
    submitter = Submitter(manager=manager, broker=broker)
    first, created = submitter.submit_job(request=_request(), user_id="u", idempotency_key="k")
    again, created_again = submitter.submit_job(
        request=_request(), user_id="u", idempotency_key="k"
    )
    assert created and not created_again and again.id == first.id
    assert queue_length() == 1
