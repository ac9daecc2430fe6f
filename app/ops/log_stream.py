"""Follow a job's output as it is written, until the job ends.

A follower sleeps on the process's `ChangeHub` until the runner's next append (or
the job's end) is announced, and followers at the same offset share one read, so
a thousand idle followers cost nothing and a thousand busy ones one read per
append. Without a hub (no broker to hear notices from) it polls every
`POLL_SECONDS`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial

import anyio

from app.core.exceptions import TooManyRequests
from app.ops.job_views import read_job
from app.ops.waiting import RECHECK_SECONDS, ChangeHub, SharedReads
from app.schemas.jobs import Job, LogChunk
from app.store import JobManager, Visibility

POLL_SECONDS = 0.2  # the runner stores output every 0.25 s
CHUNK_BYTES = 256 * 1024


async def follow_output(
    manager: JobManager,
    *,
    job_id: str,
    offset: int,
    visibility: Visibility,
    hub: ChangeHub | None = None,
    shared: SharedReads | None = None,
) -> AsyncIterator[LogChunk | Job]:
    """Yield each new piece of output from `offset`, then the terminal job."""
    shared = shared or SharedReads()
    with hub.watch(job_id, output=True) if hub is not None else _no_watch() as watch:
        while True:
            seen = watch.seen if watch is not None else 0
            read = partial(
                manager.read_output,
                job_id=job_id,
                offset=offset,
                limit=CHUNK_BYTES,
                visibility=visibility,
            )
            chunk = await shared.read(
                ("output", job_id, offset, visibility, seen),
                partial(anyio.to_thread.run_sync, read),
            )
            if chunk.data:
                yield chunk
            if chunk.complete:
                yield await shared.read(
                    ("job", job_id, visibility, seen),
                    partial(read_job, manager, job_id=job_id, visibility=visibility),
                )
                return
            if chunk.next_offset == offset:
                if watch is None:
                    await anyio.sleep(POLL_SECONDS)
                else:
                    await watch.wait(seen, RECHECK_SECONDS)
            offset = chunk.next_offset


@contextmanager
def _no_watch() -> Iterator[None]:
    yield None


class FollowerSlots:
    """At most `per_user` live followers per user in this process: each holds a
    connection, so one caller cannot exhaust them."""

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
