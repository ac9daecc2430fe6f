"""Dispatch latency, completion visibility and the end-to-end ratio to a direct `kedro run`.

Wall clocks are comparable across processes here: the client, the worker and
the kedro run share one machine and one clock. `results.process_started_at`
and `results.process_exited_at` are the worker's wall clock at the kedro
process's start and exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.core.config import EXAMPLE_PROJECT, Settings
from app.runner.command import kedro_environment
from bench.harness import (
    API,
    client,
    require_completed,
    timestamp,
)
from bench.plan import Plan
from bench.report import Section, median, percentile, summary
from tests.utils.stack import TERMINAL, Stack, submit, wait_for_status

ARITHMETIC: dict[str, Any] = {"pipeline_name": "arithmetic", "parameters": {"initial_value": 10}}
JOB_TIMEOUT = 120.0


def dispatch(stack: Stack, plan: Plan, section: Section) -> None:
    """POST answered → kedro process started, over sequential jobs on an idle stack."""
    to_start: list[float] = []
    to_claim: list[float] = []
    created_to_start: list[float] = []
    post: list[float] = []
    with client(stack) as http:
        for index in range(plan.warmup_jobs + plan.dispatch_jobs):
            sent = time.time()
            job = submit(http, **ARITHMETIC)
            answered = time.time()
            # Waiting loosely keeps the stack idle: this benchmark is about dispatch.
            done = require_completed(
                wait_for_status(http, job["id"], timeout=JOB_TIMEOUT, interval=0.05)
            )
            if index < plan.warmup_jobs:
                continue
            started = timestamp(done["results"]["process_started_at"])
            post.append((answered - sent) * 1000)
            to_start.append((started - answered) * 1000)
            to_claim.append((timestamp(done["started_at"]) - answered) * 1000)
            created_to_start.append((started - timestamp(done["created_at"])) * 1000)
    section.add(
        "dispatch_p50_ms", "dispatch latency p50", percentile(to_start, 50), "ms", ("<=", 20)
    )
    section.add(
        "dispatch_p99_ms", "dispatch latency p99", percentile(to_start, 99), "ms", ("<=", 100)
    )
    section.details.update(
        jobs=len(to_start),
        post_answered_to_process_started_ms=summary(to_start),
        post_answered_to_claimed_ms=summary(to_claim),
        claimed_to_process_started_ms=summary(
            [start - claim for start, claim in zip(to_start, to_claim, strict=True)]
        ),
        created_at_to_process_started_ms=summary(created_to_start),
        post_round_trip_ms=summary(post),
        samples_ms=[round(value, 2) for value in to_start],
    )


class TerminalWatcher(threading.Thread):
    """Reads one job from its own connection until a GET shows it terminal: every
    `interval` seconds, or with `interval` None as one long poll (`GET ?wait=`) after
    another, which the API answers when the job's end is announced."""

    def __init__(
        self, base_url: str, job_id: str, *, interval: float | None, timeout: float
    ) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.job_id = job_id
        self.interval = interval
        self.timeout = timeout
        self.job: dict[str, Any] | None = None
        self.seen_at = 0.0
        self.seen_perf = 0.0
        self.polls = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            query = {"wait": LONG_POLL_SECONDS} if self.interval is None else {}
            with httpx.Client(base_url=self.base_url, timeout=LONG_POLL_SECONDS + 10) as http:
                deadline = time.monotonic() + self.timeout
                while time.monotonic() < deadline:
                    job = http.get(f"/jobs/{self.job_id}", params=query).json()
                    self.polls += 1
                    if job["status"] in TERMINAL:
                        self.seen_perf, self.seen_at = time.perf_counter(), time.time()
                        self.job = job
                        return
                    if self.interval is not None:
                        time.sleep(self.interval)
                raise TimeoutError(f"job {self.job_id} not terminal after {self.timeout:g} s")
        except BaseException as exc:
            self.error = exc

    def result(self) -> dict[str, Any]:
        self.join(self.timeout + 30)
        if self.error is not None:
            raise self.error
        if self.job is None:
            raise TimeoutError(f"watcher of job {self.job_id} did not finish")
        return require_completed(self.job)


@dataclass
class ApiRun:
    wall: float
    answered: float
    watcher: TerminalWatcher

    @property
    def job(self) -> dict[str, Any]:
        return self.watcher.result()

    def visibility_ms(self) -> float:
        return (self.watcher.seen_at - timestamp(self.job["results"]["process_exited_at"])) * 1000

    def dispatch_ms(self) -> float:
        return (timestamp(self.job["results"]["process_started_at"]) - self.answered) * 1000

    def execution_s(self) -> float:
        results = self.job["results"]
        return timestamp(results["process_exited_at"]) - timestamp(results["process_started_at"])


# Each round runs all three, in an order that rotates so none always goes first.
ORDERS = (
    ("direct", "tight", "waiting"),
    ("waiting", "direct", "tight"),
    ("tight", "waiting", "direct"),
)
LONG_POLL_SECONDS = 60


