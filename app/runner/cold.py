"""A cold run: `kedro run` started under the process guard, watched through a pidfd."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from app.runner.groups import guarded_argv


def start_cold(
    argv: list[str], *, cwd: Path, env: dict[str, str], output: int, grace: float
) -> ColdProcess:
    """Start `argv` in its own process group under the guard, output to the `output` fd."""
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


class ColdProcess:
    """`kedro run` under the process guard, watched through a pidfd."""

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
