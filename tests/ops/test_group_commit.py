"""Group commit: concurrent submits share one transaction, and each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from app.broker.publisher import Broker
from app.core.config import Settings
from app.core.exceptions import TooManyPendingJobs
from app.ops.group_commit import GroupCommit
from app.ops.submit import Submitter
from app.schemas.jobs import JobCreate
from app.schemas.limits import Limits
from app.services import build_core
from app.store import JobManager, NewJob
from app.store.jobs import GROUP_INSERT_LOCK
from tests.utils.postgres import database_url


def _new(pipeline: str = "arithmetic", *, key: str | None = None) -> NewJob:
    return NewJob(
        request=JobCreate(pipeline_name=pipeline), user_id="u", idempotency_key=key, dispatched=True
    )


def _wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _held_until_set(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> threading.Event:
    """Make `owner.name` wait (at most 10 s) until the returned event is set."""
    release = threading.Event()
    original = getattr(owner, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    return release


def _in_one_group(
    group: GroupCommit, manager: JobManager, monkeypatch: pytest.MonkeyPatch, news: list[NewJob]
) -> tuple[list[int], list[Any]]:
    """Submit `news[0]` alone and hold its transaction until every other submit is queued,
    so they form the next group. Returns the group sizes and each submit's outcome."""
    sizes: list[int] = []
    held = threading.Event()
    create_jobs = manager.create_jobs

    def gated(batch: list[NewJob]) -> Any:
        sizes.append(len(batch))
        if len(sizes) == 1:
            held.wait(10)
        return create_jobs(batch)

    monkeypatch.setattr(manager, "create_jobs", gated)
    outcomes: list[Any] = [None] * len(news)

    def submit(index: int) -> None:
        try:
            outcomes[index] = group.submit(news[index])
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(len(news))]
    threads[0].start()
    _wait_for(lambda: sizes == [1], "the first group")
    for thread in threads[1:]:
        thread.start()
    _wait_for(lambda: len(group._queued) == len(news) - 1, "the others to queue")
    held.set()
    for thread in threads:
        thread.join(10)
    return sizes, outcomes


def test_concurrent_submits_become_one_transaction_and_each_is_answered(
    manager: JobManager, broker: Broker, queue_length, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(manager=manager, broker=broker)
    sizes, outcomes = _in_one_group(group, manager, monkeypatch, [_new() for _ in range(9)])
    assert sizes == [1, 8]
    ids = {job.id for job, created in outcomes if created}
    assert len(ids) == 9
    assert {manager.get_job(job_id=job_id).id for job_id in ids} == ids
    assert queue_length() == 9


def test_a_failing_transaction_fails_every_submit_of_its_group_and_records_none(
    manager: JobManager, broker: Broker, queue_length, monkeypatch: pytest.MonkeyPatch
) -> None:
    with manager._engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.pipeline_name = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned job'); END"
            )
        )
    group = GroupCommit(manager=manager, broker=broker)
    news = [_new(), _new(), _new("poison"), _new()]
    sizes, outcomes = _in_one_group(group, manager, monkeypatch, news)
    assert sizes == [1, 3]
    assert outcomes[0][1] is True
    assert all("poisoned job" in str(outcome) for outcome in outcomes[1:])
    assert [job.id for job in manager.list_jobs()[0]] == [outcomes[0][0].id]
    assert queue_length() == 1


