"""Waiting without polling: requests sleep until a change notice names their job.

One `ChangeHub` per API process. A request that waits on a job takes a `Watch`
(state changes only, or output too), reads the job, and if it must wait longer
sleeps on the watch until a notice for its job arrives, or at most
`RECHECK_SECONDS` (the safety net for a notice lost on the way). Each watch
counts the notices it has seen, so a notice that lands between a read and the
sleep is never missed.

Followers of one job's output share their reads (`SharedReads`): when a notice
wakes a thousand followers at the same offset, one of them reads the database
and the others take its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

RECHECK_SECONDS = 30.0
POLL_SECONDS = 0.2  # while no notices can arrive (Redis unreachable), waiters poll
T = TypeVar("T")


class _Signal:
    """A counter of notices and an event set at each one (replaced, so waits re-arm)."""

    __slots__ = ("event", "seq", "watchers")

    def __init__(self) -> None:
        self.seq = 0
        self.event = asyncio.Event()
        self.watchers = 0

    def fire(self) -> None:
        self.seq += 1
        self.event.set()
        self.event = asyncio.Event()


class Watch:
    """One waiter's view of a job's notices."""

    def __init__(self, signal: _Signal, hub: ChangeHub) -> None:
        self._signal = signal
        self._hub = hub

    @property
    def seen(self) -> int:
        """Take before reading; pass to `wait` after."""
        return self._signal.seq

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once a notice newer than `seen` arrived, or after `timeout` seconds."""
        if self._signal.seq != seen:
            return
        if not self._hub.connected:
            timeout = min(timeout, POLL_SECONDS)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for
                await self._signal.event.wait()


class ChangeHub:
    """Fans the process's change notices out to the watches on each job."""

    def __init__(self) -> None:
        self._state: dict[str, _Signal] = {}
        self._any: dict[str, _Signal] = {}
        self.connected = False

    @contextlib.contextmanager
    def watch(self, job_id: str, *, output: bool = False) -> Iterator[Watch]:
        """Watch a job's state changes (and with `output`, its output appends too)."""
        table = self._any if output else self._state
        signal = table.get(job_id)
        if signal is None:
            signal = table[job_id] = _Signal()
        signal.watchers += 1
        try:
            yield Watch(signal, self)
        finally:
            signal.watchers -= 1
            if not signal.watchers:
                table.pop(job_id, None)

    def changed(self, job_id: str, kind: str) -> None:
        """A notice arrived (called on the event loop)."""
        if kind == "state" and (signal := self._state.get(job_id)) is not None:
            signal.fire()
        if (signal := self._any.get(job_id)) is not None:
            signal.fire()

    def reconnected(self) -> None:
        """Notices may have been missed: wake every watch once."""
        self.connected = True
        self._wake_all()

    def disconnected(self) -> None:
        """No notices until reconnected: waiters poll meanwhile."""
        self.connected = False
        self._wake_all()

    def _wake_all(self) -> None:
        for table in (self._state, self._any):
            for signal in list(table.values()):
                signal.fire()

    @property
    def watchers(self) -> int:
        return sum(s.watchers for s in self._state.values()) + sum(
            s.watchers for s in self._any.values()
        )


class SharedReads:
    """Single-flight reads: callers asking for the same key, after the same notice,
    share one call. The call runs as a task of its own, so a caller that leaves (its
    client gone) does not cancel it for the others."""

    def __init__(self) -> None:
        self._flights: dict[Any, asyncio.Task[Any]] = {}

    async def read(self, key: Any, call: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(call())
            self._flights[key] = flight
            flight.add_done_callback(partial(self._landed, key))
        result: T = await asyncio.shield(flight)
        return result

    def _landed(self, key: Any, flight: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here, so a flight its callers left logs nothing
