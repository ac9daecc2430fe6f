"""Waiting and following in one process: the hub's wake-ups, ?wait= and events follow."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.ops.job_views import follow_events, wait_for_job
from app.ops.waiting import ChangeHub, SharedReads
from app.schemas.jobs import Job, JobCreate, JobStatus
from app.store import JobManager, RunOutcome, Visibility

EVERYONE = Visibility()
DONE = RunOutcome(
    status=JobStatus.completed, exit_code=0, execution_time=0.1, error_message=None, results={}
)


def _job(manager: JobManager) -> str:
    job, _ = manager.create_job(
        request=JobCreate(pipeline_name="arithmetic"), user_id=None, dispatched=True
    )
    return job.id


async def _follow(manager: JobManager, hub: ChangeHub, job_id: str, after: int = 0) -> list[Any]:
    return [
        item
        async for item in follow_events(
            manager, hub, job_id=job_id, visibility=EVERYONE, after=after
        )
    ]


def test_a_notice_wakes_the_waiter_at_once(manager: JobManager) -> None:
    job_id = _job(manager)
    hub = ChangeHub()
    hub.reconnected()  # as if subscribed: waiters sleep until a notice, not a poll
    manager.announce_to(lambda changed, kind: hub.changed(changed, kind))

    async def scenario() -> tuple[Job, float]:
        waiting = asyncio.create_task(
            wait_for_job(manager, hub, job_id=job_id, visibility=EVERYONE, seconds=30)
        )
        await asyncio.sleep(0.05)
        claim = manager.claim_job(job_id=job_id, worker="w")
        assert claim is not None
        ended = time.monotonic()
        manager.finish_job(job_id=job_id, attempt=claim.attempt, outcome=DONE)
        job = await waiting
        return job, time.monotonic() - ended

    job, after_end = asyncio.run(scenario())
    assert job.status == JobStatus.completed
    assert after_end < 1


def test_wait_answers_with_the_current_state_after_its_time(manager: JobManager) -> None:
    job_id = _job(manager)
    hub = ChangeHub()
    hub.reconnected()
    began = time.monotonic()
    job = asyncio.run(wait_for_job(manager, hub, job_id=job_id, visibility=EVERYONE, seconds=0.3))
    assert job.status == JobStatus.pending
    assert 0.25 < time.monotonic() - began < 5


def test_events_follow_to_the_end_and_a_resume_past_it_ends_at_once(manager: JobManager) -> None:
    job_id = _job(manager)
    claim = manager.claim_job(job_id=job_id, worker="w")
    assert claim is not None
    manager.finish_job(job_id=job_id, attempt=claim.attempt, outcome=DONE)
    hub = ChangeHub()
    items = asyncio.run(_follow(manager, hub, job_id))
    assert [event.status for _, event in items[:-1]] == ["pending", "running", "completed"]
    assert isinstance(items[-1], Job) and items[-1].status == JobStatus.completed
    last_id = items[-2][0]
    began = time.monotonic()
    resumed = asyncio.run(_follow(manager, hub, job_id, after=last_id))
    assert len(resumed) == 1 and isinstance(resumed[0], Job)
    assert time.monotonic() - began < 1


def test_followers_at_one_offset_share_one_read() -> None:
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 7

    async def scenario() -> list[int]:
        shared = SharedReads()
        return await asyncio.gather(*(shared.read("key", read) for _ in range(50)))

    assert asyncio.run(scenario()) == [7] * 50
    assert calls == 1


def test_a_shared_read_answers_the_others_when_its_first_caller_leaves() -> None:
    async def read() -> int:
        await asyncio.sleep(0.05)
        return 7

    async def scenario() -> list[Any]:
        shared = SharedReads()
        first = asyncio.create_task(shared.read("key", read))
        others = [asyncio.create_task(shared.read("key", read)) for _ in range(3)]
        await asyncio.sleep(0.01)
        first.cancel()  # its client went away
        return await asyncio.gather(first, *others, return_exceptions=True)

    first, *others = asyncio.run(scenario())
    assert isinstance(first, asyncio.CancelledError)
    assert others == [7, 7, 7]
