"""The maintenance pass on a real Redis and a real store: reap, publish, back off, purge."""

from __future__ import annotations

from datetime import timedelta

import redis

from app.broker.publisher import Broker
from app.core.config import Settings
from app.ops.maintenance import maintenance_pass, reap_restarted_worker
from app.schemas.jobs import JobStatus
from app.store import JobManager
from app.store.transitions import DISPATCH_BATCH
from tests.utils.factories import WORKER, running, submit
from tests.utils.stack import wait_until


def test_a_job_recorded_while_the_broker_was_down_is_published(
    manager: JobManager, broker: Broker, broker_settings: Settings, queue_length
) -> None:
    job = submit(manager, dispatched=False)
    report = maintenance_pass(manager, broker, broker_settings)
    assert report.published == 1 and queue_length() == 1
    assert manager.jobs_to_dispatch(redispatch_after=timedelta(hours=1)) == []
    assert manager.get_job(job_id=job.id).status == JobStatus.pending


def test_with_the_broker_down_nothing_is_lost_and_the_next_pass_publishes(
    manager: JobManager,
    broker: Broker,
    dead_broker: Broker,
    broker_settings: Settings,
    settings: Settings,
    queue_length,
) -> None:
    job = submit(manager, dispatched=False)
    assert maintenance_pass(manager, dead_broker, settings).published == 0
    due = manager.jobs_to_dispatch(redispatch_after=timedelta(hours=1))
    assert [(pending.id, again) for pending, again in due] == [(job.id, False)]
    assert maintenance_pass(manager, broker, broker_settings).published == 1
    assert queue_length() == 1


def test_a_message_still_queued_is_not_published_again(
    manager: JobManager, broker: Broker, broker_settings: Settings, queue_length
) -> None:
    impatient = broker_settings.model_copy(update={"redispatch_after_seconds": 0.01})
    submit(manager, dispatched=False)
    maintenance_pass(manager, broker, impatient)
    assert queue_length() == 1

    def still_one() -> bool:
        due = manager.jobs_to_dispatch(redispatch_after=timedelta(seconds=0.01))
        return bool(due) and maintenance_pass(manager, broker, impatient).published == 0

    wait_until(still_one, timeout=10, what="the job to be due for a re-publish")
    assert queue_length() == 1  # a long queue, not a lost message


def test_jobs_queued_for_an_absent_worker_do_not_hold_back_an_unpublished_job(
    manager: JobManager, broker: Broker, broker_settings: Settings, queue_length
) -> None:
    """More overdue jobs than one pass takes wait on a queue no worker serves (their
    messages are there); a newer job whose publish failed is still published."""
    impatient = broker_settings.model_copy(update={"redispatch_after_seconds": 0.01})
    idle = [submit(manager, dispatched=True, queue="gpu") for _ in range(DISPATCH_BATCH + 5)]
    assert broker.publish_many(idle) == []
    lost = submit(manager, dispatched=False)
    wait_until(
        lambda: maintenance_pass(manager, broker, impatient).published == 1,
        timeout=10,
        what="the unpublished job's publish",
    )
    assert queue_length() == 1
    assert queue_length("gpu") == len(idle)  # queued already: not published again
    assert manager.get_job(job_id=lost.id).status == JobStatus.pending


def test_a_lost_message_is_published_again(
    manager: JobManager, broker: Broker, broker_settings: Settings, queue_length, redis_server
) -> None:
    impatient = broker_settings.model_copy(update={"redispatch_after_seconds": 0.01})
    submit(manager, dispatched=False)
    maintenance_pass(manager, broker, impatient)
    redis.Redis(unix_socket_path=str(redis_server.socket_path)).delete("default")  # Redis lost it
    wait_until(
        lambda: maintenance_pass(manager, broker, impatient).published == 1,
        timeout=10,
        what="a re-publish",
    )
    assert queue_length() == 1


def test_runs_without_a_heartbeat_are_failed_as_lost(
    manager: JobManager, dead_broker: Broker, settings: Settings
) -> None:
    job_id, _ = running(manager)
    strict = settings.model_copy(update={"worker_lost_after_seconds": 0.05})
    wait_until(
        lambda: maintenance_pass(manager, dead_broker, strict).lost == [job_id],
        timeout=10,
        what="the run to be reaped",
    )
    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.failed
    assert job.error_message == f"worker lost: no heartbeat for 0.05 s ({WORKER})"
    assert maintenance_pass(manager, dead_broker, strict).lost == []  # once only


def test_a_restarted_worker_fails_only_its_own_runs(manager: JobManager) -> None:
    mine, _ = running(manager, worker="w1@host")
    theirs, _ = running(manager, worker="w2@host")
    assert reap_restarted_worker(manager, "w1@host") == [mine]
    assert manager.get_job(job_id=mine).error_message == (
        "worker lost: the worker restarted (w1@host)"
    )
    assert manager.get_job(job_id=theirs).status == JobStatus.running
