"""Run commands as process groups that cannot outlive the process that started them.

Two uses, both by the gateway's cold runner, never by hand:

    python -I -S guard.py <grace-seconds> -- <argv...>
    python -I -S guard.py --serve <socket-fd> <grace-seconds>

The first starts one command in the guard's own process group and waits for it.
The second is the same guard kept alive for a worker process: it starts each
command it is sent on the SOCK_SEQPACKET socket <socket-fd> (a JSON request
{"argv", "cwd", "env"} with the output file descriptor as SCM_RIGHTS) in a new
session, answers {"pid": N} (or {"error": "..."}) and, once the command exits,
{"exit": <returncode>}. Its interpreter starts once per worker process instead
of once per run.

If the guard is told to stop (SIGTERM from a cancel or a timeout, or from the
kernel because its parent died, via PR_SET_PDEATHSIG), it signals the whole
group of its command, waits a grace period and then kills the group, so no child
(ParallelRunner's pool included) is left behind. Standard library only: it runs
with `-I -S` to start in milliseconds.
"""

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def _stop_group(child: "subprocess.Popen[bytes] | None", grace: float, pgid: int = 0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while child is not None and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class _StopRequested(Exception):
    pass


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _StopRequested


def _die_with_parent() -> bool:
    """Ask for SIGTERM when the parent dies; False if it already has."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _raise_stop)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def main() -> int:
    if sys.argv[1] == "--serve":
        return serve(socket.socket(fileno=int(sys.argv[2])), float(sys.argv[3]))
    grace = float(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    if not _die_with_parent():  # the parent died before prctl took effect
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


class _Stop:
    """SIGTERM while serving: noted always, raised only where it is safe to break out."""

    requested = False
    may_raise = True

    @classmethod
    def handle(cls, _signum: int, _frame: object) -> None:
        cls.requested = True
        if cls.may_raise:
            raise _StopRequested


def serve(channel: socket.socket, grace: float) -> int:
    """Start each requested command in its own session; stop it if told to stop."""
    if not _die_with_parent():
        return 1
    signal.signal(signal.SIGTERM, _Stop.handle)
    child = None
    try:
        while True:
            message, fds, _flags, _addr = socket.recv_fds(channel, 1 << 20, 1)
            if not message:
                return 0
            request = json.loads(message)
            _Stop.may_raise = False  # a command started must be known before we stop
            try:
                child = subprocess.Popen(  # noqa: S603 (argv list, no shell)
                    request["argv"],
                    cwd=request["cwd"],
                    env=request["env"],
                    stdin=subprocess.DEVNULL,
                    stdout=fds[0],
                    stderr=fds[0],
                    start_new_session=True,
                )
            except OSError as exc:
                channel.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                continue
            finally:
                for fd in fds:
                    os.close(fd)
                _Stop.may_raise = True
                if _Stop.requested:
                    raise _StopRequested
            channel.send(json.dumps({"pid": child.pid}).encode())
            returncode = child.wait()
            child = None
            channel.send(json.dumps({"exit": returncode}).encode())
    except _StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if child is not None:
            _stop_group(child, grace, child.pid)
        return 1


if __name__ == "__main__":
    sys.exit(main())