def visibility_and_ratio(stack: Stack, plan: Plan, section: Section) -> None:
    """Alternate direct `kedro run`s with API runs of the same job, waited for two ways.

    `tight` polls every `poll_interval` from the POST on: its first terminal GET
    gives completion visibility. `waiting` long-polls (`GET ?wait=`) from the POST
    on, as a caller that waits for its job should: its wall is the end-to-end
    figure, with no polling load of the client's own on the two cores.
    """
    direct: list[float] = []
    runs: dict[str, list[ApiRun]] = {"tight": [], "waiting": []}
    with tempfile.TemporaryDirectory(prefix="bench-direct-") as tmp, client(stack) as http:
        config = Path(tmp) / "run-config.json"
        config.write_text(json.dumps({"run": {"params": ARITHMETIC["parameters"]}}))
        argv = direct_argv("arithmetic", config)
        env = direct_env(stack)
        for _ in range(plan.warmup_jobs):
            run_direct(argv, env)
            api_run(stack, http, interval=None)
        for index in range(plan.visibility_rounds):
            for kind in ORDERS[index % len(ORDERS)]:
                if kind == "direct":
                    direct.append(run_direct(argv, env)[0])
                    continue
                interval = plan.poll_interval if kind == "tight" else None
                runs[kind].append(api_run(stack, http, interval=interval))
    tight, waiting = runs["tight"], runs["waiting"]
    tight_walls = [run.wall for run in tight]
    waiting_walls = [run.wall for run in waiting]
    visible = [run.visibility_ms() for run in tight]
    section.add(
        "visibility_p50_ms", "completion visibility p50", percentile(visible, 50), "ms", ("<=", 50)
    )
    section.add("visibility_p99_ms", "completion visibility p99", percentile(visible, 99), "ms")
    section.add(
        "e2e_ratio",
        "end-to-end wall ÷ direct kedro run",
        median(waiting_walls) / median(direct),
        "x",
        ("<=", 1.10),
    )
    section.add(
        "e2e_api_wall_s", "  arithmetic via API, long poll (median)", median(waiting_walls), "s"
    )
    section.add("e2e_direct_wall_s", "  arithmetic direct (median)", median(direct), "s")
    section.add(
        "e2e_ratio_tight_polling",
        "  ratio, client polling every 5 ms throughout",
        median(tight_walls) / median(direct),
        "x",
    )
    section.details.update(
        rounds=plan.visibility_rounds,
        poll_interval_ms=plan.poll_interval * 1000,
        waiting_client=f"GET ?wait={LONG_POLL_SECONDS} from the POST on, until terminal",
        process_exited_to_terminal_get_ms=summary(visible),
        process_exited_to_long_poll_answer_ms=summary([run.visibility_ms() for run in waiting]),
        direct_wall_s=summary(direct, digits=3),
        api_wall_long_poll_s=summary(waiting_walls, digits=3),
        api_wall_tight_polling_s=summary(tight_walls, digits=3),
        gateway_overhead_ms=round((median(waiting_walls) - median(direct)) * 1000, 1),
        process_execution_s_long_poll=summary([run.execution_s() for run in waiting], digits=3),
        process_execution_s_tight=summary([run.execution_s() for run in tight], digits=3),
        post_answered_to_process_started_ms=summary([run.dispatch_ms() for run in tight + waiting]),
        polls_per_job_tight=summary([float(run.watcher.polls) for run in tight], digits=0),
        visibility_samples_ms=[round(value, 2) for value in visible],
    )


def api_run(stack: Stack, http: httpx.Client, *, interval: float | None) -> ApiRun:
    """Submit the job and watch it to its end (polling every `interval`, or long-polling)."""
    sent = time.perf_counter()
    job = submit(http, **ARITHMETIC)
    answered = time.time()
    watcher = TerminalWatcher(
        f"{stack.base_url}{API}", job["id"], interval=interval, timeout=JOB_TIMEOUT
    )
    watcher.start()
    watcher.result()
    return ApiRun(wall=watcher.seen_perf - sent, answered=answered, watcher=watcher)


def direct_argv(pipeline: str, config: Path) -> list[str]:
    """The runner's own `kedro run` command line, without the gateway around it."""
    return [
        sys.executable,
        "-m",
        "kedro",
        "run",
        "--pipelines",
        pipeline,
        "--config",
        str(config),
    ]


def direct_env(stack: Stack) -> dict[str, str]:
    """The environment the runner gives `kedro run`, built from a worker's environment."""
    return kedro_environment(Settings.model_construct(kedro_env_passthrough=[]), stack.env())


def run_direct(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run kedro directly, draining its output as the runner would; (wall s, output bytes)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=EXAMPLE_PROJECT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    size = 0
    while chunk := os.read(process.stdout.fileno(), 64 * 1024):
        size += len(chunk)
    returncode = process.wait()
    wall = time.perf_counter() - started
    process.stdout.close()
    if returncode != 0:
        raise RuntimeError(f"direct kedro run exited {returncode}: {argv}")
    return wall, size
