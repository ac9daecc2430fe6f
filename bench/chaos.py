"""Chaos run: many jobs while workers, APIs, Redis and PostgreSQL fail around them.

`python -m bench.chaos [--jobs N] [--seed S] [--output FILE]` starts a throwaway
PostgreSQL, Redis, three workers and two API processes (tests/utils), submits a mix
of quick, slow, failing and chatty jobs from client threads through both APIs, and
meanwhile, every few seconds at random, SIGKILLs and restarts a worker, SIGKILLs
and restarts an API, restarts Redis (losing its queue), or restarts PostgreSQL
(fast or immediate shutdown). Then it waits for every job to end and checks:

- none stuck: every job terminal within `--settle` seconds after the chaos stops;
- none lost or doubled: every submit the clients were told of is one job;
- none run twice in one attempt: in each attempt's part of its log, each node ran once;
- no output lost: a completed job's log holds all its output, once.

It prints (and writes as JSON) jobs submitted, completed and failed by reason, and the
API's error rate during each kind of fault. Exit status 1 if an invariant fails. The
default (`--jobs 600`) takes a few minutes on two cores; the full-size run is `--jobs 2000`.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import CHATTY_MB, job_mix, start_api_process, submit_with_key
from tests.utils.postgres import PostgresServer, running_postgres
from tests.utils.stack import ServiceProcess, Stack, free_port

WORKERS = 3
CONCURRENCY = 2
APIS = 2
ENV = {
    "WORKER_LOST_AFTER_SECONDS": "15",
    "WORKER_STOP_GRACE_SECONDS": "5",
    "REDISPATCH_AFTER_SECONDS": "2",
    "MAINTENANCE_INTERVAL_SECONDS": "1",
    "RUNNER_MODE": "warm",
}
CHATTY_LINES = int(CHATTY_MB * 1024 * 1024) // 100
NODES = {
    "arithmetic": ["add_five", "multiply_by_two", "subtract_ten"],
    "slow": ["sleep_with_progress"],
    "fail": ["boom"],
    "chatty": ["chatty"],
}
SEPARATOR = re.compile(r"^===== kedro-gateway: attempt (\d+) of \d+ .*=====$", re.MULTILINE)
RUNNING_NODE = re.compile(r"Running node: (\w+)")
FAULTS = ("worker", "api", "redis", "postgres")


@dataclass
class Request:
    at: float
    kind: str  # "submit" or "read"
    ok: bool


@dataclass
class Fault:
    kind: str
    start: float
    end: float = 0.0


@dataclass
class Chaos:
    """The stack and what happened to it."""

    stack: Stack
    postgres: PostgresServer
    apis: list[ServiceProcess | None] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, ok: bool) -> None:
        with self.lock:
            self.requests.append(Request(time.monotonic(), kind, ok))

    def start_api(self, index: int) -> None:
        self.apis[index] = start_api_process(self.stack, self.ports[index], f"api-{index}")

    def base(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}/api/v1"


def submit_all(
    chaos: Chaos, bodies: list[dict[str, Any]], clients: int, ids: dict[str, str]
) -> None:
    """Submit every body, retrying each (same idempotency key) until an API accepts it;
    `ids` gets each one's job id as it is accepted."""
    queue: Iterator[int] = iter(range(len(bodies)))
    take = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(timeout=10) as http:
            while True:
                with take:
                    index = next(queue, None)
                if index is None:
                    return
                key = f"chaos-{index}"
                job_id = submit_with_key(
                    http,
                    chaos.base,
                    bodies[index],
                    key,
                    first=number,
                    note=lambda ok: chaos.note("submit", ok),
                )
                with take:
                    ids[key] = job_id

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def read_meanwhile(chaos: Chaos, ids: dict[str, str], stop: threading.Event) -> None:
    """Read jobs through both APIs, to measure reads' error rate during faults."""
    with httpx.Client(timeout=10) as http:
        for turn in itertools.count():
            if stop.wait(0.05):
                return
            known = list(ids.values())
            if not known:
                continue
            try:
                ok = http.get(f"{chaos.base(turn)}/jobs/{random.choice(known)}").status_code == 200
            except httpx.HTTPError:
                ok = False
            chaos.note("read", ok)


def inflict(
    chaos: Chaos,
    rng: random.Random,
    stop: threading.Event,
    every: float,
    done: threading.Event,
    release: threading.Event,
) -> None:
    """One fault at a time, at random times, until stopped; every kind once per round of
    four, in a random order. Then sets `done` and lives on until `release`: PostgreSQL,
    restarted from this thread, gets its parent-death signal when this thread ends."""
    try:
        _inflict_until(chaos, rng, stop, every)
    finally:
        done.set()
        release.wait()