def test_a_taken_idempotency_key_splits_the_group_into_repeats_and_new_jobs(
    manager: JobManager, broker: Broker, queue_length, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(manager=manager, broker=broker)
    news = [_new(key="a"), _new(key="a"), _new(), _new(key="b")]
    sizes, outcomes = _in_one_group(group, manager, monkeypatch, news)
    assert sizes == [1, 3]
    first, repeat, plain, keyed = outcomes
    assert first[1] and plain[1] and keyed[1]
    assert repeat == (first[0], False)
    assert queue_length() == 3


def test_with_the_broker_down_a_group_stays_recorded_for_the_maintenance_pass(
    manager: JobManager, dead_broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(manager=manager, broker=dead_broker)
    sizes, outcomes = _in_one_group(group, manager, monkeypatch, [_new() for _ in range(4)])
    assert sizes == [1, 3]
    due = manager.jobs_to_dispatch(redispatch_after=timedelta(hours=1))
    assert {job.id for job, again in due if not again} == {job.id for job, _ in outcomes}


def test_a_refused_publish_that_cannot_be_marked_is_logged_and_published_again_later(
    manager: JobManager,
    dead_broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def store_down(**_: Any) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(manager, "mark_undispatched", store_down)
    group = GroupCommit(manager=manager, broker=dead_broker)
    job, created = group.submit(_new())
    assert created
    assert "could not mark it unpublished" in caplog.text
    assert manager.jobs_to_dispatch(redispatch_after=timedelta(hours=1)) == []
    assert [found.id for found, _ in manager.jobs_to_dispatch(redispatch_after=timedelta(0))] == [
        job.id
    ]


def test_submits_awaited_on_the_loop_share_groups_led_by_one_thread(
    manager: JobManager, broker: Broker, queue_length, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(manager=manager, broker=broker)
    sizes: list[int] = []
    create_jobs = manager.create_jobs

    def counted(batch: list[NewJob]) -> Any:
        sizes.append(len(batch))
        return create_jobs(batch)

    monkeypatch.setattr(manager, "create_jobs", counted)

    async def submit_all() -> list[Any]:
        return await asyncio.gather(*(group.submit_async(_new()) for _ in range(50)))

    outcomes = asyncio.run(submit_all())
    assert all(created for _, created in outcomes)
    ids = {job.id for job, _ in outcomes}
    assert len(ids) == 50
    assert {job.id for job in manager.list_jobs(limit=100)[0]} == ids
    assert sum(sizes) == 50
    assert len(sizes) < 10, sizes  # queued while a group committed: they formed the next
    assert queue_length() == 50
    assert not group._leading


def test_each_submit_is_answered_before_its_group_is_published(
    manager: JobManager, broker: Broker, queue_length, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(manager=manager, broker=broker)
    release = _held_until_set(monkeypatch, broker, "publish_many")

    async def submit() -> tuple[Any, int]:
        try:
            job, _ = await asyncio.wait_for(group.submit_async(_new()), timeout=5)
            return job, queue_length()
        finally:
            release.set()  # the default executor's thread must end before the loop closes

    job, published_when_answered = asyncio.run(submit())
    assert published_when_answered == 0
    assert manager.get_job(job_id=job.id).status.value == "pending"
    _wait_for(lambda: queue_length() == 1, "the group's publish")
    _wait_for(lambda: not group._leading, "the leader to stop")


def test_a_caller_that_goes_away_still_has_its_submit_recorded(
    manager: JobManager, broker: Broker, queue_length, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupCommit(manager=manager, broker=broker)
    held = _held_until_set(monkeypatch, manager, "create_jobs")

    async def submit_then_leave() -> None:
        waiter = asyncio.ensure_future(group.submit_async(_new()))
        await asyncio.sleep(0)  # the submit is queued and its leader started
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        held.set()  # the group records only now that its caller has gone

    asyncio.run(submit_then_leave())
    _wait_for(lambda: len(manager.list_jobs()[0]) == 1, "the abandoned submit")
    _wait_for(lambda: not group._leading, "the leader to stop")
    assert queue_length() == 1


def test_the_pending_cap_counts_the_submits_of_the_same_group(
    manager: JobManager, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap is checked with the group's one read of the limits, counting the group's
    earlier submits: concurrent submits cannot all slip under it."""
    manager.set_limits(limits=Limits(pipelines={"arithmetic": 0}, max_pending_per_user=2))
    group = Submitter(manager=manager, broker=broker)._group
    sizes, outcomes = _in_one_group(group, manager, monkeypatch, [_new() for _ in range(4)])
    assert sizes == [1, 1]
    assert [type(outcome) for outcome in outcomes[2:]] == [TooManyPendingJobs] * 2
    assert len(manager.list_jobs()[0]) == 2
    assert all(job.waiting_reason for job in manager.list_jobs()[0])


@pytest.fixture
def postgresql_settings(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Settings:
    url = database_url(request, "postgresql", tmp_path, "groups")
    configured = settings.model_copy(update={"database_url": url})
    build_core(configured).manager.dispose()  # migrate once, before the race
    return configured


def test_groups_take_turns_on_postgresql_and_a_lone_submit_does_not_wait(
    postgresql_settings: Settings,
) -> None:
    """Each job's insert bumps its counter row in `job_counts` (one of 8 shards, chosen by
    the job's id), so two groups committing at once (two API processes) would lock those
    rows in different orders and deadlock (seen once in a benchmark: a group of 6
    answered 503). A group waits while another group's transaction holds the turn; a
    lone submit, one counter row, does not."""
    core = build_core(postgresql_settings, migrate=False)
    manager = core.manager
    engine = create_engine(postgresql_settings.database_url)
    try:
        with engine.connect() as other:
            other.execute(select(func.pg_advisory_xact_lock(GROUP_INSERT_LOCK)))
            assert manager.create_jobs([_new()]) is not None  # one row: no turn to take
            done = threading.Event()

            def commit_a_group() -> None:
                manager.create_jobs([_new(), _new()])
                done.set()

            group = threading.Thread(target=commit_a_group)
            group.start()
            assert not done.wait(1.0), "the group did not wait for the other's turn"
            other.rollback()  # the other group's transaction ends
            _wait_for(done.is_set, "the group after the turn")
            group.join()
        assert manager.job_counts() == [("pending", "arithmetic", "default", 3)]
    finally:
        engine.dispose()
        manager.dispose()
