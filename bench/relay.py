"""Output relay: a `chatty` job's output streamed into the store, and worker memory."""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.harness import (
    client,
    require_completed,
    worker_pids,
    worker_side_processes,
)
from bench.latency import direct_argv, direct_env, run_direct
from bench.plan import Plan
from bench.profiling import sampled
from bench.report import Section
from tests.utils.stack import TERMINAL, Stack, submit, wait_until

MB = 1_000_000
MIB = 1024 * 1024


class RssSampler(threading.Thread):
    """Samples the RSS of some processes every few ms and keeps each one's peak."""

    def __init__(self, processes: list[psutil.Process], interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.processes = processes
        self.interval = interval
        self.baseline = {proc.pid: _rss(proc) for proc in processes}
        self.peak = dict(self.baseline)
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for proc in self.processes:
                self.peak[proc.pid] = max(self.peak[proc.pid], _rss(proc))
            self.samples += 1
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def growth(self) -> tuple[int, int]:
        """The largest growth of any one process, and the pid that grew the most."""
        pid = max(self.peak, key=lambda p: self.peak[p] - self.baseline[p])
        return self.peak[pid] - self.baseline[pid], pid


def _rss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def relay(stack: Stack, plan: Plan, section: Section, profile: Path | None) -> None:
    """MB/s of output reaching the store while a job prints `chatty_mb` MiB."""
    body = {"pipeline_name": "chatty", "parameters": {"chatty": {"mb": plan.chatty_mb}}}
    processes = worker_side_processes(stack)
    cpu_before = {proc.pid: proc.cpu_times() for proc in processes}
    sampler = RssSampler(processes)
    sampler.start()
    observed: list[tuple[float, int]] = []
    spies: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stacked, client(stack) as http:
            for index, pid in enumerate(worker_pids(stack)):
                spies.append(
                    stacked.enter_context(
                        sampled(pid, profile, f"worker{index + 1}-relay", subprocesses=True)
                    )
                )
            job = submit(http, **body)

            def probe() -> dict[str, Any] | None:
                current: dict[str, Any] = http.get(f"/jobs/{job['id']}").json()
                observed.append((time.perf_counter(), current["output_bytes"]))
                return current if current["status"] in TERMINAL else None

            done = require_completed(
                wait_until(probe, timeout=600, interval=0.02, what="chatty job")
            )
    finally:
        sampler.stop()
    cpu = _busiest(processes, cpu_before)
    total = done["output_bytes"]
    if total < plan.chatty_mb * MIB:
        raise RuntimeError(f"chatty job relayed only {total} bytes")
    results = done["results"]
    execution = float(results["execution_time"])
    streaming = _streaming_rate(observed, total)
    growth, pid = sampler.growth()

    with tempfile.TemporaryDirectory(prefix="bench-chatty-") as tmp:
        config = Path(tmp) / "run-config.json"
        config.write_text(json.dumps({"run": {"params": body["parameters"]}}))
        direct_wall, direct_bytes = run_direct(direct_argv("chatty", config), direct_env(stack))

    section.add(
        "relay_mb_s",
        f"output relay ({plan.chatty_mb} MiB chatty job)",
        streaming if streaming is not None else total / MB / execution,
        "MB/s",
        (">=", 50),
    )
    section.add(
        "relay_rss_growth_mb", "worker pool process peak RSS growth", growth / MB, "MB", ("<=", 50)
    )
    section.details.update(
        output_bytes=total,
        output_dropped_bytes=done["output_dropped_bytes"],
        rate_definition=(
            "bytes added to the job's output_bytes, observed by GET every 20 ms, between the "
            "first observation past 1 MiB and the first showing the final count, per second"
        ),
        streaming_rate_mb_s=None if streaming is None else round(streaming, 1),
        whole_run_rate_mb_s=round(total / MB / execution, 1),
        gateway_execution_s=execution,
        direct_wall_s=round(direct_wall, 3),
        direct_output_bytes=direct_bytes,
        direct_whole_run_rate_mb_s=round(direct_bytes / MB / direct_wall, 1),
        rss_growth_pid=pid,
        rss_samples=sampler.samples,
        rss_baseline_mb={str(p): round(v / MB, 1) for p, v in sampler.baseline.items()},
        rss_peak_mb={str(p): round(v / MB, 1) for p, v in sampler.peak.items()},
        observations=len(observed),
        cpu_seconds=cpu,
        profile=[spy for spy in spies if spy.get("processes")],
    )


def _busiest(processes: list[psutil.Process], before: dict[int, Any]) -> dict[str, float | int]:
    """CPU seconds of the worker process that worked hardest, and of the runs it waited for."""
    spent = []
    for proc in processes:
        try:
            after = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        start = before[proc.pid]
        own = after.user + after.system - start.user - start.system
        children = (
            after.children_user
            + after.children_system
            - start.children_user
            - start.children_system
        )
        spent.append((own, children, proc.pid))
    own, children, pid = max(spent)
    return {"pid": pid, "pool_process": round(own, 2), "its_children": round(children, 2)}


def _streaming_rate(observed: list[tuple[float, int]], total: int) -> float | None:
    """MB/s between the first observation past 1 MiB and the first one at `total` bytes."""
    first = next(((t, n) for t, n in observed if n >= MIB), None)
    last = next(((t, n) for t, n in observed if n >= total), None)
    if first is None or last is None or last[0] <= first[0] or last[1] <= first[1]:
        return None
    return (last[1] - first[1]) / MB / (last[0] - first[0])
