"""A cold run: `kedro run` started by the process guard, a fresh interpreter per run.

Each worker process keeps one guard serving it (`scripts/guard.py --serve`, started
once with the worker's own interpreter): it starts each run in a new session, reports
its exit, and stops the run's group if it is told to stop or its worker dies. So a run
costs one fork and exec of `kedro run`, not a second interpreter as well. If that guard
cannot be started or has died, the run is started under a guard of its own, as before.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from app.runner.groups import (
    GUARD_SCRIPT,
    ChannelChild,
    ChannelGone,
    RunProcess,
    guarded_argv,
    receive,
    stop_group,
)

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0


def start_cold(
    argv: list[str], *, cwd: Path, env: dict[str, str], output: int, grace: float
) -> RunProcess:
    """Start `argv` in its own process group under a guard, output to the `output` fd.

    Raises OSError if the command cannot be started."""
    try:
        return guard_server(grace).start(argv, cwd=cwd, env=env, output=output)
    except ChannelGone as exc:
        logger.warning("the worker's guard is unavailable (%s): one guard for this run", exc)
        broken = _servers.pop(os.getpid(), None)
        if broken is not None:
            broken.close()
    # The argv is a list built from allowlisted names; no shell is involved.
    popen = subprocess.Popen(  # noqa: S603
        guarded_argv(argv, grace=grace),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        start_new_session=True,
    )
    return ColdProcess(popen)


class GuardServer:
    """The guard serving this worker process: it starts, watches and stops its runs."""

    def __init__(self, grace: float) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(  # noqa: S603  (argv list: this interpreter)
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(GUARD_SCRIPT),
                    "--serve",
                    str(theirs.fileno()),
                    str(grace),
                ],
                stdin=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ChannelGone(f"could not start the guard: {exc}") from exc
        finally:
            theirs.close()
        self.channel = ours

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], output: int
    ) -> ChannelChild:
        request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
        try:
            socket.send_fds(self.channel, [request], [output])
        except OSError as exc:
            raise ChannelGone(f"the guard is gone: {exc}") from exc
        answer = receive(self.channel, timeout=START_TIMEOUT_SECONDS)
        if answer is None:
            self.close()
            raise ChannelGone("the guard did not answer")
        if "error" in answer:
            raise OSError(answer["error"])
        if "pid" not in answer:  # an unread "exit": the channel is out of step
            self.close()
            raise ChannelGone(f"the guard answered out of turn: {answer}")
        return ChannelChild(self.channel, int(answer["pid"]))

    def close(self) -> None:
        self.channel.close()
        stop_group(self.process, wait=5)


_servers: dict[int, GuardServer] = {}


def guard_server(grace: float) -> GuardServer:
    """This process's guard server (a forked worker process starts its own)."""
    server = _servers.get(os.getpid())
    if server is None or not server.alive():
        if server is not None:
            server.close()
        server = _servers[os.getpid()] = GuardServer(grace)
    return server


class ColdProcess:
    """`kedro run` under a guard of its own, watched through a pidfd."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._pidfd = os.pidfd_open(popen.pid)

    def exit_fileno(self) -> int:
        return self._pidfd

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout)

    def close(self) -> None:
        os.close(self._pidfd)
