"""RUNNER_MODE=warm: start each run as a child forked from a warmed Kedro process.

Each worker process keeps one `scripts/warm_server.py` per (project, interpreter),
started with the project's own interpreter and environment. Before each job it
checks that the server is alive, that the project's code and config are
unchanged since it warmed (`project_fingerprint`) and that it has not served
`WARM_MAX_JOBS` runs; otherwise it warms a new one. If warming fails the job
runs cold, and warming is retried only once the project changes or
`WARM_RETRY_SECONDS` have passed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.core.config import Settings
from app.runner.groups import ChannelChild, ChannelGone, receive, stop_group
from app.runner.scripts.warm_server import project_fingerprint

logger = logging.getLogger(__name__)

WARM_SERVER = Path(__file__).parent / "scripts" / "warm_server.py"
WARM_TIMEOUT_SECONDS = 120.0
WARM_RETRY_SECONDS = 300.0


class WarmUnavailable(ChannelGone):
    """The warmed process could not be started or did not answer."""


WarmChild = ChannelChild


@dataclass
class WarmServer:
    """One warmed project process and the channel to it."""

    process: subprocess.Popen[bytes]
    channel: socket.socket
    fingerprint: str
    kedro_version: str
    watch: list[str] = field(default_factory=list)
    runs: int = 0

    @classmethod
    def start(cls, settings: Settings, env: dict[str, str], grace: float) -> WarmServer:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(  # noqa: S603  (argv list: the project's interpreter)
                [
                    settings.kedro_python,
                    str(WARM_SERVER),
                    str(theirs.fileno()),
                    str(grace),
                    ",".join(settings.warm_shortcuts),
                ],
                cwd=settings.kedro_project_path,
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise WarmUnavailable(f"could not start {settings.kedro_python}: {exc}") from exc
        finally:
            theirs.close()
        hello = receive(ours, timeout=WARM_TIMEOUT_SECONDS)
        if hello is None or not hello.get("ready"):
            ours.close()
            stop_group(process, wait=5)
            reason = hello.get("error") if hello else "no answer while warming"
            raise WarmUnavailable(f"warming the Kedro project failed: {reason}")
        return cls(
            process,
            ours,
            str(hello["fingerprint"]),
            str(hello["kedro_version"]),
            [str(path) for path in hello.get("watch", [])],
        )

    def usable(self, project: Path, max_runs: int) -> bool:
        """Alive, under its run budget, and warmed from the project as it is now."""
        return (
            self.process.poll() is None
            and self.runs < max_runs
            and project_fingerprint(project, self.watch) == self.fingerprint
        )

    def spawn(self, args: list[str], output_fd: int) -> WarmChild:
        """Fork a run of `kedro <args>` writing to `output_fd`."""
        try:
            socket.send_fds(self.channel, [json.dumps({"args": args}).encode()], [output_fd])
        except OSError as exc:
            raise WarmUnavailable(f"the warm server is gone: {exc}") from exc
        answer = receive(self.channel, timeout=10)
        if answer is None or "pid" not in answer:  # (an unread "exit" is a broken channel)
            raise WarmUnavailable("the warm server did not start the run")
        self.runs += 1
        return WarmChild(self.channel, int(answer["pid"]))

    def close(self) -> None:
        self.channel.close()
        stop_group(self.process, wait=5)


class WarmPool:
    """The warm servers of this worker process, one per project and interpreter."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, str], WarmServer] = {}
        self._failed: dict[tuple[str, str], tuple[float, str, str]] = {}
        self.last_error: str | None = None
        self._reported_error: str | None = None

    def spawn(
        self, settings: Settings, env: dict[str, str], grace: float, args: list[str], output: int
    ) -> WarmChild:
        """Fork a run from a usable warm server; a server that fails to fork is dropped."""
        server = self.server_for(settings, env, grace)
        try:
            return server.spawn(args, output)
        except WarmUnavailable:
            server.close()
            self._servers = {k: s for k, s in self._servers.items() if s is not server}
            raise

    def server_for(self, settings: Settings, env: dict[str, str], grace: float) -> WarmServer:
        """A usable warm server for the settings' project, warming one if needed."""
        key = (str(settings.kedro_project_path), settings.kedro_python)
        project = settings.kedro_project_path
        current = self._servers.get(key)
        if current is not None and current.usable(project, settings.warm_max_jobs):
            return current
        if current is not None:
            logger.info("re-warming the Kedro project at %s", project)
            current.close()
            del self._servers[key]
        failed = self._failed.get(key)
        fingerprint = project_fingerprint(project)
        if failed and failed[1] == fingerprint and time.monotonic() < failed[0]:
            raise WarmUnavailable(failed[2])
        try:
            server = WarmServer.start(settings, env, grace)
        except WarmUnavailable as exc:
            logger.warning("warming %s failed, running cold: %s", project, exc)
            self.last_error = str(exc)
            self._failed[key] = (time.monotonic() + WARM_RETRY_SECONDS, fingerprint, str(exc))
            raise
        self._failed.pop(key, None)
        self.last_error = None
        self._servers[key] = server
        return server

    def error_changed(self) -> bool:
        """Whether `last_error` changed since this was last asked (so it is stored once)."""
        changed = self.last_error != self._reported_error
        self._reported_error = self.last_error
        return changed

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()


_pools: dict[int, WarmPool] = {}


def warm_pool() -> WarmPool:
    """This process's warm servers (a forked worker process starts its own)."""
    return _pools.setdefault(os.getpid(), WarmPool())
