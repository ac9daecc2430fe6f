"""The gateway beside its peers, in one run: a naive gateway and a bare FastAPI ceiling.

Each peer runs as one uvicorn process (uvloop, httptools, like the gateway) on
127.0.0.1, with uvicorn's default logging (an access-log line per request, as the
gateway writes), gets the same wrk load (32 connections) right after the gateway, and
each number is reported with the 1-minute load average when its run started (on
a shared 2-core machine the load moves the numbers more than anything else).
The naive gateway (`bench/peers/naive.py`) starts no run (`NAIVE_RUN=0`), as the
gateway's POST load goes to a queue nobody serves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.harness import client
from bench.http_load import POST_BODY, open_sink_queue, wrk
from bench.plan import Plan
from bench.report import Section
from tests.utils.stack import Stack, free_port, scrubbed_env, wait_until


@contextmanager
def peer(module: str, directory: Path, **env: str) -> Iterator[str]:
    """Serve `bench.peers.<module>:app` with uvicorn; yields its base URL."""
    port = free_port()
    log = (directory / f"peer-{module}.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench.peers.{module}:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=scrubbed_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, f"peer {module} died"
        try:
            httpx.get(f"{url}/docs", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    try:
        wait_until(up, timeout=30, what=f"peer {module}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _measure(
    section: Section, key: str, label: str, url: str, args: list[str], plan: Plan
) -> float:
    load = _load()
    result = wrk(url, args, seconds=plan.load_seconds, connections=plan.load_connections)
    seconds = result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    rate = result["requests"] / seconds if not errors else 0.0
    p99 = result["latency_us"]["p99"] / 1000
    section.add(f"{key}_rps", f"{label} (load {load:g})", rate, "req/s")
    section.add(f"{key}_p99_ms", f"{label} latency p99", p99, "ms")
    section.details[key] = {**result, "load_average_1min": load}
    return rate


def side_by_side(stack: Stack, plan: Plan, section: Section, _profile: Path | None) -> None:
    """GET and POST on the gateway, the naive gateway and the bare ceiling, in turn."""
    with client(stack) as http:
        items = http.get("/jobs", params={"limit": 100}).json()["items"]
    ids = [job["id"] for job in items]
    if not ids:
        raise RuntimeError("no job to GET; run a job-running benchmark first")
    directory = Path(stack.directory)
    open_sink_queue(stack)
    body = json.dumps(POST_BODY)
    ours_get = _measure(
        section, "ours_get", "gateway GET /jobs/{id}", stack.base_url, ["get", *ids], plan
    )
    ours_post = _measure(
        section, "ours_post", "gateway POST /jobs", stack.base_url, ["post", body], plan
    )
    with peer("naive", directory, NAIVE_DB=str(directory / "naive.db"), NAIVE_RUN="0") as url:
        naive_ids: list[Any] = [
            httpx.post(f"{url}/api/v1/jobs", json=POST_BODY).json()["id"] for _ in range(100)
        ]
        naive_get = _measure(
            section, "naive_get", "naive GET /jobs/{id}", url, ["get", *naive_ids], plan
        )
        naive_post = _measure(section, "naive_post", "naive POST /jobs", url, ["post", body], plan)
    with peer("bare", directory) as url:
        _measure(section, "bare_get", "bare FastAPI GET (ceiling)", url, ["get", *ids], plan)
    section.add(
        "get_vs_naive", "gateway GET ÷ naive GET", ours_get / max(naive_get, 1e-9), "x", (">=", 3)
    )
    section.add(
        "post_vs_naive",
        "gateway POST ÷ naive POST",
        ours_post / max(naive_post, 1e-9),
        "x",
        (">=", 3),
    )
