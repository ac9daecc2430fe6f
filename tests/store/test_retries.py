"""Retries in the store: an attempt ends back in `pending` when the policy says so."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from typing import Any

import pytest

from app.schemas.jobs import JobCreate, JobStatus
from app.schemas.retry import RetryOn, RetryPolicy
from app.store import JobManager, RunOutcome, RunProgress, retries, utcnow
from tests.utils.factories import WORKER, outcome

REDISPATCH = timedelta(seconds=60)


def _running(manager: JobManager, **policy: object) -> tuple[str, int]:
    job, _ = manager.create_job(
        request=JobCreate(pipeline_name="arithmetic"),
        user_id=None,
        dispatched=True,
        retry=RetryPolicy(**policy),  # type: ignore[arg-type]
    )
    claim = manager.claim_job(job_id=job.id, worker=WORKER)
    assert claim is not None
    return job.id, claim.attempt


def _failed(kind: RetryOn, message: str = "boom") -> RunOutcome:
    return dataclasses.replace(outcome(JobStatus.failed, message), failure=kind)


def _due(manager: JobManager) -> list[str]:
    return [job.id for job, _ in manager.jobs_to_dispatch(redispatch_after=REDISPATCH)]


def test_lost_worker_reschedules_the_job_for_its_next_attempt(manager: JobManager) -> None:
    job_id, attempt = _running(manager, max_attempts=2, delay_seconds=3600)
    manager.append_output(
        job_id=job_id,
        attempt=attempt,
        offset=0,
        data=b"attempt one\n",
        progress=RunProgress(completed_nodes=["add_five"]),
    )
    assert manager.fail_jobs_of_worker(worker=WORKER, reason="the worker restarted") == [job_id]

    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.pending and job.attempt == 1
    assert job.next_attempt_at is not None
    assert job.next_attempt_at > utcnow() + timedelta(seconds=3500)
    assert job.error_message is not None and "worker lost" in job.error_message
    assert job.results is not None
    [first] = job.results["attempts"]
    assert first["failure"] == "worker_lost" and first["completed_nodes"] == ["add_five"]
    assert job.progress.completed_node_names == []
    assert job.output_bytes == len(b"attempt one\n")  # the log stays; attempt 2 appends
    events = manager.list_events(job_id=job_id)
    assert [e.status for e in events] == ["pending", "running", "pending"]
    assert events[-1].reason is not None and "attempt 2 of 2" in events[-1].reason
    # Not due yet: neither published nor claimable, even by a stray message.
    assert job_id not in _due(manager)
    assert manager.claim_job(job_id=job_id, worker="worker-b") is None
    # The old attempt can no longer end it.
    assert not manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())


def test_a_due_retry_is_published_claimed_as_the_next_attempt_and_ends_terminal(
    manager: JobManager,
) -> None:
    job_id, attempt = _running(manager, max_attempts=2, on=["timeout"], delay_seconds=0)
    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=_failed("timeout"))
    assert job_id in _due(manager)
    claim = manager.claim_job(job_id=job_id, worker="worker-b")
    assert claim is not None and claim.attempt == 2
    assert claim.job.next_attempt_at is None
    assert not manager.finish_job(job_id=job_id, attempt=1, outcome=outcome())

    assert manager.finish_job(job_id=job_id, attempt=2, outcome=_failed("timeout", "again"))
    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.failed and job.error_message == "again"  # attempts used up
    assert job.results is not None
    assert [(a["attempt"], a["failure"], a["worker"]) for a in job.results["attempts"]] == [
        (1, "timeout", WORKER),
        (2, "timeout", "worker-b"),
    ]
    statuses = [(e.status, e.attempt) for e in manager.list_events(job_id=job_id)]
    assert statuses == [
        ("pending", 0),
        ("running", 1),
        ("pending", 1),
        ("running", 2),
        ("failed", 2),
    ]


def test_a_failure_the_policy_does_not_name_ends_the_job_at_once(manager: JobManager) -> None:
    job_id, attempt = _running(manager, max_attempts=3, on=["worker_lost", "timeout"])
    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=_failed("failed"))
    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.failed and job.next_attempt_at is None


def test_a_cancel_requested_run_is_not_retried_and_a_waiting_retry_can_be_cancelled(
    manager: JobManager,
) -> None:
    job_id, attempt = _running(manager, max_attempts=3, delay_seconds=3600)
    manager.request_cancel(job_id=job_id, reason="stop")
    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=_failed("worker_lost"))
    assert manager.get_job(job_id=job_id).status == JobStatus.failed

    other, attempt = _running(manager, max_attempts=3, delay_seconds=3600)
    assert manager.finish_job(job_id=other, attempt=attempt, outcome=_failed("worker_lost"))
    assert manager.request_cancel(job_id=other, reason="stop").status == JobStatus.cancelled
    assert manager.claim_job(job_id=other, worker=WORKER) is None


def test_jobs_without_a_policy_fail_once(manager: JobManager) -> None:
    job, _ = manager.create_job(
        request=JobCreate(pipeline_name="arithmetic"), user_id=None, dispatched=True
    )
    claim = manager.claim_job(job_id=job.id, worker=WORKER)
    assert claim is not None and claim.job.retry == RetryPolicy()
    manager.finish_job(job_id=job.id, attempt=1, outcome=_failed("worker_lost"))
    assert manager.get_job(job_id=job.id).status == JobStatus.failed


def test_a_cancel_that_lands_while_an_attempt_ends_is_not_lost_to_its_retry(
    any_manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel is sent between the attempt's end reading the retry policy and writing
    the retry: it waits for that end, then cancels the pending job."""
    manager = any_manager
    job_id, attempt = _running(manager, max_attempts=3, on=["failed"], delay_seconds=0)
    cancels: list[threading.Thread] = []
    record = retries._attempt_record

    def cancel_meanwhile(*args: Any) -> dict[str, Any]:
        cancel = threading.Thread(
            target=manager.request_cancel, kwargs={"job_id": job_id, "reason": "by a user"}
        )
        cancel.start()
        cancel.join(timeout=0.5)  # the window in which an unguarded cancel would land
        cancels.append(cancel)
        return record(*args)

    monkeypatch.setattr(retries, "_attempt_record", cancel_meanwhile)
    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=_failed("failed"))
    for cancel in cancels:
        cancel.join(timeout=30)
        assert not cancel.is_alive()

    job = manager.get_job(job_id=job_id)
    assert (job.status, job.error_message) == (JobStatus.cancelled, "by a user")
    assert [event.status for event in manager.list_events(job_id=job_id)][-2:] == [
        "pending",
        "cancelled",
    ]
