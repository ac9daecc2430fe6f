"""Process groups: start a command under the guard, signal and stop a whole group.

`scripts/guard.py` and `scripts/warm_server.py` keep their own copies of the
stop sequence: they run in other interpreters with the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

GUARD_SCRIPT = Path(__file__).parent / "scripts" / "guard.py"


class Waitable(Protocol):
    """A group leader we can wait for (`subprocess.Popen`, a run)."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...


class RunProcess(Waitable, Protocol):
    """A started run, cold or warm: its pid leads its group; its exit is selectable."""

    def exit_fileno(self) -> int: ...
    def poll(self) -> int | None: ...
    def close(self) -> None: ...


class ChannelGone(Exception):
    """The process that started a run (a guard or a warm server) is gone."""


class ChannelChild:
    """A run started by another process that reports its exit on `channel`.

    The same surface as a Popen for the runner; the channel belongs to the starter.
    """

    def __init__(self, channel: socket.socket, pid: int) -> None:
        self._channel = channel
        self.pid = pid
        self.returncode: int | None = None

    def exit_fileno(self) -> int:
        """Readable once the starter reports the exit status."""
        return self._channel.fileno()

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._channel], [], [], 0)[0]:
            self._read_exit()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            ready = select.select([self._channel], [], [], timeout)[0]
            if not ready:
                raise subprocess.TimeoutExpired(f"run {self.pid}", timeout or 0)
            self._read_exit()
        assert self.returncode is not None  # noqa: S101  (set by _read_exit or raised)
        return self.returncode

    def close(self) -> None:
        """Nothing to release: the channel belongs to the starter."""

    def _read_exit(self) -> None:
        message = self._channel.recv(65536)
        if not message:
            raise ChannelGone("the process that started the run died while it ran")
        self.returncode = int(json.loads(message)["exit"])


def receive(channel: socket.socket, *, timeout: float) -> dict[str, Any] | None:
    """One JSON message from `channel`, or None on timeout or when it is closed."""
    if not select.select([channel], [], [], timeout)[0]:
        return None
    message = channel.recv(65536)
    return json.loads(message) if message else None


def guarded_argv(argv: list[str], *, grace: float) -> list[str]:
    """`argv` under the guard, which takes the whole group with it when its parent dies."""
    return [sys.executable, "-I", "-S", str(GUARD_SCRIPT), str(grace), "--", *argv]


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to the group; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(process: Waitable, *, wait: float) -> None:
    """SIGTERM the leader's group, then SIGKILL it if the leader outlives `wait` seconds."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()
