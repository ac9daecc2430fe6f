"""Soak: a steady stream of jobs for a long time, with retention purging as it goes.

`python -m bench.soak [--jobs 10000] [--minutes 30] [--database sqlite|postgresql]
[--runner-mode warm|cold] [--sample-seconds 10] [--output FILE]` starts the stack
(`bench/harness.py`: Redis, `--workers` Celery workers, `--apis` API processes, on a
SQLite file or a throwaway PostgreSQL server) with `JOB_RETENTION_DAYS` set to a few
minutes (`--retention-seconds`), primes it (two quick jobs per pool process at once, so
every pool process has its warm server), then submits a mix of quick, failing and chatty
jobs at the steady rate that reaches `--jobs` in `--minutes`. Meanwhile it samples, every
`--sample-seconds`: each API's and each worker's RSS and open file descriptors (summed
over its process tree: pool processes, warm servers and the runs of the moment),
Redis's, the store's size on disk (SQLite: the file, its WAL and shared memory;
PostgreSQL: `pg_database_size`), the jobs in the store and the jobs finished.

A machine that cannot keep up is not hidden: submitting waits while `--max-backlog`
jobs are pending or running, so the report says how many jobs were submitted of the
target and at what rate they finished; only jobs seen to end in the store count.

After the last submit it waits up to `--settle` seconds for every job to end, prints
the samples and the verdict, writes JSON (default `bench/results/soak.json`) and exits
1 unless:

- after the warm-up (the first fifth of the run), each series is flat: the median of
  the last quarter of the samples exceeds the median of the first quarter by no more
  than its tolerance (`TOLERANCES`: RSS 15 % or 20 MiB, whichever is larger; open
  files 4; the store's size 15 % or 8 MiB);
- every service stayed up;
- every submitted job ended (none stuck, none lost), as seen in the store before
  retention purged it, and as its pipeline should (only `fail` jobs failed);
- retention purged jobs during the run.

Not part of the test suite; tests/test_bench_soak.py checks the verdict alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import psutil
import psycopg

from bench.harness import (
    API,
    JobMix,
    StackShape,
    database,
    job_mix,
    keep_logs,
    running,
    start_api_process,
    submit_with_key,
)
from bench.report import machine, median
from tests.utils.stack import ServiceProcess, Stack, free_port

MIB = 1024 * 1024
WARMUP = 0.2
MIN_PER_QUARTER = 2
MIX = JobMix(quick=0.7, slow=0.0, fail=0.1)


@dataclass(frozen=True)
class Tolerance:
    """How far the last quarter's median may rise above the first's: the larger of a
    share of the first and an amount in the series' unit."""

    relative: float
    absolute: float

    def allowed(self, baseline: float) -> float:
        return max(self.relative * baseline, self.absolute)


Kind = Literal["rss", "fds", "store"]
TOLERANCES: dict[Kind, Tolerance] = {
    "rss": Tolerance(0.15, 20 * MIB),
    "fds": Tolerance(0.0, 4),
    "store": Tolerance(0.15, 8 * MIB),
}


@dataclass
class Sample:
    """One look at the stack, `t` seconds after the first submit."""

    t: float
    submitted: int
    finished: int
    in_store: int
    unfinished: int
    store_bytes: int
    store_parts: dict[str, int] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    fds: dict[str, int] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    """One assertion of the verdict; `first`, `last` and `allowed` for a flatness check."""

    name: str
    ok: bool
    detail: str
    first: float | None = None
    last: float | None = None
    allowed: float | None = None


def flatness(
    name: str, times: Sequence[float], values: Sequence[float], *, duration: float, kind: Kind
) -> Check:
    """Whether a series is flat after the warm-up: the median of the last quarter of the
    samples after it exceeds that of the first quarter by at most `TOLERANCES[kind]`."""
    settled = [v for t, v in zip(times, values, strict=True) if WARMUP * duration <= t <= duration]
    quarter = len(settled) // 4
    if quarter < MIN_PER_QUARTER:
        return Check(name, False, f"{len(settled)} samples after the warm-up: too few to judge")
    first, last = median(settled[:quarter]), median(settled[-quarter:])
    allowed = TOLERANCES[kind].allowed(first)
    ok = last - first <= allowed
    unit, scale = (" MiB", MIB) if kind != "fds" else ("", 1)
    detail = (
        f"{first / scale:.1f} -> {last / scale:.1f}{unit} "
        f"({(last - first) / scale:+.1f}, at most +{allowed / scale:.1f})"
    )
    return Check(name, ok, detail, first, last, allowed)


