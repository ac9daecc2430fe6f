"""Real processes for end-to-end tests: Redis, Celery workers and the API.

Each is started as its own process group so a test can SIGKILL it whole, the
way an operator's machine would lose it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from app.core.config import REPO_ROOT
from app.standalone import celery_worker_argv, redis_server_binary

T = TypeVar("T")
TERMINAL = {"completed", "failed", "cancelled"}


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)


# The only variables a started service inherits from the caller: nothing of the caller's
# gateway settings (API_KEYS, RUNNER_MODE, LOG_FORMAT, ...) may leak into a stack.
_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV")


def scrubbed_env(**values: str) -> dict[str, str]:
    """The caller's locale and paths only, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    env.update(values)
    return env


def wait_for_api(
    base_url: str, process: subprocess.Popen[bytes], log: Callable[[], str], *, timeout: float = 30
) -> None:
    """Poll `/health/live` until it answers; fail at once (with the log) if the process died."""

    def answers() -> bool:
        assert process.poll() is None, log()
        try:
            return httpx.get(f"{base_url}/api/v1/health/live", timeout=1).is_success
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=timeout, what=f"the API at {base_url}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line contains `text`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@dataclass
class RedisServer:
    """Redis on a unix socket; with `host`, also on TCP `host:port` (the URL is then TCP)."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    host: str | None = None
    port: int = 0

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        if self.host is not None:
            return f"redis://{self.host}:{self.port}/0"
        return f"redis+socket://{self.socket_path}"

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        if self.host is not None:
            self.port = self.port or free_port()
            tcp = ["--port", str(self.port), "--bind", self.host, "--protected-mode", "no"]
        else:
            tcp = ["--port", "0"]
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                *tcp,
                "--unixsocket",
                str(self.socket_path),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._listening, timeout=10, what="redis to listen")

    def _listening(self) -> bool:
        if not self.socket_path.exists():
            return False
        if self.host is None:
            return True
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)
            self.process = None


@dataclass
class ServiceProcess:
    """A worker or API process with its output in a file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None:
            kill_group(self.process, sig)
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Stack:
    """Redis + workers + API sharing one database, driven over HTTP."""

    directory: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    redis: RedisServer = field(init=False)
    workers: list[ServiceProcess] = field(default_factory=list)
    api: ServiceProcess | None = None
    port: int = 0
    more_apis: list[ServiceProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redis = RedisServer(self.directory)

    def env(self, **overrides: str) -> dict[str, str]:
        env = scrubbed_env(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.redis.url,
            PYTHONUNBUFFERED="1",
            WORKER_LOST_AFTER_SECONDS="60",
            MAINTENANCE_INTERVAL_SECONDS="0.5",
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start_worker(
        self,
        name: str = "w1",
        queues: str = "default",
        concurrency: int = 2,
        prefix: Sequence[str] = (),
        **env: str,
    ) -> ServiceProcess:
        """A Celery worker; `prefix` wraps its argv (e.g. `ip netns exec <ns>`)."""
        worker = ServiceProcess(
            [
                *prefix,
                *celery_worker_argv(
                    queues=queues,
                    log_level="INFO",
                    extra=(
                        "-n",
                        f"{name}@%h",
                        "--concurrency",
                        str(concurrency),
                        "--without-mingle",
                        "--without-gossip",
                    ),
                ),
            ],
            self.env(**env),
            self.directory / f"worker-{name}.log",
        )
        worker.start()
        wait_until(
            lambda: "ready." in worker.log() or not worker.alive(),
            timeout=60,
            what=f"worker {name} ready",
        )
        assert worker.alive(), worker.log()
        self.workers.append(worker)
        return worker

    def start_api(self, *, timeout: float = 30, **env: str) -> ServiceProcess:
        self.port = self.port or free_port()
        api = ServiceProcess(
            [sys.executable, "main.py"],
            self.env(HOST="127.0.0.1", PORT=str(self.port), **env),
            self.directory / "api.log",
        )
        api.start()
        self.api = api
        assert api.process is not None
        wait_for_api(self.base_url, api.process, api.log, timeout=timeout)
        return api

    def start_another_api(self, name: str, *, timeout: float = 30, **env: str) -> str:
        """One more `python main.py` on the same database and broker, on a port of its own
        (stopped with the stack); its base URL."""
        port = free_port()
        api = ServiceProcess(
            [sys.executable, "main.py"],
            self.env(HOST="127.0.0.1", PORT=str(port), **env),
            self.directory / f"{name}.log",
        )
        api.start()
        self.more_apis.append(api)
        assert api.process is not None
        base_url = f"http://127.0.0.1:{port}"
        wait_for_api(base_url, api.process, api.log, timeout=timeout)
        return base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, base_url: str | None = None) -> httpx.Client:
        """A client of the stack's API (or of the one at `base_url`)."""
        return httpx.Client(base_url=f"{base_url or self.base_url}/api/v1", timeout=30)

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill(signal.SIGTERM)
        for api in self.more_apis:
            api.kill(signal.SIGTERM)
        if self.api is not None:
            self.api.kill(signal.SIGTERM)
        self.redis.stop()


def duty_holder(database: Path) -> str | None:
    """The holder (host:pid:nonce) of the live `maintenance` lease in a SQLite store."""
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT holder, expires_at FROM leases WHERE name = 'maintenance'"
        ).fetchone()
    if row is None or datetime.fromisoformat(row[1]) < datetime.now(UTC).replace(tzinfo=None):
        return None
    return str(row[0])


def submit(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for_status(
    client: httpx.Client,
    job_id: str,
    statuses: set[str] = TERMINAL,
    timeout: float = 60,
    interval: float = 0.05,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_until(
        probe, timeout=timeout, interval=interval, what=f"job {job_id} to reach {statuses}"
    )


def read_log(client: httpx.Client, job_id: str) -> str:
    chunk = client.get(f"/jobs/{job_id}/logs", params={"limit": 4 * 1024 * 1024}).json()
    data: str = chunk["data"]
    return data


@contextlib.contextmanager
def running_stack(
    directory: Path, database_url: str, workers: int = 1, **env: str
) -> Iterator[Stack]:
    stack = Stack(directory, database_url, extra_env=env)
    try:
        stack.redis.start()
        for index in range(workers):
            stack.start_worker(name=f"w{index + 1}")
        stack.start_api()
        yield stack
    finally:
        stack.stop()
