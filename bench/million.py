"""The store at a million jobs: fill it, then time metrics, filtered listings, idle CPU,
and `GET /jobs/{id}` while the whole history is purged.

The fill writes finished jobs straight into the stack's database (in batches of
10,000 rows, through the same tables, indexes and triggers the API uses; no
output or events, which no measured path reads), spread over 5 pipelines, 10
users, 3 terminal statuses and a year of `created_at`. Then, through the API:
`GET /metrics` and `GET /jobs` with each filter the API takes (status, pipeline,
both); through the store, the same with a user's visibility (what an API key
holder's listing runs); and the API's CPU while idle. Run it last: every later
request meets the big store.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import insert

from app.schemas.jobs import JobStatus
from app.store import JobManager, Visibility
from app.store.database import create_db_engine
from app.store.tables import jobs
from bench.harness import api_pid, client
from bench.http_load import POST_BODY, open_sink_queue, wrk
from bench.plan import Plan
from bench.report import Section
from tests.utils.stack import Stack, submit

PIPELINES = ["arithmetic", "etl", "train", "score", "report"]
USERS = [f"user{i}" for i in range(10)]
STATUSES = ["completed", "completed", "completed", "failed", "cancelled"]
BATCH = 10_000


def _rows(count: int, start: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for index in range(start, start + count):
        created = now - timedelta(seconds=random.uniform(60, 365 * 86400))
        seconds = random.uniform(0.2, 120)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "pipeline_name": PIPELINES[index % len(PIPELINES)],
                "parameters": {"initial_value": index},
                "options": {},
                "queue": "default",
                "status": STATUSES[index % len(STATUSES)],
                "user_id": USERS[index % len(USERS)],
                "created_at": created,
                "started_at": created,
                "completed_at": created + timedelta(seconds=seconds),
                "execution_time": seconds,
                "completed_nodes": [],
                "attempt": 1,
                "cancel_requested": False,
                "output_bytes": 0,
                "output_dropped_bytes": 0,
                "dispatch_count": 1,
            }
        )
    return rows


def fill(database_url: str, count: int) -> float:
    """Insert `count` finished jobs; returns the seconds it took."""
    engine = create_db_engine(database_url)
    began = time.perf_counter()
    try:
        for start in range(0, count, BATCH):
            rows = _rows(min(BATCH, count - start), start)
            with engine.connect() as connection:
                connection = connection.execution_options(write=True)
                with connection.begin():
                    connection.execute(insert(jobs), rows)
    finally:
        engine.dispose()
    return time.perf_counter() - began


def _timed(call: Any, repeat: int = 5) -> tuple[float, float]:
    """Median and worst milliseconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), max(times)


def million(stack: Stack, plan: Plan, section: Section, _profile: Path | None) -> None:
    count = plan.million_jobs
    seconds = fill(stack.database_url, count)
    section.add("million_fill_s", f"fill {count:,} finished jobs", seconds, "s")
    with client(stack, timeout=120) as http:

        def metrics() -> None:
            assert http.get(f"{stack.base_url}/metrics").is_success

        median, worst = _timed(metrics)
        section.add("million_metrics_ms", "GET /metrics (median of 5)", median, "ms", ("<=", 100))
        section.details["metrics_worst_ms"] = worst
        api_worst = 0.0
        for filters in (
            {"status": "failed"},
            {"pipeline_name": "train"},
            {"status": "cancelled", "pipeline_name": "etl"},
            {},
        ):

            def listing(filters: dict[str, str] = filters) -> None:
                assert http.get("/jobs", params={**filters, "limit": 20}).is_success

            median, worst = _timed(listing)
            section.details[f"list {json.dumps(filters)}"] = {
                "median_ms": median,
                "worst_ms": worst,
            }
            api_worst = max(api_worst, median)
    section.add(
        "million_list_ms", "GET /jobs, slowest filter (median of 5)", api_worst, "ms", ("<=", 20)
    )
    engine = create_db_engine(stack.database_url)
    manager = JobManager(engine, log_max_bytes=1024 * 1024)
    store_worst = 0.0
    try:
        user = Visibility(user_id="user3", sees_all=False)
        user_filters: tuple[dict[str, Any], ...] = (
            {},
            {"status": JobStatus.failed},
            {"pipeline_name": "score"},
            {"status": JobStatus.completed, "pipeline_name": "report"},
        )
        for user_filter in user_filters:

            def by_user(chosen: dict[str, Any] = user_filter) -> None:
                manager.list_jobs(visibility=user, limit=20, **chosen)

            median, worst = _timed(by_user)
            section.details[f"store list user3 {user_filter}"] = {
                "median_ms": median,
                "worst_ms": worst,
            }
            store_worst = max(store_worst, median)
    finally:
        engine.dispose()
    section.add(
        "million_user_list_ms",
        "listing as one user, slowest filter (store)",
        store_worst,
        "ms",
        ("<=", 20),
    )
    api = psutil.Process(api_pid(stack))
    processes = [api, *api.children(recursive=True)]
    before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    began = time.perf_counter()
    time.sleep(plan.idle_seconds)
    after = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    section.add(
        "million_idle_cores",
        "API CPU while idle at this size",
        (after - before) / (time.perf_counter() - began),
        "cores",
    )
    _purge_under_load(stack, plan, section)


def _purge_under_load(stack: Stack, plan: Plan, section: Section) -> None:
    """`GET /jobs/{id}` from 32 connections, then again while the store purges the filled
    jobs.

    The purge is the retention pass's own store call (`purge_finished`, batches of 500),
    run from this process back to back for as long as the load lasts: the maintenance
    pass does one batch per pass, so this is the harshest pace it can take. The jobs
    read are pending jobs of the sink queue, which no purge touches."""
    open_sink_queue(stack)
    with client(stack) as http:
        ids = [submit(http, **POST_BODY)["id"] for _ in range(20)]
    quiet = wrk(stack.base_url, ["get", *ids], seconds=plan.load_seconds, connections=32)
    section.add(
        "million_get_p99_ms",
        "GET /jobs/{id} p99 before the purge",
        quiet["latency_us"]["p99"] / 1000,
        "ms",
    )
    engine = create_db_engine(stack.database_url)
    manager = JobManager(engine, log_max_bytes=1024 * 1024)
    cutoff = datetime.now(UTC) + timedelta(minutes=5)  # every finished job is expired
    stop = threading.Event()
    purged = [0]
    ended = [0.0]

    def purge() -> None:
        while not stop.is_set():
            batch = manager.purge_finished(completed_before=cutoff)
            purged[0] += batch
            if not batch:
                break
        ended[0] = time.perf_counter()

    purger = threading.Thread(target=purge)
    began = time.perf_counter()
    purger.start()
    try:
        result = wrk(stack.base_url, ["get", *ids], seconds=plan.load_seconds, connections=32)
    finally:
        stop.set()
        purger.join()
        engine.dispose()
    seconds = ended[0] - began
    latency = result["latency_us"]
    errors = sum(result["errors"].values())
    if errors:
        raise RuntimeError(f"{errors} GETs failed while the purge ran")
    section.add(
        "million_purge_jobs_per_s",
        "jobs purged per second under the GET load",
        purged[0] / seconds,
        "jobs/s",
    )
    section.add(
        "million_purge_get_p99_ms",
        "GET /jobs/{id} p99 while the purge runs",
        latency["p99"] / 1000,
        "ms",
        ("<=", 50),
    )
    section.details["purge"] = {**result, "purged": purged[0], "seconds": seconds}
    section.details["before_purge"] = quiet