def verdict(samples: Sequence[Sample], *, duration: float) -> list[Check]:
    """The flatness of every series, from the samples taken while jobs were submitted
    (the first `duration` seconds), and whether every service stayed up throughout."""
    during = [s for s in samples if s.t <= duration]
    times = [s.t for s in during]
    names = sorted({name for s in during for name in s.rss})
    checks = []
    for name in names:
        rss = [float(s.rss.get(name, 0)) for s in during]
        fds = [float(s.fds.get(name, 0)) for s in during]
        checks.append(flatness(f"{name} rss", times, rss, duration=duration, kind="rss"))
        checks.append(flatness(f"{name} fds", times, fds, duration=duration, kind="fds"))
    sizes = [float(s.store_bytes) for s in during]
    checks.append(flatness("store size", times, sizes, duration=duration, kind="store"))
    down = sorted({name for s in samples for name in s.down})
    checks.append(
        Check("services up", not down, f"down: {', '.join(down)}" if down else "all, throughout")
    )
    return checks


class StoreProbe:
    """Reads the store directly, not through the API: its size on disk and its jobs."""

    def __init__(self, url: str) -> None:
        self._sqlite: Path | None = None
        if url.startswith("sqlite:///"):
            self._sqlite = Path(url.removeprefix("sqlite:///"))
            self._connection: Any = sqlite3.connect(
                f"file:{self._sqlite}?mode=ro",
                uri=True,
                timeout=30,
                isolation_level=None,
                check_same_thread=False,  # made in one thread, used (only) in another
            )
        else:
            dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
            self._connection = psycopg.connect(dsn, autocommit=True)

    def size(self) -> tuple[int, dict[str, int]]:
        """Bytes on disk, and where: SQLite's file, its WAL and shared memory; or
        PostgreSQL's database, and each table with its indexes and TOAST."""
        if self._sqlite is not None:
            parts = {"file": "", "wal": "-wal", "shm": "-shm"}
            paths = {
                part: self._sqlite.with_name(self._sqlite.name + s) for part, s in parts.items()
            }
            found = {part: path.stat().st_size for part, path in paths.items() if path.exists()}
            return sum(found.values()), found
        tables = self._connection.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ).fetchall()
        total = int(self._one("SELECT pg_database_size(current_database())"))
        return total, {str(name): int(size) for name, size in tables}

    def jobs(self) -> int:
        return int(self._one("SELECT count(*) FROM jobs"))

    def unfinished(self) -> int:
        return int(self._one("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')"))

    def terminal(self) -> list[tuple[str, str, str, str | None]]:
        """(id, status, pipeline, error message of a failure other than `fail`'s) of
        every terminal job in the store."""
        rows = self._connection.execute(
            "SELECT id, status, pipeline_name, CASE WHEN status = 'failed' "
            "AND pipeline_name <> 'fail' THEN error_message END "
            "FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')"
        ).fetchall()
        return [(str(a), str(b), str(c), d) for a, b, c, d in rows]

    def _one(self, query: str) -> Any:
        return self._connection.execute(query).fetchone()[0]

    def close(self) -> None:
        self._connection.close()


def tree_usage(pid: int) -> tuple[int, int]:
    """RSS bytes and open file descriptors of a process and all its descendants."""
    root = psutil.Process(pid)
    rss = fds = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):  # a run just ended
            rss += process.memory_info().rss
            fds += process.num_fds()
    return rss, fds


@dataclass
class Ledger:
    """What the client knows: the jobs it submitted, those it saw end in the store."""

    submitted: dict[str, str] = field(default_factory=dict)  # id -> pipeline
    ended: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    held_seconds: float = 0.0
    refused_requests: int = 0
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, probe: StoreProbe) -> None:
        """Note every terminal job in the store (retention keeps each there for longer
        than the time between two looks)."""
        for job_id, status, pipeline, error in probe.terminal():
            self.ended.setdefault(job_id, (status, pipeline, error))

    def finished(self) -> int:
        with self.lock:
            ids = set(self.submitted)
        return len(ids & self.ended.keys())


