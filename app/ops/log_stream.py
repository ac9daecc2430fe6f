"""Follow a job's output as it is written, until the job ends.

A follower first catches up on its own: it reads from its offset (followers at
the same offset share each read) until a read finds nothing new. Then it joins
the job's tail (`OutputTails`): one reader per followed job in the process,
which sleeps on the `ChangeHub` until the runner's next append (or the job's end)
is announced, reads it once, and hands it to every follower. So a thousand idle
followers cost nothing, and a thousand busy ones one read and a thousand queue
puts per append, not a thousand wake-ups that each look for the read to share.
A follower that falls `MAX_BACKLOG` pieces behind is let go and catches up on its
own again. Without a hub (no broker to hear notices from) a follower polls every
`POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import anyio

from app.core.exceptions import TooManyRequests
from app.ops.job_views import read_job
from app.ops.waiting import RECHECK_SECONDS, ChangeHub, SharedReads
from app.schemas.jobs import Job, LogChunk
from app.store import EVERYONE, JobManager, Visibility

POLL_SECONDS = 0.2  # the runner stores output every 0.25 s
ARRIVING_AT_ONCE = 16
CHUNK_BYTES = 256 * 1024
MAX_BACKLOG = 64
HAND_OUT_SLICE = 16
_LET_GO = object()  # in a feed: the follower (behind, or its tail failed) reads on its own


async def follow_output(
    manager: JobManager,
    *,
    job_id: str,
    offset: int,
    visibility: Visibility,
    hub: ChangeHub | None = None,
    shared: SharedReads | None = None,
    tails: OutputTails | None = None,
    caught_up: Callable[[], None] = lambda: None,
) -> AsyncGenerator[LogChunk | Job, None]:
    """Yield each new piece of output from `offset`, then the terminal job; call
    `caught_up` after each read (only the first call counts)."""
    shared = shared or SharedReads()
    with hub.watch(job_id, output=True) if hub is not None else _no_watch() as watch:
        while True:
            seen = watch.seen if watch is not None else 0
            chunk = await shared.read(
                ("output", job_id, offset, visibility, seen),
                partial(_read_output, manager, job_id, offset, visibility),
            )
            caught_up()  # what is left is sending, which a slow client may hold up
            if chunk.data:
                yield chunk
            if chunk.complete:
                yield await shared.read(
                    ("job", job_id, visibility, seen),
                    partial(read_job, manager, job_id=job_id, visibility=visibility),
                )
                return
            if chunk.next_offset != offset:
                offset = chunk.next_offset
                continue
            if tails is not None:  # caught up: the job's tail takes over from here
                with tails.joined(job_id, offset) as feed:
                    while feed is not None and (item := await feed.get()) is not _LET_GO:
                        yield item
                        if isinstance(item, Job):
                            return
                        offset = item.next_offset
                if feed is not None:
                    continue
            if watch is None:
                await anyio.sleep(POLL_SECONDS)
            else:
                await watch.wait(seen, RECHECK_SECONDS)


async def _read_output(
    manager: JobManager, job_id: str, offset: int, visibility: Visibility
) -> LogChunk:
    """The next piece of output from `offset`, read on a worker thread."""
    read = partial(
        manager.read_output, job_id=job_id, offset=offset, limit=CHUNK_BYTES, visibility=visibility
    )
    chunk: LogChunk = await anyio.to_thread.run_sync(read)
    return chunk


class OutputTails:
    """The process's readers of followed jobs' output, one per job, each alive while a
    follower is joined to it."""

    def __init__(self, manager: JobManager, hub: ChangeHub) -> None:
        self._manager = manager
        self._hub = hub
        self._tails: dict[str, _Tail] = {}

    @contextmanager
    def joined(self, job_id: str, offset: int) -> Iterator[asyncio.Queue[Any] | None]:
        """The queue of what the job's tail reads from `offset` on, or None if its tail
        is already past `offset` (the follower catches up first)."""
        tail = self._tails.get(job_id)
        if tail is None or tail.ended:
            tail = self._tails[job_id] = _Tail(self._manager, self._hub, job_id, offset)
            tail.task.add_done_callback(lambda _: self._forget(tail))
        if tail.offset != offset:
            yield None
            return
        feed: asyncio.Queue[Any] = asyncio.Queue()
        tail.feeds.add(feed)
        try:
            yield feed
        finally:
            tail.feeds.discard(feed)
            if not tail.feeds:
                tail.task.cancel()
                self._forget(tail)

    def _forget(self, tail: _Tail) -> None:
        if self._tails.get(tail.job_id) is tail:
            del self._tails[tail.job_id]


class _Tail:
    """Reads one job's output as it is announced and hands each piece to every feed."""

    def __init__(self, manager: JobManager, hub: ChangeHub, job_id: str, offset: int) -> None:
        self.job_id = job_id
        self.offset = offset
        self.feeds: set[asyncio.Queue[Any]] = set()
        self.ended = False  # handing out its last item: a follower joining now gets a new tail
        self.task = asyncio.get_running_loop().create_task(self._run(manager, hub))

    async def _run(self, manager: JobManager, hub: ChangeHub) -> None:
        try:
            with hub.watch(self.job_id, output=True) as watch:
                while True:
                    seen = watch.seen
                    # EVERYONE: each follower was let in by its own read.
                    chunk = await _read_output(manager, self.job_id, self.offset, EVERYONE)
                    moved = chunk.next_offset != self.offset
                    # Moved first: a follower joining while this is handed out has it.
                    self.offset = chunk.next_offset
                    if chunk.data:
                        await self._hand_out(chunk)
                    if chunk.complete:
                        job = await read_job(manager, job_id=self.job_id, visibility=EVERYONE)
                        self.ended = True
                        await self._hand_out(job)
                        return
                    if not moved:
                        await watch.wait(seen, RECHECK_SECONDS)
        except Exception:  # every follower reads on its own again, and meets it there
            self.ended = True
            await self._hand_out(_LET_GO)
        finally:
            self.ended = True

    async def _hand_out(self, item: object) -> None:
        """Queue `item` for every feed, `HAND_OUT_SLICE` at a time: the followers woken
        by one slice send before the next is woken, and other requests get turns
        between slices."""
        feeds = list(self.feeds)
        for start in range(0, len(feeds), HAND_OUT_SLICE):
            if start:
                await asyncio.sleep(0)
            for feed in feeds[start : start + HAND_OUT_SLICE]:
                if feed not in self.feeds:  # its follower left meanwhile
                    continue
                if item is not _LET_GO and feed.qsize() >= MAX_BACKLOG:
                    self.feeds.discard(feed)
                    feed.put_nowait(_LET_GO)
                else:
                    feed.put_nowait(item)


@contextmanager
def _no_watch() -> Iterator[None]:
    yield None


class FollowerSlots:
    """At most `per_user` live followers per user in this process: each holds a
    connection, so one caller cannot exhaust them. And at most `ARRIVING_AT_ONCE`
    followers being set up (the job's read, the first read of its output) at a time: a
    thousand arriving at once would otherwise each run its setup before any other
    request in the process had its turn."""

    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._taken: Counter[str | None] = Counter()
        self._lock = threading.Lock()
        self._arriving = asyncio.Semaphore(ARRIVING_AT_ONCE)

    async def arrive(self) -> Callable[[], None]:
        """Wait for a turn to set a follower up; call the result (once or more) when it
        is set up or has failed."""
        await self._arriving.acquire()
        arrived = False

        def done() -> None:
            nonlocal arrived
            if not arrived:
                arrived = True
                self._arriving.release()

        return done

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
