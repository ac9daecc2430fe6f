"""`POST /jobs` and `GET /jobs/{id}` under 32 concurrent connections, driven by wrk.

POSTed jobs go to a queue no worker serves (`bench-sink`), so the load measures
the API (validation, the SQLite insert, the Redis publish), not kedro runs
competing for the same two cores. The API refuses a queue no worker has ever
served, so a worker serves `bench-sink` just long enough to report its project,
then stops.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from bench.harness import api_pid, client
from bench.plan import Plan
from bench.profiling import sampled
from bench.report import Section
from tests.utils.stack import Stack, submit, wait_until

LUA = Path(__file__).with_name("jobs.lua")
SINK_QUEUE = "bench-sink"
POST_BODY = {
    "pipeline_name": "arithmetic",
    "parameters": {"initial_value": 10},
    "queue": SINK_QUEUE,
}


def wrk(url: str, args: list[str], *, seconds: int, connections: int) -> dict[str, Any]:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (scripts/install-system-deps installs it)")
    argv = [binary, "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s"]
    argv += ["-s", str(LUA), url, "--", *args]
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next(
        (line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")), None
    )
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-500:]}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    return result


def _record(
    section: Section, key: str, label: str, result: dict[str, Any], floor: int, *, p99: int
) -> None:
    seconds = result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    rate = result["requests"] / seconds if not errors else 0.0
    latency = result["latency_us"]
    section.add(f"{key}_rps", f"{label} throughput", rate, "req/s", (">=", floor))
    section.add(f"{key}_p50_ms", f"{label} latency p50", latency["p50"] / 1000, "ms")
    section.add(f"{key}_p99_ms", f"{label} latency p99", latency["p99"] / 1000, "ms", ("<=", p99))
    section.details[key] = {
        **result,
        "requests_per_s": round(result["requests"] / seconds, 1),
        "non_2xx_or_socket_errors": errors,
    }


def get_load(stack: Stack, plan: Plan, section: Section, profile: Path | None) -> None:
    """GET one of the last 100 finished jobs, in turn, from 32 connections."""
    with client(stack) as http:
        items = http.get("/jobs", params={"status": "completed", "limit": 100}).json()["items"]
    if not items:
        raise RuntimeError("no completed job to GET; run a job-running benchmark first")
    ids = [job["id"] for job in items]
    with sampled(api_pid(stack), profile, "api-get", gil=True) as spy, cpu_use(stack) as cpu:
        result = wrk(
            stack.base_url,
            ["get", *ids],
            seconds=plan.load_seconds,
            connections=plan.load_connections,
        )
    _record(section, "get", "GET /jobs/{id}", result, 3000, p99=50)
    section.details.update(
        connections=plan.load_connections,
        seconds=plan.load_seconds,
        distinct_ids=len(ids),
        cpu=cpu,
        profile=spy,
    )


def post_load(stack: Stack, plan: Plan, section: Section, profile: Path | None) -> None:
    """POST jobs to a queue no worker serves, from 32 connections; count what was recorded."""
    open_sink_queue(stack)
    with client(stack) as http:
        submit(http, **POST_BODY)  # one by hand first: a refusal shows its reason here
    before = _pending_in_sink(stack)
    with sampled(api_pid(stack), profile, "api-post", gil=True) as spy, cpu_use(stack) as cpu:
        result = wrk(
            stack.base_url,
            ["post", json.dumps(POST_BODY)],
            seconds=plan.load_seconds,
            connections=plan.load_connections,
        )
    _record(section, "post", "POST /jobs", result, 1000, p99=100)
    recorded = _pending_in_sink(stack) - before
    section.details.update(
        connections=plan.load_connections,
        seconds=plan.load_seconds,
        queue=SINK_QUEUE,
        jobs_recorded=recorded,
        cpu=cpu,
        profile=spy,
    )
    if recorded < result["requests"]:
        raise RuntimeError(f"wrk got {result['requests']} answers but {recorded} jobs exist")


@contextlib.contextmanager
def cpu_use(stack: Stack) -> Iterator[dict[str, float]]:
    """CPU seconds per wall second of the API process, and of the whole machine, in the block."""
    found: dict[str, float] = {}
    api = psutil.Process(api_pid(stack))
    processes = [api, *api.children(recursive=True)]  # API_WORKERS > 1: uvicorn's workers
    before, machine_before, began = _cpu(processes), psutil.cpu_times(), time.perf_counter()
    yield found
    after, machine_after = _cpu(processes), psutil.cpu_times()
    wall = time.perf_counter() - began
    busy = sum(machine_after) - machine_after.idle - (sum(machine_before) - machine_before.idle)
    found.update(
        api_cores_busy=round((after - before) / wall, 2),
        machine_cores_busy=round(busy / wall, 2),
        machine_cores=float(psutil.cpu_count() or 0),
    )


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def open_sink_queue(stack: Stack) -> None:
    """Have a worker serve the sink queue until it has reported its project, then stop it."""
    with client(stack) as http:
        known = http.get("/pipelines", params={"queue": SINK_QUEUE})
        if known.is_success and known.json().get("refreshed_at"):
            return  # reported already (an earlier benchmark opened it)
    worker = stack.start_worker(name="sink", queues=SINK_QUEUE, concurrency=1)
    try:
        with client(stack) as http:

            def reported() -> bool | None:
                response = http.get("/pipelines", params={"queue": SINK_QUEUE})
                if response.status_code == 404:  # an API without a pipeline registry
                    return True
                return True if response.json().get("refreshed_at") else None

            wait_until(
                reported, timeout=60, interval=0.1, what=f"a worker of {SINK_QUEUE} to report"
            )
    finally:
        worker.kill(signal.SIGTERM)
        stack.workers.remove(worker)


def _pending_in_sink(stack: Stack) -> int:
    """Pending jobs on the sink queue, counted page by page through the API."""
    count = 0
    cursor: str | None = None
    with client(stack) as http:
        while True:
            params: dict[str, Any] = {"status": "pending", "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/jobs", params=params).json()
            count += sum(1 for job in page["items"] if job["queue"] == SINK_QUEUE)
            cursor = page["next_cursor"]
            if not cursor:
                return count