@dataclass(frozen=True)
class Pace:
    """`jobs` evenly over `seconds` from `start` (monotonic), at most `max_backlog` of
    them pending or running at a time."""

    jobs: int
    seconds: float
    max_backlog: int
    start: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def submit_steadily(
    bases: list[str],
    bodies: list[dict[str, Any]],
    pace: Pace,
    probe: StoreProbe,
    ledger: Ledger,
    stop: threading.Event,
) -> None:
    """Submit `bodies` one every 1/rate seconds, through the APIs in turn, until they are
    all in or the time is up; while `max_backlog` jobs are pending or running, wait."""
    until = pace.start + pace.seconds

    def base(attempt: int) -> str:
        return bases[attempt % len(bases)]

    def refused(ok: bool) -> None:
        if not ok:
            ledger.refused_requests += 1

    try:
        with httpx.Client(timeout=10) as http:
            for index, body in enumerate(bodies):
                due = pace.start + index / pace.rate
                if stop.wait(max(0.0, due - time.monotonic())) or time.monotonic() >= until:
                    return
                while probe.unfinished() >= pace.max_backlog:
                    held = time.monotonic()
                    if stop.wait(0.25) or time.monotonic() >= until:
                        return
                    ledger.held_seconds += time.monotonic() - held
                job_id = submit_with_key(
                    http, base, body, f"soak-{index}", first=index, note=refused, deadline=until
                )
                with ledger.lock:
                    ledger.submitted[job_id] = body["pipeline_name"]
    except Exception as exc:  # reported, and the run fails
        ledger.error = f"submitting stopped: {exc!r}"
    finally:
        probe.close()


class Running(Protocol):
    """A service of the stack: a worker, an API or Redis."""

    process: subprocess.Popen[bytes] | None


def services_of(stack: Stack, apis: list[ServiceProcess]) -> dict[str, Running]:
    """The processes sampled, by name: the APIs, the workers and Redis."""
    named: dict[str, Running] = {}
    for index, api in enumerate(apis):
        named["api" if len(apis) == 1 else f"api{index + 1}"] = api
    for index, worker in enumerate(stack.workers):
        named[f"w{index + 1}"] = worker
    named["redis"] = stack.redis
    return named


def take_sample(
    t: float, services: dict[str, Running], probe: StoreProbe, ledger: Ledger, primed: int
) -> tuple[Sample, int]:
    """A sample, and the jobs purged so far (submitted and `primed` minus those in the
    store)."""
    ledger.observe(probe)
    with ledger.lock:
        submitted = len(ledger.submitted)
    in_store = probe.jobs()
    size, parts = probe.size()
    sample = Sample(
        t=round(t, 1),
        submitted=submitted,
        finished=ledger.finished(),
        in_store=in_store,
        unfinished=probe.unfinished(),
        store_bytes=size,
        store_parts=parts,
    )
    for name, service in services.items():
        process = service.process
        try:
            if process is None or process.poll() is not None:
                raise psutil.NoSuchProcess(0)
            sample.rss[name], sample.fds[name] = tree_usage(process.pid)
        except psutil.NoSuchProcess:
            sample.down.append(name)
    return sample, submitted + primed - in_store


def prime(bases: list[str], count: int, probe: StoreProbe, timeout: float = 300) -> int:
    """Before the clock starts, `count` quick jobs at once, waited for: each pool process
    then has its warm server, a step up in RSS and open files that would otherwise come
    whenever a pool process first gets a job, perhaps after the warm-up. Not counted."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as http:
        for index in range(count):
            submit_with_key(
                http,
                lambda attempt: bases[attempt % len(bases)],
                {"pipeline_name": "arithmetic"},
                f"prime-{index}",
                first=index,
                deadline=deadline,
            )
    while probe.unfinished():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {count} priming jobs did not end within {timeout:g} s")
        time.sleep(0.5)
    return count


def soak(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the soak as `args` say; the report (`command` is how it was started)."""
    duration = args.minutes * 60
    retention = args.retention_seconds or retention_for(duration, args.sample_seconds)
    env = {
        "RUNNER_MODE": args.runner_mode,
        "JOB_RETENTION_DAYS": repr(retention / 86400),
        "MAINTENANCE_INTERVAL_SECONDS": "1",
    }
    shape = StackShape(workers=args.workers, concurrency=args.concurrency)
    bodies = job_mix(args.jobs, random.Random(args.seed), MIX)
    print(
        f"soak: {args.jobs} jobs in {args.minutes:g} min ({args.jobs / duration:.2f}/s), "
        f"{args.database}, {args.runner_mode}, {args.workers}x{args.concurrency} workers, "
        f"{args.apis} API(s), retention {retention:g} s",
        flush=True,
    )
    with contextlib.ExitStack() as cleanup:
        directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="kjg-soak-")))
        url = cleanup.enter_context(database(args.database, directory))
        stack = cleanup.enter_context(running(directory, shape, url, **env))
        cleanup.callback(keep_logs, directory, args.output.with_name(f"{args.output.stem}-logs"))
        apis = [stack.api] if stack.api else []
        bases = [f"{stack.base_url}{API}"]
        for index in range(1, args.apis):
            port = free_port()
            api = start_api_process(stack, port, f"api-{index}")
            cleanup.callback(api.kill, signal.SIGTERM)
            apis.append(api)
            bases.append(f"http://127.0.0.1:{port}{API}")
        probe = StoreProbe(url)
        cleanup.callback(probe.close)
        services = services_of(stack, apis)
        result = _drive(args, bodies, bases, services, (probe, StoreProbe(url)), duration)
    return {
        "command": command,
        "started_at": result.pop("started_at"),
        "settings": {
            "jobs": args.jobs,
            "minutes": args.minutes,
            "database": args.database,
            "runner_mode": args.runner_mode,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "apis": args.apis,
            "retention_seconds": retention,
            "sample_seconds": args.sample_seconds,
            "max_backlog": args.max_backlog,
            "mix": asdict(MIX),
            "tolerances": {kind: asdict(t) for kind, t in TOLERANCES.items()},
            "warmup_share": WARMUP,
        },
        "machine": machine(),
        **result,
    }


