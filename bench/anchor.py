"""Kedro's own `kedro server` beside the gateway, on the same pipelines, in one run.

`kedro server start` is started from the project's environment (the interpreter and
the environment the runner gives `kedro run`, so the same logging config), on a
free port. Each round, in an order that alternates, sends the same job once to
each: `POST /run` to Kedro's server (its answer arrives when the pipeline has
run), and `POST /jobs` to the gateway, followed by one `GET /jobs/{id}?wait=`
(the long poll: the API answers when the job's end is announced, so the client
neither polls nor takes CPU from the run). Both are timed by the client from
sending the POST to reading the answer that shows the end: the client-side view of
"how long did my run take".
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.core.config import EXAMPLE_PROJECT
from bench.harness import client, require_completed, timestamp
from bench.latency import direct_env
from bench.plan import Plan
from bench.report import Section, median, summary
from tests.utils.stack import TERMINAL, Stack, free_port, submit, wait_until

PIPELINES = {"arithmetic": 3, "chain": 20}
PARAMETERS = {"initial_value": 10}
WAIT_SECONDS = 30
JOB_TIMEOUT = 60.0


@contextmanager
def kedro_server(stack: Stack, log: Path) -> Iterator[str]:
    """`kedro server start` of the example project; yields its base URL."""
    port = free_port()
    kedro = [sys.executable, "-m", "kedro"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*kedro, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=EXAMPLE_PROJECT,
            env=direct_env(stack),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"kedro server exited {process.returncode}: see {log}")
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, what="kedro server to answer")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_run(http: httpx.Client, pipeline: str) -> float:
    sent = time.perf_counter()
    answer = http.post("/run", json={"pipeline_names": [pipeline], "params": PARAMETERS})
    wall = time.perf_counter() - sent
    body = answer.json()
    if answer.status_code != 200 or body.get("status") != "success":
        raise RuntimeError(f"kedro server run of {pipeline} failed: {body}")
    return wall


def gateway_run(http: httpx.Client, pipeline: str) -> tuple[float, dict[str, Any]]:
    """The wall time from POST to the answer showing the end, and the job with the
    client's clock readings at both (`sent_at`, `answered_at`) beside its own times."""
    sent, sent_at = time.perf_counter(), time.time()
    job = submit(http, pipeline_name=pipeline, parameters=PARAMETERS)
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        seen = http.get(f"/jobs/{job['id']}", params={"wait": WAIT_SECONDS}).json()
        if seen["status"] in TERMINAL:
            wall, answered_at = time.perf_counter() - sent, time.time()
            return wall, {**require_completed(seen), "sent_at": sent_at, "answered_at": answered_at}
    raise TimeoutError(f"job {job['id']} not terminal after {JOB_TIMEOUT:g} s")


STEPS = {  # (from, to): the client's clock and the stack's are the machine's one clock
    "post_sent_to_created_at": ("sent_at", "created_at"),
    "created_to_process_started": ("created_at", "process_started_at"),
    "process_run": ("process_started_at", "process_exited_at"),
    "process_exited_to_completed_at": ("process_exited_at", "completed_at"),
    "completed_at_to_answer_read": ("completed_at", "answered_at"),
}


def steps(jobs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Where a gateway run's time went, from the client's and the job's own times."""

    def seconds(job: dict[str, Any], name: str) -> float:
        value = job.get(name, job["results"].get(name))
        return value if isinstance(value, float) else timestamp(value)

    return {
        step: summary([(seconds(job, end) - seconds(job, start)) * 1000 for job in jobs])
        for step, (start, end) in STEPS.items()
    }


def anchor(stack: Stack, plan: Plan, section: Section, log_dir: Path) -> None:
    """Alternate `kedro server` and gateway runs of each pipeline; compare the medians."""
    rounds = plan.anchor_rounds
    with (
        kedro_server(stack, log_dir / "kedro-server.log") as url,
        httpx.Client(base_url=url, timeout=JOB_TIMEOUT) as server,
        client(stack) as gateway,
    ):
        for pipeline, nodes in PIPELINES.items():
            walls: dict[str, list[float]] = {"server": [], "gateway": []}
            runners: list[str] = []
            jobs: list[dict[str, Any]] = []
            warmup = plan.warmup_jobs + plan.shape.workers  # every worker warmed first
            for index in range(warmup + rounds):
                order = ("server", "gateway") if index % 2 else ("gateway", "server")
                for kind in order:
                    if kind == "server":
                        wall = server_run(server, pipeline)
                    else:
                        wall, job = gateway_run(gateway, pipeline)
                        runners.append(str(job["results"].get("runner")))
                    if index >= warmup:
                        walls[kind].append(wall)
                        if kind == "gateway":
                            jobs.append(job)
            server_ms = median(walls["server"]) * 1000
            gateway_ms = median(walls["gateway"]) * 1000
            section.add(
                f"anchor_{pipeline}_kedro_server_ms",
                f"{pipeline} ({nodes} nodes): kedro server, POST /run answered (median)",
                server_ms,
                "ms",
            )
            section.add(
                f"anchor_{pipeline}_gateway_ms",
                f"{pipeline} ({nodes} nodes): gateway, POST → GET ?wait= answered (median)",
                gateway_ms,
                "ms",
                ("<=", round(server_ms, 1)),
            )
            section.details[pipeline] = {
                "rounds": rounds,
                "kedro_server_ms": summary([w * 1000 for w in walls["server"]]),
                "gateway_ms": summary([w * 1000 for w in walls["gateway"]]),
                "gateway_runner": sorted(set(runners)),
                "gateway_steps_ms": steps(jobs),
            }
    section.details.update(
        gateway_client=f"POST /jobs, then GET /jobs/{{id}}?wait={WAIT_SECONDS} until terminal",
        kedro_server="`python -m kedro server start` in the example project, same environment",
    )