def _inflict_until(chaos: Chaos, rng: random.Random, stop: threading.Event, every: float) -> None:
    kinds: list[str] = []
    while not stop.wait(rng.uniform(every / 2, every * 1.5)):
        if not kinds:
            kinds = rng.sample(FAULTS, len(FAULTS))
        kind = kinds.pop()
        fault = Fault(kind, time.monotonic())
        try:
            _inflict(chaos, rng, kind)
        except Exception as exc:  # report it and go on: the next fault may repair it
            print(f"  {kind} fault: could not restart: {exc!r}", flush=True)
        fault.end = time.monotonic()
        chaos.faults.append(fault)
        print(f"  {kind} fault for {fault.end - fault.start:.1f} s", flush=True)


def _inflict(chaos: Chaos, rng: random.Random, kind: str) -> None:
    if kind == "worker":
        index = rng.randrange(len(chaos.stack.workers))
        worker = chaos.stack.workers.pop(index)
        worker.kill(signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3))
        chaos.stack.start_worker(name=f"w{index + 1}", concurrency=CONCURRENCY)
        chaos.stack.workers.insert(index, chaos.stack.workers.pop())
    elif kind == "api":
        index = rng.randrange(APIS)
        api = chaos.apis[index]
        if api is not None:
            api.kill(signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 2))
        chaos.start_api(index)
    elif kind == "redis":
        chaos.stack.redis.stop()
        time.sleep(rng.uniform(0.5, 3))
        chaos.stack.redis.start()
    else:
        chaos.postgres.halt(rng.choice([signal.SIGINT, signal.SIGQUIT]))
        time.sleep(rng.uniform(1, 5))
        chaos.postgres.resume()


def check_job(job: dict[str, Any], log: str) -> list[str]:
    """The invariants of one terminal job; the problems found."""
    problems = []
    nodes = NODES[job["pipeline_name"]]
    parts = SEPARATOR.split(log)
    attempts = [parts[0]] if len(parts) == 1 else parts[2::2]
    for number, part in enumerate(attempts, 1):
        ran = Counter(RUNNING_NODE.findall(part))
        twice = [name for name, count in ran.items() if count > 1]
        if twice:
            problems.append(f"attempt {number} ran {twice} more than once")
    if job["status"] == "completed":
        last = attempts[-1]
        ran = Counter(RUNNING_NODE.findall(last))
        if sorted(ran) != sorted(nodes):
            problems.append(f"completed, but its last attempt ran {dict(ran)}")
        if job["pipeline_name"] == "chatty":
            numbers = [int(n) for n in re.findall(r"^chatty (\d{9}) ", last, re.MULTILINE)]
            if numbers != list(range(CHATTY_LINES)) or "chatty done" not in last:
                problems.append(f"completed with {len(numbers)} of {CHATTY_LINES} chatty lines")
        if job["pipeline_name"] == "slow" and "slow done after" not in last:
            problems.append("completed without its last line")
        if job["output_dropped_bytes"] or job["output_bytes"] != len(log.encode()):
            problems.append("output bytes do not match the log")
    return problems


def error_rates(chaos: Chaos) -> dict[str, dict[str, Any]]:
    """Per fault kind (and none): requests made during it and the share that failed."""
    rates: dict[str, dict[str, Any]] = {}
    for kind in (*FAULTS, "none"):
        for request_kind in ("submit", "read"):
            during = [
                request
                for request in chaos.requests
                if request.kind == request_kind
                and (
                    any(f.kind == kind and f.start <= request.at <= f.end for f in chaos.faults)
                    if kind != "none"
                    else not any(f.start <= request.at <= f.end for f in chaos.faults)
                )
            ]
            failed = sum(not request.ok for request in during)
            rates.setdefault(kind, {})[request_kind] = {
                "requests": len(during),
                "error_rate": round(failed / len(during), 4) if during else None,
            }
    return rates


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    directory = Path(tempfile.mkdtemp(prefix="kjg-chaos-"))
    report: dict[str, Any] | None = None
    release = threading.Event()  # the chaos thread ends only once PostgreSQL is stopped
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(release.set)
        postgres = cleanup.enter_context(running_postgres())
        stack = Stack(directory, postgres.create_database("chaos"), extra_env=ENV)
        chaos = Chaos(stack, postgres, apis=[None] * APIS, ports=[free_port() for _ in range(APIS)])
        try:
            stack.redis.start()
            for index in range(WORKERS):
                stack.start_worker(name=f"w{index + 1}", concurrency=CONCURRENCY)
            for index in range(APIS):
                chaos.start_api(index)
            report = _drive(chaos, rng, args, release)
            return report
        finally:
            for api in chaos.apis:
                if api is not None:
                    api.kill(signal.SIGTERM)
            stack.stop()
            if report is not None and report["invariants_hold"]:
                shutil.rmtree(directory, ignore_errors=True)
            else:  # the services' logs are what explains a failed run
                print(f"logs kept in {directory}")


