"""Follow a job's output as it is written, until the job ends."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial

import anyio

from app.core.exceptions import TooManyRequests
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


class FollowerSlots:
    """At most `per_user` live followers per user in this process: each holds a
    connection and polls the database, so one caller cannot exhaust either."""

    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._taken: Counter[str | None] = Counter()
        self._lock = threading.Lock()

    def take(self, user: str | None) -> None:
        """Take a slot, or raise `TooManyRequests`."""
        with self._lock:
            if self._taken[user] >= self._per_user:
                raise TooManyRequests(
                    f"at most {self._per_user} followed logs at a time per user; "
                    "close one, or read by offset"
                )
            self._taken[user] += 1

    def give_back(self, user: str | None) -> None:
        with self._lock:
            self._taken[user] -= 1

    @contextmanager
    def held(self, user: str | None) -> Iterator[None]:
        """Release the slot taken for `user` when the block ends."""
        try:
            yield
        finally:
            self.give_back(user)
