"""Many SSE followers of one running job's output: the API's CPU, /health, every byte.

A `slow` job (a progress line every 0.25 s) is followed by `plan.followers`
connections at once (`GET /jobs/{id}/logs?follow=true`, a minimal HTTP/1.1 and
SSE reader per connection, all in one asyncio loop). While they follow, the API's
CPU is sampled and `GET /health` is timed from a process of its own (in the
followers' loop it would time that loop's backlog of a thousand connections, not
the API). At the end every follower must have seen the job's whole log, each line
once, and one `end` event.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import api_pid, client
from bench.plan import Plan
from bench.profiling import sampled
from bench.report import Section
from tests.utils.stack import Stack, read_log, submit, wait_for_status


async def _follow(port: int, job_id: str) -> tuple[list[str], int, int]:
    """(data lines, last id, end events) of one follower, read to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/jobs/{job_id}/logs?follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"follower refused: {head[:200]!r}")
    buffer, lines, last_id, ends, event = b"", [], 0, 0, ""
    while True:
        size = int((await reader.readline()).strip() or b"0", 16)
        if size == 0:
            break
        buffer += await reader.readexactly(size)
        await reader.readexactly(2)
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            line = raw.decode().rstrip("\r")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("id:"):
                last_id = int(line[3:].strip())
            elif line.startswith("data:") and event == "log":
                lines.append(line[5:].removeprefix(" "))
            elif line.startswith("data:") and event == "end":
                ends += 1
    writer.close()
    return [line for line in lines if line], last_id, ends


PROBE_SECONDS = 0.1


def _probe_health(base_url: str, ready: Event, stop: Event, times: Queue[list[float]]) -> None:
    """Time `GET /health` every `PROBE_SECONDS` until `stop` (in a process of its own)."""
    taken = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        http.get("/api/v1/health")  # connected before the followers come (timed: not its verdict)
        ready.set()
        while not stop.is_set():
            began = time.perf_counter()
            http.get("/api/v1/health")
            taken.append((time.perf_counter() - began) * 1000)
            stop.wait(PROBE_SECONDS)
    times.put(taken)


async def _run(stack: Stack, job_id: str, count: int) -> tuple[list[Any], list[float], float]:
    context = multiprocessing.get_context("spawn")
    ready, stop, times = context.Event(), context.Event(), context.Queue()
    probe = context.Process(target=_probe_health, args=(stack.base_url, ready, stop, times))
    probe.start()
    if not ready.wait(60):
        raise RuntimeError("the /health probe did not start")
    api = psutil.Process(api_pid(stack))
    processes = [api, *api.children(recursive=True)]
    cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    began = time.perf_counter()
    results = await asyncio.gather(*(_follow(stack.port, job_id) for _ in range(count)))
    cores = (sum(p.cpu_times().user + p.cpu_times().system for p in processes) - cpu_before) / (
        time.perf_counter() - began
    )
    stop.set()
    health: list[float] = times.get(timeout=60)
    probe.join(timeout=10)
    return list(results), health, cores


def followers(stack: Stack, plan: Plan, section: Section, profile: Path | None) -> None:
    with client(stack) as http:
        job = submit(
            http,
            pipeline_name="slow",
            parameters={"slow": {"seconds": plan.follow_seconds, "interval": 0.25}},
        )
        with sampled(api_pid(stack), profile, "api-followers", gil=True) as spy:
            results, health, cores = asyncio.run(_run(stack, job["id"], plan.followers))
        done = wait_for_status(http, job["id"])
        log = [line for line in read_log(http, job["id"]).split("\n") if line]
    complete = sum(
        1
        for lines, last_id, ends in results
        if lines == log and last_id == done["output_bytes"] and ends == 1
    )
    section.add(
        "followers_complete",
        f"followers that saw every line once (of {plan.followers})",
        complete,
        "",
        ("==", plan.followers),
    )
    section.add("followers_api_cores", "API CPU while they follow", cores, "cores", ("<=", 0.5))
    section.add(
        "followers_health_p_max_ms",
        "GET /health while they follow, worst",
        max(health or [0.0]),
        "ms",
        ("<=", 100),
    )
    section.details.update(followers=plan.followers, job_lines=len(log), health_ms=health)
    if spy:
        section.details["api_profile"] = spy
