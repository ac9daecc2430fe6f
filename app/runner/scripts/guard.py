"""Run a command as a process group that cannot outlive the process that started it.

Usage: python -I -S process_guard.py <grace-seconds> -- <argv...>

The runner starts this guard in a new session; the guard starts the command in
the same process group and waits for it. If the guard is told to stop (SIGTERM
from a cancel, a timeout, or the kernel because its parent died, via
PR_SET_PDEATHSIG), it signals the whole group, waits a grace period and then
kills the group, so no child (ParallelRunner's pool included) is left behind.
It exits as the command did, re-raising the command's fatal signal if any.
Standard library only: it runs with `-I -S` to start in milliseconds.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def _stop_group(child: "subprocess.Popen[bytes] | None", grace: float) -> None:
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while child is not None and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)


class _StopRequested(Exception):
    pass


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _StopRequested


def main() -> int:
    grace = float(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _raise_stop)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 1
    child = None
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)  # noqa: S603 (argv list, no shell)
        returncode = child.wait()
    except _StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_group(child, grace)
        return 1
    if returncode < 0:
        signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
