"""Follow a job's output as it is written, until the job ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import anyio

from app.schemas.jobs import Job, LogChunk
from app.store import JobManager, Visibility

POLL_SECONDS = 0.2  # the runner stores output every 0.25 s
CHUNK_BYTES = 256 * 1024


async def follow_output(
    manager: JobManager, *, job_id: str, offset: int, visibility: Visibility
) -> AsyncIterator[LogChunk | Job]:
    """Yield each new piece of output from `offset`, then the terminal job."""
    while True:
        chunk = await anyio.to_thread.run_sync(
            partial(
                manager.read_output,
                job_id=job_id,
                offset=offset,
                limit=CHUNK_BYTES,
                visibility=visibility,
            )
        )
        if chunk.data:
            yield chunk
        if chunk.complete:
            yield await anyio.to_thread.run_sync(
                partial(manager.get_job, job_id=job_id, visibility=visibility)
            )
            return
        if chunk.next_offset == offset:
            await anyio.sleep(POLL_SECONDS)
        offset = chunk.next_offset
