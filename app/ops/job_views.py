"""Reading one job the cheap way, waiting for it to end, and following its events.

On SQLite a job is read on the event loop (a fraction of a millisecond, no
thread hop); on other databases on a worker thread. Waiting and following sleep
on the process's `ChangeHub` between reads, never on a timer of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from functools import partial

import anyio

from app.core.exceptions import JobNotFound
from app.ops.waiting import RECHECK_SECONDS, ChangeHub
from app.schemas.jobs import Job, JobEvent
from app.store import JobManager, Visibility

MAX_WAIT_SECONDS = 60.0


async def read_job(manager: JobManager, *, job_id: str, visibility: Visibility) -> Job:
    """The job, or `JobNotFound` (404) if it is unknown or not the caller's."""
    if manager.reads_inline:
        read = manager.read_job(job_id=job_id, visibility=visibility, inline=True)
    else:
        read = await anyio.to_thread.run_sync(
            partial(manager.read_job, job_id=job_id, visibility=visibility)
        )
    if read is None:
        raise JobNotFound(f"job {job_id} not found")
    if read.waiting:  # the store says why it waits for admission, and its place in line
        return await anyio.to_thread.run_sync(
            partial(manager.get_job, job_id=job_id, visibility=visibility)
        )
    return read.job


async def read_events_after(
    manager: JobManager, *, job_id: str, after: int
) -> list[tuple[int, JobEvent]]:
    if manager.reads_inline:
        return manager.read_events_after(job_id=job_id, after=after, inline=True)
    return await anyio.to_thread.run_sync(
        partial(manager.read_events_after, job_id=job_id, after=after)
    )


async def wait_for_job(
    manager: JobManager, hub: ChangeHub, *, job_id: str, visibility: Visibility, seconds: float
) -> Job:
    """The job as soon as it is terminal, else as it is after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(seconds, MAX_WAIT_SECONDS)
    with hub.watch(job_id) as watch:
        while True:
            seen = watch.seen
            job = await read_job(manager, job_id=job_id, visibility=visibility)
            remaining = deadline - loop.time()
            if job.status.is_terminal or remaining <= 0:
                return job
            await watch.wait(seen, min(remaining, RECHECK_SECONDS))


async def follow_events(
    manager: JobManager, hub: ChangeHub, *, job_id: str, visibility: Visibility, after: int = 0
) -> AsyncGenerator[tuple[int, JobEvent] | Job, None]:
    """Each event past `after` (with its id) as it is recorded, then the terminal job."""
    ended = False  # the job was seen terminal with no event left to send
    with hub.watch(job_id) as watch:
        while True:
            seen = watch.seen
            events = await read_events_after(manager, job_id=job_id, after=after)
            for event_id, event in events:
                yield event_id, event
                after = event_id
                if event.status.is_terminal:  # terminal states never change
                    yield await read_job(manager, job_id=job_id, visibility=visibility)
                    return
            if events:
                continue
            # Nothing new: the job must still be the caller's; once it is terminal, a
            # read after that has every event (a resume may have started past the end).
            job = await read_job(manager, job_id=job_id, visibility=visibility)
            if job.status.is_terminal:
                if ended:
                    yield job
                    return
                ended = True
                continue
            await watch.wait(seen, RECHECK_SECONDS)
