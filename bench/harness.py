"""The stack under test and small client helpers shared by the benchmarks.

The stack is the end-to-end tests' (`tests/utils/stack.py`): real Redis on a
unix socket, real `celery -A worker worker` processes, the real uvicorn API,
all on one SQLite file. The benchmarks talk to it over HTTP on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from tests.utils.stack import ServiceProcess, Stack

T = TypeVar("T")
API = "/api/v1"


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
