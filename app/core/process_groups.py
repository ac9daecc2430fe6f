"""Signal and stop whole process groups (a run, a warm server, a standalone service).

`process_guard.py` and `warm_server.py` keep their own copies: they run in other
interpreters with the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Protocol


class Waitable(Protocol):
    """A group leader we can wait for (`subprocess.Popen` or a warm child)."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...


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
