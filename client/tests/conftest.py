"""Fixtures: a real gateway (`python main.py`, standalone) for the end-to-end tests.

The gateway runs from the repository this client lives in (`GATEWAY_REPO`, default the
parent of `client/`), with that repository's `.venv/bin/python` (`GATEWAY_PYTHON`). It
gets its own port, data directory and SQLite file, and is stopped with SIGTERM to its
process group. `KEDRO_GATEWAY_E2E_URL` points the tests at an already running gateway
instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from kedro_gateway_client import GatewayClient, Job

T = TypeVar("T")
CLIENT_ROOT = Path(__file__).resolve().parents[1]
GATEWAY_REPO = Path(os.environ.get("GATEWAY_REPO", CLIENT_ROOT.parent))
START_TIMEOUT = 180.0
# Only these of the caller's variables reach the gateway (none of its settings).
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_python() -> str:
    configured = os.environ.get("GATEWAY_PYTHON")
    if configured:
        return configured
    venv = GATEWAY_REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class Gateway:
    url: str
    log_path: Path | None

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-5000:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def running_gateway(home: Path, **settings: str) -> Iterator[Gateway]:
    """A real gateway (API, embedded Redis, one Celery worker, the example Kedro project),
    with the given gateway settings, until the block ends."""
    if not (GATEWAY_REPO / "main.py").exists():
        pytest.fail(f"no gateway at {GATEWAY_REPO} (set GATEWAY_REPO or KEDRO_GATEWAY_E2E_URL)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        DATA_DIR=str(home / "data"),
        DATABASE_URL=f"sqlite:///{home / 'jobs.db'}",
        WORKER_CONCURRENCY="2",
        **settings,
    )
    log_path = home / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [gateway_python(), "main.py"],
            cwd=GATEWAY_REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    gw = Gateway(f"http://127.0.0.1:{port}", log_path)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"the gateway exited:\n{gw.log()}"
            try:
                # Ready: the API answers and a worker of the default queue is alive.
                return httpx.get(f"{gw.url}/api/v1/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=START_TIMEOUT, what=f"the gateway at {gw.url}", interval=0.25)
        yield gw
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The open gateway most tests share (or `KEDRO_GATEWAY_E2E_URL`'s)."""
    existing = os.environ.get("KEDRO_GATEWAY_E2E_URL")
    if existing:
        yield Gateway(existing.rstrip("/"), None)
        return
    with running_gateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway) -> Iterator[GatewayClient]:
    with GatewayClient(gateway.url) as gw:
        yield gw


@pytest.fixture
def cli_env(gateway: Gateway, tmp_path: Path) -> dict[str, str]:
    """Environment for a `kedro-gateway` process: this gateway, no user config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEDRO_GATEWAY_")}
    env.update(
        KEDRO_GATEWAY_URL=gateway.url,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HOME=str(tmp_path),
        COLUMNS="200",
    )
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`kedro-gateway ARGS` as a separate process (the installed module)."""
    return subprocess.run(
        [sys.executable, "-m", "kedro_gateway_client", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_running(client: GatewayClient, job_id: str, timeout: float = 120) -> Job:
    """Poll (with a deadline) until the job's Kedro node is running."""

    def running() -> Job | None:
        job = client.get(job_id)
        assert not job.is_terminal, job
        return job if job.status == "running" and job.progress.running_node_names else None

    return wait_until(running, timeout=timeout, what=f"job {job_id} to run a node")