def _drive(
    chaos: Chaos, rng: random.Random, args: argparse.Namespace, release: threading.Event
) -> dict[str, Any]:
    bodies = job_mix(args.jobs, rng)
    ids: dict[str, str] = {}
    stop_chaos, stop_reads, chaos_done = threading.Event(), threading.Event(), threading.Event()
    chaos_thread = threading.Thread(
        target=inflict,
        args=(chaos, random.Random(args.seed + 1), stop_chaos, args.every, chaos_done, release),
        daemon=True,
    )
    reader = threading.Thread(target=read_meanwhile, args=(chaos, ids, stop_reads))
    started = time.monotonic()
    chaos_thread.start()
    reader.start()
    print(f"submitting {len(bodies)} jobs under chaos", flush=True)
    submit_all(chaos, bodies, args.clients, ids)
    with httpx.Client(base_url=chaos.base(0), timeout=10) as http:
        _wait_for_queue(http, args.chaos_after_submit, started)
        stop_chaos.set()
        chaos_done.wait()
        stop_reads.set()
        reader.join()
        calm = time.monotonic()
        print("chaos stopped; waiting for every job to end", flush=True)
        stuck = _wait_terminal(http, args.settle)
        settled = time.monotonic() - calm
        jobs = {key: _get(http, f"/jobs/{job_id}") for key, job_id in ids.items()}
        problems = {
            key: found
            for key, job in jobs.items()
            if job["status"] in ("completed", "failed", "cancelled")
            and (
                found := check_job(
                    job, _get(http, f"/jobs/{job['id']}/logs", limit=4 * 1024 * 1024)["data"]
                )
            )
        }
    statuses = Counter(job["status"] for job in jobs.values())
    reasons = Counter(
        _reason(job["error_message"]) for job in jobs.values() if job["status"] == "failed"
    )
    unexpected = [
        key
        for key, job in jobs.items()
        if job["status"] == "failed"
        and job["pipeline_name"] != "fail"
        and not str(job["error_message"]).startswith("worker lost")
    ]
    report = {
        "command": (
            f"python -m bench.chaos --jobs {args.jobs} --seed {args.seed} "
            f"--every {args.every:g} --chaos-after-submit {args.chaos_after_submit:g}"
        ),
        "jobs_submitted": len(bodies),
        "jobs_recorded": len(set(ids.values())),
        "completed": statuses["completed"],
        "failed": statuses["failed"],
        "failed_by_reason": dict(reasons),
        "failed_unexpectedly": len(unexpected),
        "stuck": len(stuck),
        "settled_seconds": round(settled, 1),
        "retried_jobs": sum(job["attempt"] > 1 for job in jobs.values()),
        "invariant_problems": {key: found for key, found in list(problems.items())[:20]},
        "jobs_with_problems": len(problems),
        "faults": dict(Counter(fault.kind for fault in chaos.faults)),
        "api_error_rate": error_rates(chaos),
        "seconds": round(time.monotonic() - started, 1),
    }
    ok = (
        not stuck
        and not problems
        and len(set(ids.values())) == len(bodies)
        and statuses["completed"] + statuses["failed"] == len(bodies)
    )
    report["invariants_hold"] = ok
    return report


def _reason(message: str | None) -> str:
    text = str(message)
    if text.startswith("worker lost: no heartbeat"):
        return "worker lost: no heartbeat"
    if text.startswith("worker lost: the worker restarted"):
        return "worker lost: the worker restarted"
    if "intentional failure" in text:
        return "node raised (the `fail` pipeline)"
    return text[:80]


def _pending_or_running(http: httpx.Client) -> int:
    total = 0
    for status in ("pending", "running"):
        try:
            response = http.get("/jobs", params={"status": status, "limit": 100})
        except httpx.HTTPError:
            return -1
        if response.status_code != 200:
            return -1
        total += len(response.json()["items"])
    return total


def _get(http: httpx.Client, path: str, **params: Any) -> Any:
    """A read that waits out the API's last transient errors (a database just back)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = http.get(path, params=params)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            response.raise_for_status()
        time.sleep(0.5)


def _wait_for_queue(http: httpx.Client, chaos_after_submit: float, started: float) -> None:
    """Chaos goes on while the queue drains, at most `chaos_after_submit` more seconds."""
    deadline = time.monotonic() + chaos_after_submit
    while time.monotonic() < deadline and _pending_or_running(http) != 0:
        time.sleep(1)
    print(f"submitted in {time.monotonic() - started:.0f} s", flush=True)


def _wait_terminal(http: httpx.Client, settle: float) -> list[str]:
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if _pending_or_running(http) == 0:
            return []
        time.sleep(1)
    stuck = []
    for status in ("pending", "running"):
        stuck += [job["id"] for job in _get(http, "/jobs", status=status)["items"]]
    return stuck


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--every", type=float, default=6.0, help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument(
        "--chaos-after-submit",
        type=float,
        default=120.0,
        help="go on with faults while jobs still run after the last submit, at most this long",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=240.0,
        help="after the chaos stops, every job must end within this many seconds",
    )
    parser.add_argument("--output", type=Path, default=Path("bench/results/chaos.json"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit)  # stop the stack it started on the way out
    report = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["invariants_hold"] else 1


if __name__ == "__main__":
    sys.exit(main())
