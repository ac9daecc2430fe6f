"""Following output in one process: catch-up reads, the job's tail, letting go of laggards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from app.ops import log_stream
from app.ops.log_stream import OutputTails, follow_output
from app.ops.waiting import ChangeHub, SharedReads
from app.schemas.jobs import Job, JobCreate, JobStatus, LogChunk
from app.store import JobManager, RunOutcome, RunProgress, Visibility

EVERYONE = Visibility()
DONE = RunOutcome(
    status=JobStatus.completed, exit_code=0, execution_time=0.1, error_message=None, results={}
)


class _Run:
    """A claimed job whose output the test writes, with notices to a hub, and the reads
    of its output counted."""

    def __init__(self, manager: JobManager) -> None:
        job, _ = manager.create_job(
            request=JobCreate(pipeline_name="arithmetic"), user_id=None, dispatched=True
        )
        self.manager, self.job_id = manager, job.id
        claim = manager.claim_job(job_id=job.id, worker="w")
        assert claim is not None
        self.attempt, self.written = claim.attempt, 0
        self.hub = ChangeHub()
        self.hub.reconnected()  # as if subscribed: followers sleep until a notice
        self.reads = 0
        self.failing = False
        read_output = manager.read_output

        def counted(**kwargs: Any) -> LogChunk:
            self.reads += 1
            if self.failing:
                raise OSError("disk I/O error")
            return read_output(**kwargs)

        manager.read_output = counted  # type: ignore[method-assign]
        self.tails = OutputTails(manager, self.hub)
        self.shared = SharedReads()

    def follow(self, offset: int = 0) -> AsyncGenerator[LogChunk | Job, None]:
        return follow_output(
            self.manager,
            job_id=self.job_id,
            offset=offset,
            visibility=EVERYONE,
            hub=self.hub,
            shared=self.shared,
            tails=self.tails,
        )

    async def write(self, text: str) -> None:
        """Append on a thread, as the worker does, and announce it on the loop."""
        data = text.encode()
        await asyncio.to_thread(
            self.manager.append_output,
            job_id=self.job_id,
            attempt=self.attempt,
            offset=self.written,
            data=data,
            progress=RunProgress(),
        )
        self.written += len(data)
        self.hub.changed(self.job_id, "output")

    async def finish(self) -> None:
        await asyncio.to_thread(
            self.manager.finish_job, job_id=self.job_id, attempt=self.attempt, outcome=DONE
        )
        self.hub.changed(self.job_id, "state")


async def _collect(stream: AsyncIterator[LogChunk | Job]) -> tuple[str, list[Job]]:
    text, ends = "", []
    async for item in stream:
        if isinstance(item, LogChunk):
            text += item.data
        else:
            ends.append(item)
    return text, ends


async def _next(stream: AsyncIterator[LogChunk | Job]) -> LogChunk | Job:
    return await anext(stream)


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)


def test_many_followers_share_one_read_per_append(manager: JobManager) -> None:
    run = _Run(manager)
    lines = [f"line {n}\n" for n in range(20)]

    async def scenario() -> list[tuple[str, list[Job]]]:
        await run.write("before anyone follows\n")
        followers = [asyncio.create_task(_collect(run.follow())) for _ in range(200)]
        await _until(lambda: sum(len(t.feeds) for t in run.tails._tails.values()) == 200)
        reads_before = run.reads
        for line in lines:
            await run.write(line)
            await asyncio.sleep(0.01)
        await run.finish()
        results = await asyncio.gather(*followers)
        # The tail reads each append, and once more to see it has it all: not 200 reads.
        assert run.reads - reads_before <= 2 * len(lines) + 4
        return results

    results = asyncio.run(scenario())
    whole = "before anyone follows\n" + "".join(lines)
    for text, ends in results:
        assert text == whole
        assert len(ends) == 1 and ends[0].status == JobStatus.completed


def test_a_follower_that_falls_behind_is_let_go_and_still_sees_every_byte_once(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_stream, "MAX_BACKLOG", 3)
    run = _Run(manager)
    lines = [f"line {n}\n" for n in range(12)]

    async def scenario() -> tuple[str, list[Job]]:
        await run.write("first\n")
        slow = run.follow()
        text = ""
        first = await anext(slow)  # caught up on its own read
        assert isinstance(first, LogChunk)
        text += first.data
        ahead = asyncio.create_task(_collect(run.follow()))  # keeps the tail alive
        waiting = asyncio.create_task(_next(slow))  # joins the tail, then stops reading
        await _until(lambda: sum(len(t.feeds) for t in run.tails._tails.values()) == 2)
        (tail,) = run.tails._tails.values()
        for line in lines:
            await run.write(line)
            await _until(lambda: tail.offset == run.written)
        assert len(tail.feeds) == 1  # the slow one was let go
        item = await waiting
        assert isinstance(item, LogChunk)
        text += item.data
        await run.finish()
        rest, ends = await _collect(slow)
        await ahead
        return text + rest, ends

    text, ends = asyncio.run(scenario())
    assert text == "first\n" + "".join(lines)
    assert len(ends) == 1 and ends[0].status == JobStatus.completed


def test_the_tail_stops_when_its_last_follower_leaves(manager: JobManager) -> None:
    run = _Run(manager)

    async def scenario() -> None:
        await run.write("hello\n")
        followers = [run.follow() for _ in range(3)]
        for follower in followers:
            assert isinstance(await anext(follower), LogChunk)
        pending = [asyncio.create_task(_next(follower)) for follower in followers]
        await _until(lambda: len(run.tails._tails) == 1)
        (tail,) = run.tails._tails.values()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for follower in followers:
            await follower.aclose()
        await _until(tail.task.done)
        assert run.tails._tails == {} and run.hub.watchers == 0

    asyncio.run(scenario())


def test_a_failed_read_reaches_every_follower_and_the_next_one_gets_a_new_tail(
    manager: JobManager,
) -> None:
    run = _Run(manager)

    async def scenario() -> tuple[list[Any], tuple[str, list[Job]]]:
        await run.write("hello\n")
        followers = [asyncio.create_task(_collect(run.follow())) for _ in range(3)]
        await _until(lambda: sum(len(t.feeds) for t in run.tails._tails.values()) == 3)
        run.failing = True
        await run.write("lost to the reader\n")
        failed = await asyncio.gather(*followers, return_exceptions=True)
        run.failing = False
        late = asyncio.create_task(_collect(run.follow()))
        await _until(lambda: sum(len(t.feeds) for t in run.tails._tails.values()) == 1)
        await run.write("after\n")
        await run.finish()
        return failed, await late

    failed, (text, ends) = asyncio.run(scenario())
    assert all(isinstance(result, OSError) for result in failed)
    assert text == "hello\nlost to the reader\nafter\n"
    assert len(ends) == 1


def test_a_followers_setup_turn_ends_with_its_first_read_not_its_first_send(
    manager: JobManager,
) -> None:
    """A client that stops reading must not keep the turn other followers wait for."""
    run = _Run(manager)
    turns = []

    async def scenario() -> None:
        await run.write("hello\n")
        stream = follow_output(
            run.manager,
            job_id=run.job_id,
            offset=0,
            visibility=EVERYONE,
            hub=run.hub,
            shared=run.shared,
            tails=run.tails,
            caught_up=lambda: turns.append("given back"),
        )
        first = await anext(stream)  # suspended at this yield: the client's send blocks
        assert isinstance(first, LogChunk) and first.data == "hello\n"
        assert turns  # given back before the piece is handed to the sender
        await stream.aclose()

    asyncio.run(scenario())
