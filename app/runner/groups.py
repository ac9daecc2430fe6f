"""Process groups: start a command under the guard, signal and stop a whole group.

`scripts/guard.py` and `scripts/warm_server.py` keep their own copies of the
stop sequence: they run in other interpreters with the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Protocol

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