def retention_for(duration: float, sample_seconds: float) -> float:
    """A tenth of the run, between 3 samples and 3 minutes: purging starts well
    inside the warm-up, and no job ends and goes between two looks at the store."""
    return max(3 * sample_seconds, min(180.0, duration / 10))


def _drive(
    args: argparse.Namespace,
    bodies: list[dict[str, Any]],
    bases: list[str],
    services: dict[str, Running],
    probes: tuple[StoreProbe, StoreProbe],
    duration: float,
) -> dict[str, Any]:
    """Submit at a steady pace and sample until the time is up, then let the last jobs
    end; `probes`: the sampler's and the submitter's (one connection per thread)."""
    probe = probes[0]
    primed = prime(bases, 2 * args.workers * args.concurrency, probe)
    ledger, stop = Ledger(), threading.Event()
    started_at = datetime.now(UTC).isoformat()
    started = time.monotonic()
    pace = Pace(len(bodies), duration, args.max_backlog, started)
    submitter = threading.Thread(
        target=submit_steadily, args=(bases, bodies, pace, probes[1], ledger, stop)
    )
    submitter.start()
    samples: list[Sample] = []
    purged = 0
    try:
        tick = started
        while (now := time.monotonic()) < started + duration:
            sample, purged = take_sample(now - started, services, probe, ledger, primed)
            samples.append(sample)
            _progress(sample, purged)
            tick += args.sample_seconds
            time.sleep(max(0.0, min(tick, started + duration) - time.monotonic()))
    finally:
        stop.set()
        submitter.join()
    print("soak: submitting over; waiting for the last jobs to end", flush=True)
    settle_deadline = time.monotonic() + args.settle
    while probe.unfinished() and time.monotonic() < settle_deadline:
        ledger.observe(probe)
        time.sleep(min(1.0, args.sample_seconds))
    end, purged = take_sample(time.monotonic() - started, services, probe, ledger, primed)
    samples.append(end)
    report = _report(args, samples, ledger, purged, duration)
    return {"started_at": started_at, "primed": primed, **report}


def _progress(sample: Sample, purged: int) -> None:
    print(
        f"  {sample.t:7.1f} s  submitted {sample.submitted:6d}  finished {sample.finished:6d}"
        f"  in store {sample.in_store:5d}  purged {purged:6d}"
        f"  store {sample.store_bytes / MIB:6.1f} MiB",
        flush=True,
    )


