"""The stack under test and small client helpers shared by the benchmarks.

The stack is the end-to-end tests' (`tests/utils/stack.py`): real Redis on a
unix socket, real `celery -A worker worker` processes, the real uvicorn API,
all on one SQLite file. The benchmarks talk to it over HTTP on 127.0.0.1 only.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from tests.utils.stack import ServiceProcess, Stack, wait_for_api

T = TypeVar("T")
API = "/api/v1"
CHATTY_MB = 0.2
RETRY = {"max_attempts": 3, "on": ["worker_lost"], "delay_seconds": 1}


@dataclass(frozen=True)
class StackShape:
    workers: int
    concurrency: int


def start_stack(
    directory: Path, shape: StackShape, database_url: str | None = None, **env: str
) -> Stack:
    """Redis, `shape.workers` workers on the default queue and the API (SQLite unless
    `database_url` names another store)."""
    url = database_url or f"sqlite:///{directory / 'jobs.db'}"
    stack = Stack(directory, url, extra_env=env)
    try:
        stack.redis.start()
        for index in range(shape.workers):
            stack.start_worker(name=f"bench{index + 1}", concurrency=shape.concurrency)
        stack.start_api(timeout=180)  # a loaded machine starts several processes slowly
    except BaseException:
        stack.stop()
        raise
    return stack


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """The store's URL: a SQLite file in `directory`, or a throwaway PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'jobs.db'}"
        return
    from tests.utils.postgres import running_postgres

    with running_postgres() as server:
        yield server.create_database("bench")


@contextmanager
def running(
    directory: Path, shape: StackShape, database_url: str | None = None, **env: str
) -> Iterator[Stack]:
    stack = start_stack(directory, shape, database_url, **env)
    try:
        yield stack
    finally:
        stack.stop()


def start_api_process(stack: Stack, port: int, name: str, *, timeout: float = 60) -> ServiceProcess:
    """One more API process on the stack's store and broker, at 127.0.0.1:`port`, its
    output in `name`.log; several may serve one stack."""
    api = ServiceProcess(
        [sys.executable, "main.py"],
        stack.env(HOST="127.0.0.1", PORT=str(port)),
        stack.directory / f"{name}.log",
    )
    api.start()
    assert api.process is not None
    wait_for_api(f"http://127.0.0.1:{port}", api.process, api.log, timeout=timeout)
    return api


@dataclass(frozen=True)
class JobMix:
    """Shares of quick (`arithmetic`), `slow` (1-6 s) and `fail` jobs; the rest are
    `chatty`, printing `chatty_mb` MiB each."""

    quick: float = 0.5
    slow: float = 0.2
    fail: float = 0.1
    chatty_mb: float = CHATTY_MB


def job_mix(count: int, rng: random.Random, mix: JobMix | None = None) -> list[dict[str, Any]]:
    """`count` job bodies in `mix`'s shares (by default half quick, a fifth slow, a tenth
    failing, a fifth chatty), in random order; every other one with retries."""
    mix = mix or JobMix()
    bodies = []
    for index in range(count):
        roll = rng.random()
        if roll < mix.quick:
            body: dict[str, Any] = {"pipeline_name": "arithmetic"}
        elif roll < mix.quick + mix.slow:
            seconds = round(rng.uniform(1, 6), 1)
            body = {"pipeline_name": "slow", "parameters": {"slow": {"seconds": seconds}}}
        elif roll < mix.quick + mix.slow + mix.fail:
            body = {"pipeline_name": "fail"}
        else:
            body = {"pipeline_name": "chatty", "parameters": {"chatty": {"mb": mix.chatty_mb}}}
        if index % 2:
            body["retry"] = RETRY
        bodies.append(body)
    return bodies


def submit_with_key(
    http: httpx.Client,
    base: Callable[[int], str],
    body: dict[str, Any],
    key: str,
    *,
    first: int = 0,
    note: Callable[[bool], None] | None = None,
    deadline: float | None = None,
) -> str:
    """POST one job until an API accepts it, the same `Idempotency-Key` each time and the
    next API (`base(attempt)`, an `/api/v1` URL) after each failure; its id. `note` hears
    whether each request succeeded; past `deadline` (monotonic) it gives up."""
    attempt = first
    while True:
        try:
            response = http.post(
                f"{base(attempt)}/jobs", json=body, headers={"Idempotency-Key": key}
            )
        except httpx.HTTPError:
            accepted = False
        else:
            accepted = response.status_code in (200, 202)
        if note is not None:
            note(accepted)
        if accepted:
            job_id: str = response.json()["id"]
            return job_id
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no API accepted job {key}")
        attempt += 1
        time.sleep(0.2)


def keep_logs(directory: Path, destination: Path) -> None:
    """Keep the stack's API and worker logs beside the JSON (the stack's directory goes)."""
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    for log in directory.glob("*.log"):
        shutil.copy2(log, destination / log.name)


def client(stack: Stack, *, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.base_url}{API}", timeout=timeout)


def require_completed(job: dict[str, Any]) -> dict[str, Any]:
    if job["status"] != "completed":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error_message')}")
    return job


def timestamp(value: str) -> float:
    """Seconds since the epoch of an API time (ISO 8601 with an offset)."""
    return datetime.fromisoformat(value).timestamp()


def api_pid(stack: Stack) -> int:
    return _pid(stack.api)


def worker_pids(stack: Stack) -> list[int]:
    return [_pid(worker) for worker in stack.workers]


def _pid(service: ServiceProcess | None) -> int:
    if service is None or service.process is None:
        raise RuntimeError("the service is not running")
    return service.process.pid


def worker_side_processes(stack: Stack) -> list[psutil.Process]:
    """Every worker main process and its pool processes (not the runs they start)."""
    found = []
    for pid in worker_pids(stack):
        main = psutil.Process(pid)
        # Prefork pool processes are the main process's children; a run's process
        # guard and `kedro run` hang below a pool process.
        found += [main, *main.children(recursive=False)]
    return found
