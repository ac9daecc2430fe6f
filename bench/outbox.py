"""`GET /jobs/{id}` beside an outbox of pending deliveries to a dead receiver, in one run.

wrk sends `GET /api/v1/jobs/{id}` (the 100 newest completed jobs in turn, as in `get`)
twice: with no pending delivery, then with `plan.outbox_deliveries` (10,000) pending
to a receiver that accepts each connection and hangs up without answering, while the
API's webhook sender keeps trying them. The deliveries are `webhook.test` events
written in one transaction through the store (`enqueue_tests`, what `POST
/webhooks/{id}/test` writes one of), all due at once. The stack's backoff (1 s,
doubling to 2 s; `bench/__main__.py`) makes the sender fail an attempt and hold that
receiver back about once per pass, far more often than the default backoff would.
The subscription is deleted at the end, which drops its deliveries, so later
benchmarks meet an empty outbox.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.store import JobManager
from app.store.database import create_db_engine
from bench.harness import client
from bench.http_load import cpu_use, wrk
from bench.plan import Plan
from bench.report import Section
from tests.utils.stack import Stack, wait_until


class DeadReceiver:
    """A port on 127.0.0.1 that accepts connections and closes them unanswered; counts them."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            connection.close()
            self.connections += 1

    @contextmanager
    def running(self) -> Iterator[DeadReceiver]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stopped.set()
            self._thread.join(timeout=5)
            self._listener.close()


def fill(database_url: str, webhook_id: str, count: int) -> float:
    """Write `count` pending deliveries to one subscription; returns the seconds it took."""
    engine = create_db_engine(database_url)
    try:
        began = time.perf_counter()
        written = JobManager(engine, log_max_bytes=1024 * 1024).enqueue_tests(
            webhook_id=webhook_id, count=count
        )
        seconds = time.perf_counter() - began
    finally:
        engine.dispose()
    if len(written) != count:
        raise RuntimeError(f"asked for {count} deliveries, {len(written)} written")
    return seconds


def _load(stack: Stack, ids: list[str], plan: Plan) -> dict[str, Any]:
    """One wrk run of GET /jobs/{id}: its result, the API's CPU and the load average."""
    load = round(os.getloadavg()[0], 2)
    with cpu_use(stack) as cpu:
        result = wrk(
            stack.base_url,
            ["get", *ids],
            seconds=plan.load_seconds,
            connections=plan.load_connections,
        )
    seconds = result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    return {
        **result,
        "requests_per_s": 0.0 if errors else result["requests"] / seconds,
        "non_2xx_or_socket_errors": errors,
        "load_average_1min": load,
        "cpu": cpu,
    }


def _record(section: Section, count: int, empty: dict[str, Any], full: dict[str, Any]) -> None:
    """Each measure twice, side by side: without deliveries, then with `count` pending."""
    phases = [("empty", "0 pending deliveries", empty), ("full", f"{count:,} pending", full)]
    for key, label, measured in phases:
        load = measured["load_average_1min"]
        section.add(
            f"outbox_{key}_get_rps",
            f"GET /jobs/{{id}}, {label} (load {load:g})",
            measured["requests_per_s"],
            "req/s",
        )
    for percentile in ("p50", "p99"):
        for key, label, measured in phases:
            section.add(
                f"outbox_{key}_get_{percentile}_ms",
                f"  latency {percentile}, {label}",
                measured["latency_us"][percentile] / 1000,
                "ms",
            )
    for key, label, measured in phases:
        section.add(
            f"outbox_{key}_api_cores",
            f"  API CPU, {label}",
            measured["cpu"]["api_cores_busy"],
            "cores",
        )
    section.add(
        "outbox_get_ratio",
        "GET throughput, pending ÷ none",
        full["requests_per_s"] / max(empty["requests_per_s"], 1e-9),
        "x",
        (">=", 0.9),
    )
    section.add(
        "outbox_p99_ratio",
        "GET latency p99, pending ÷ none",
        full["latency_us"]["p99"] / max(empty["latency_us"]["p99"], 1),
        "x",
    )
    section.add(
        "outbox_sender_attempts",
        "sender's attempts on the dead receiver meanwhile",
        full["sender_attempts"],
        "",
    )
    section.details.update(empty=empty, full=full)


def outbox(stack: Stack, plan: Plan, section: Section, _profile: Path | None) -> None:
    """GET load with an empty outbox, then with a full one to a dead receiver."""
    with client(stack) as http:
        items = http.get("/jobs", params={"status": "completed", "limit": 100}).json()["items"]
        if http.get("/webhooks").json()["items"]:
            raise RuntimeError("a subscription exists already: the outbox may not be empty")
    if not items:
        raise RuntimeError("no completed job to GET; run a job-running benchmark first")
    ids = [job["id"] for job in items]
    count = plan.outbox_deliveries
    empty = _load(stack, ids, plan)  # no subscription, and no benchmark job has a notify
    with DeadReceiver().running() as dead, client(stack) as http:
        created = http.post("/webhooks", json={"url": dead.url, "events": ["job.failed"]})
        created.raise_for_status()
        hook = created.json()["id"]
        try:
            fill_seconds = fill(stack.database_url, hook, count)
            wait_until(
                lambda: dead.connections, timeout=60, interval=0.1, what="the sender's first try"
            )
            tried_before = dead.connections
            full = _load(stack, ids, plan)
            full["sender_attempts"] = dead.connections - tried_before
            listed = http.get(f"/webhooks/{hook}/deliveries", params={"limit": 100}).json()
            if any(delivery["status"] != "pending" for delivery in listed["items"]):
                raise RuntimeError("a delivery to the dead receiver left the outbox")
        finally:
            http.delete(f"/webhooks/{hook}").raise_for_status()
    _record(section, count, empty, full)
    section.add(
        "outbox_fill_s", f"fill {count:,} pending deliveries (one transaction)", fill_seconds, "s"
    )
    section.details.update(
        connections=plan.load_connections,
        seconds=plan.load_seconds,
        distinct_ids=len(ids),
        pending_deliveries=count,
    )
