"""Followed streams (SSE): a job's output and its state transitions, as they happen.

A thousand clients may follow one job. sse-starlette's response runs four tasks
per connection (stream, ping, disconnect, shutdown) and sends each event under a
cancel scope of its own; through FastAPI each event also passes every
middleware's `send` wrapper. `EventStream` sends from the request's own task and
keeps one more task per connection, waiting for the client to go. One task per
process (`_Streams`) sends the keep-alive comments and ends every stream when the
server is asked to exit (the flag sse-starlette sets when uvicorn's exit handler
runs), so shutdown is not held up by followers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncGenerator, Callable
from functools import lru_cache, partial
from typing import Any

from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from app.ops.job_views import follow_events
from app.ops.log_stream import FollowerSlots, follow_output
from app.schemas.jobs import Job, JobEvent, LogChunk
from app.store import Visibility

PING_SECONDS = 15.0
EXIT_CHECK_SECONDS = 0.5


class EventStream(StreamingResponse):
    """An SSE response whose body is `events`, each item one encoded event; `release`
    runs once when the response is over, however it ends."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], release: Callable[[], None]) -> None:
        super().__init__(events, headers={"cache-control": "no-store", "x-accel-buffering": "no"})
        self._events = events
        self._release = release
        self._send: Send | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stopped = False
        self.busy = False  # a send (an event's or a ping's) is under way
        self.idle_since = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope["method"] != "HEAD":
                await self._stream(receive, send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            try:
                await self._events.aclose()
            finally:
                self._release()

    async def _stream(self, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._send = send
        self.idle_since = loop.time()
        gone = loop.create_task(self._stop_when_gone(receive))
        _streams.add(self)
        try:
            async for event in self._events:
                self.busy = True
                await send({"type": "http.response.body", "body": event, "more_body": True})
                self.busy = False
                self.idle_since = loop.time()
        except asyncio.CancelledError:
            # Ours (the client left, the server exits) is absorbed; any other goes on.
            if not self._stopped or self._task is None or self._task.uncancel() > 0:
                raise
        finally:
            self._task = None  # no stop lands past this point
            _streams.discard(self)
            gone.cancel()

    async def _stop_when_gone(self, receive: Receive) -> None:
        with contextlib.suppress(Exception):  # a receive that fails means gone too
            while (await receive())["type"] != "http.disconnect":
                pass
        self.stop()

    def stop(self) -> None:
        """End the stream where it waits (the client left, or the server exits)."""
        if self._task is not None and not self._stopped:
            self._stopped = True
            self._task.cancel()

    async def ping(self) -> None:
        """Send a keep-alive comment (the keeper calls it only while no send is under way)."""
        if self._send is None or self._task is None:
            return
        self.busy = True
        try:
            with contextlib.suppress(RuntimeError):  # the stream ended while the ping waited
                await self._send(_PING)
        finally:
            self.busy = False
            self.idle_since = asyncio.get_running_loop().time()


_PING: Message = {"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True}


class _Streams:
    """The process's open streams, and the one task that pings and ends them."""

    def __init__(self) -> None:
        self._open: set[EventStream] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._pings: set[asyncio.Task[None]] = set()

    def add(self, stream: EventStream) -> None:
        self._open.add(stream)
        loop = asyncio.get_running_loop()
        if self._keeper is None or self._keeper.done() or self._keeper.get_loop() is not loop:
            self._keeper = loop.create_task(self._keep())

    def discard(self, stream: EventStream) -> None:
        self._open.discard(stream)

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._open:
            await asyncio.sleep(EXIT_CHECK_SECONDS)
            if _exiting():
                for stream in list(self._open):
                    stream.stop()
                continue
            quiet_since = loop.time() - PING_SECONDS
            for stream in [s for s in self._open if s.idle_since <= quiet_since and not s.busy]:
                ping = loop.create_task(stream.ping())  # a slow client holds up no other
                self._pings.add(ping)
                ping.add_done_callback(self._pings.discard)


def _exiting() -> bool:
    """Whether uvicorn was asked to exit: sse-starlette's flag, set by its patch of
    uvicorn's exit handler, or (where the handlers were installed before that patch,
    as in `uvicorn --workers` children) the server behind the SIGTERM handler."""
    if AppStatus.should_exit:
        return True
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))


_streams = _Streams()


def log_stream(
    state: Any,
    *,
    job_id: str,
    offset: int,
    visibility: Visibility,
    arrived: Callable[[], None] = lambda: None,
) -> EventStream:
    """Follow a job's output from `offset` (`TooManyRequests` past the user's slots);
    `arrived` is called after the follower's first read, or when its stream ends."""
    followers: FollowerSlots = state.followers
    followers.take(visibility.user_id)
    stream = follow_output(
        state.manager,
        job_id=job_id,
        offset=offset,
        visibility=visibility,
        hub=state.hub,
        shared=state.shared_reads,
        tails=state.tails,
        caught_up=arrived,
    )

    def release() -> None:
        followers.give_back(visibility.user_id)
        arrived()

    return EventStream(_log_events(stream), release)


def status_stream(state: Any, *, job_id: str, after: int, visibility: Visibility) -> EventStream:
    """Follow a job's transitions past event `after` (`TooManyRequests` past the slots)."""
    followers: FollowerSlots = state.followers
    followers.take(visibility.user_id)
    stream = follow_events(
        state.manager, state.hub, job_id=job_id, visibility=visibility, after=after
    )
    return EventStream(_status_events(stream), partial(followers.give_back, visibility.user_id))


async def _log_events(stream: AsyncGenerator[LogChunk | Job, None]) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(stream):  # its feed and watch go with the response
        async for item in stream:
            if isinstance(item, LogChunk):
                yield _log_event(item.data, item.next_offset)
            else:
                yield _end_event(item)


async def _status_events(
    stream: AsyncGenerator[tuple[int, JobEvent] | Job, None],
) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(stream):
        async for item in stream:
            if isinstance(item, Job):
                yield _end_event(item)
            else:
                event_id, event = item
                encoded = ServerSentEvent(event.model_dump_json(), event="status", id=str(event_id))
                yield encoded.encode()


@lru_cache(maxsize=16)
def _log_event(data: str, next_offset: int) -> bytes:
    """One piece of output as an SSE event, encoded once for all the followers that
    share its read (the same string, so its hash is computed once too)."""
    return ServerSentEvent(data, event="log", id=str(next_offset)).encode()


def _end_event(job: Job) -> bytes:
    """The `end` event; followers that shared the last read share one `Job`, so it is
    encoded once for them all."""
    if _last_end[0] is not job:
        _last_end[:] = [job, ServerSentEvent(job.model_dump_json(), event="end").encode()]
    event: bytes = _last_end[1]
    return event


_last_end: list[Any] = [None, b""]