def _report(
    args: argparse.Namespace,
    samples: list[Sample],
    ledger: Ledger,
    purged: int,
    duration: float,
) -> dict[str, Any]:
    end = samples[-1]
    ended = {job_id: ledger.ended[job_id] for job_id in ledger.submitted if job_id in ledger.ended}
    not_ended = [job_id for job_id in ledger.submitted if job_id not in ended]
    wrong = {
        job_id: {"status": status, "pipeline": pipeline, "error": error}
        for job_id, (status, pipeline, error) in ended.items()
        if status != ("failed" if pipeline == "fail" else "completed")
    }
    last_run = [s for s in samples if s.t <= duration][-1]
    checks = verdict(samples, duration=duration)
    checks += [
        Check(
            "every job ended",
            not not_ended and not end.unfinished,
            f"{len(ended)} of {len(ledger.submitted)} seen to end; "
            f"{end.unfinished} pending or running {args.settle:g} s after the last submit",
        ),
        Check(
            "every job ended as its pipeline should",
            not wrong,
            f"{len(wrong)} did not (only `fail` jobs fail)",
        ),
        Check("retention purged jobs", purged > 0, f"{purged} purged"),
        Check("submitting went on to the end", ledger.error is None, ledger.error or "yes"),
    ]
    return {
        "target": {"jobs": args.jobs, "jobs_per_s": round(args.jobs / duration, 2)},
        "submitted": len(ledger.submitted),
        "finished_during_the_run": last_run.finished,
        "finished_per_s_during_the_run": round(last_run.finished / duration, 2),
        "finished": len(ended),
        "outcomes": {
            f"{pipeline} {status}": count
            for (status, pipeline), count in sorted(
                Counter((status, pipeline) for status, pipeline, _ in ended.values()).items()
            )
        },
        "fell_behind": len(ledger.submitted) < args.jobs,
        "held_back_seconds": round(ledger.held_seconds, 1),
        "refused_requests": ledger.refused_requests,
        "purged": purged,
        "not_ended": not_ended[:20],
        "ended_wrongly": dict(list(wrong.items())[:20]),
        "checks": [asdict(check) for check in checks],
        "ok": all(check.ok for check in checks),
        "samples": [asdict(sample) for sample in samples],
    }


def table(samples: Sequence[dict[str, Any]], duration: float, rows: int = 16) -> str:
    """The samples, at most `rows` of them evenly spread (and the last), one line each."""
    chosen = sorted({round(i * (len(samples) - 1) / (rows - 1)) for i in range(rows)})
    names = list(samples[0]["rss"]) if samples else []
    header = ["t s", "", "submitted", "finished", "store", "unfin", "jobs/s", "store MiB"]
    header += [f"{name} MiB/fd" for name in names]
    lines = [header]
    previous: dict[str, Any] | None = None
    for index in chosen:
        s = samples[index]
        phase = "warm" if s["t"] < WARMUP * duration else "end" if s["t"] > duration else ""
        rate = (
            (s["finished"] - previous["finished"]) / (s["t"] - previous["t"])
            if previous and s["t"] > previous["t"]
            else math.nan
        )
        row = [
            f"{s['t']:.0f}",
            phase,
            str(s["submitted"]),
            str(s["finished"]),
            str(s["in_store"]),
            str(s["unfinished"]),
            "-" if math.isnan(rate) else f"{rate:.2f}",
            f"{s['store_bytes'] / MIB:.1f}",
        ]
        row += [
            f"{s['rss'][n] / MIB:.0f}/{s['fds'][n]}" if n in s["rss"] else "down" for n in names
        ]
        lines.append(row)
        previous = s
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="target jobs over the run")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to submit")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runner-mode", choices=["warm", "cold"], default="warm")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--apis", type=int, default=1, help="API processes, submitted to in turn")
    parser.add_argument(
        "--retention-seconds",
        type=float,
        help="JOB_RETENTION_DAYS, in seconds (default: a tenth of the run, 3 samples to 180 s)",
    )
    parser.add_argument(
        "--max-backlog",
        type=int,
        help="submitting waits while this many jobs are pending or running "
        "(default: 10 per pool process)",
    )
    parser.add_argument(
        "--settle", type=float, default=180.0, help="seconds for the last jobs to end"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args(argv)
    if args.retention_seconds is not None and args.retention_seconds < 3 * args.sample_seconds:
        parser.error("--retention-seconds must be at least 3 x --sample-seconds")
    args.max_backlog = args.max_backlog or 10 * args.workers * args.concurrency
    signal.signal(signal.SIGTERM, _exit)  # stop the stack it started on the way out
    report = soak(
        args, " ".join(["python -m bench.soak", *(sys.argv[1:] if argv is None else argv)])
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report["samples"], args.minutes * 60))
    print()
    for check in report["checks"]:
        print(f"  {'ok  ' if check['ok'] else 'FAIL'}  {check['name']}: {check['detail']}")
    print()
    print(
        f"soak: submitted {report['submitted']} of {report['target']['jobs']} "
        f"(target {report['target']['jobs_per_s']}/s); {report['finished_during_the_run']} "
        f"finished during the run ({report['finished_per_s_during_the_run']}/s), "
        f"{report['finished']} in all; {report['purged']} purged"
        + (
            f"; the machine fell behind (submitting held back {report['held_back_seconds']} s)"
            if report["fell_behind"]
            else ""
        )
    )
    outcome = "PASS" if report["ok"] else "FAIL"
    if report["fell_behind"]:
        outcome += f" at {report['submitted']} of the {args.jobs} jobs targeted"
    print(f"soak: {outcome}; JSON written to {args.output}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
