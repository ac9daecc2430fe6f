"""Storm: many clients submit arithmetic jobs at once; every job must run exactly once."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import API, timestamp
from bench.plan import Plan
from bench.report import Section, summary
from tests.utils.stack import TERMINAL, Stack

ADD_FIVE_RUNS = re.compile(r"Running node: add_five\b")


@dataclass
class Outcome:
    initial_value: int
    job_id: str | None = None
    rejected: str | None = None
    job: dict[str, Any] | None = None
    seen_at: float = 0.0
    log: str = ""
    problems: dict[str, str] = field(default_factory=dict)


def storm(stack: Stack, plan: Plan, section: Section) -> None:
    """`storm_jobs` jobs from `storm_clients` clients; all complete, none lost or run twice."""
    outcomes = [Outcome(initial_value=index) for index in range(plan.storm_jobs)]
    started = time.perf_counter()
    asyncio.run(_storm(f"{stack.base_url}{API}", plan, outcomes))
    _check(outcomes)
    completed = [o for o in outcomes if o.job is not None and o.job["status"] == "completed"]
    rejected = sum(o.rejected is not None for o in outcomes)
    not_terminal = sum(o.job_id is not None and o.job is None for o in outcomes)
    failed = sum(o.job is not None and o.job["status"] != "completed" for o in outcomes)
    duplicated = sum("duplicate" in o.problems for o in outcomes)
    wrong = sum("result" in o.problems for o in outcomes)
    last_seen = max((o.seen_at for o in outcomes if o.job is not None), default=started)
    client_rate = len(completed) / (last_seen - started) if last_seen > started else 0.0
    server_rate = _server_rate([o.job for o in completed if o.job is not None])
    skipped = sum(worker.log().count("not claimable") for worker in stack.workers)

    section.add(
        "storm_jobs_per_s",
        f"storm: {plan.storm_jobs} jobs / {plan.storm_clients} clients",
        client_rate,
        "jobs/s",
    )
    section.add("storm_completed", "  completed", len(completed), "jobs", ("==", plan.storm_jobs))
    section.add(
        "storm_lost",
        "  lost (refused, or never finished)",
        rejected + not_terminal,
        "jobs",
        ("==", 0),
    )
    section.add("storm_failed", "  failed or cancelled", failed, "jobs", ("==", 0))
    section.add("storm_duplicated", "  run more than once", duplicated, "jobs", ("==", 0))
    queue_waits = [
        timestamp(o.job["started_at"]) - timestamp(o.job["created_at"])
        for o in completed
        if o.job is not None
    ]
    section.details.update(
        jobs=plan.storm_jobs,
        clients=plan.storm_clients,
        rejected=rejected,
        not_terminal_by_deadline=not_terminal,
        failed_or_cancelled=failed,
        wrong_result=wrong,
        client_jobs_per_s=round(client_rate, 2),
        server_jobs_per_s=round(server_rate, 2),
        wall_s=round(last_seen - started, 1),
        redeliveries_skipped_by_workers=skipped,
        queue_wait_s=summary(queue_waits),
        execution_s=summary(
            [float(o.job["execution_time"]) for o in completed if o.job is not None], digits=3
        ),
        problems=[f"{o.job_id}: {p}" for o in outcomes for p in o.problems.values()][:50],
        not_completed=[
            {
                key: o.job.get(key)
                for key in ("id", "status", "error_message", "exit_code", "attempt", "worker")
            }
            | {"output_tail": (o.job.get("results") or {}).get("output_tail", [])[-8:]}
            for o in outcomes
            if o.job is not None and o.job["status"] != "completed"
        ][:20],
    )
    if wrong:
        raise RuntimeError(f"{wrong} jobs did not print their own result (see details)")


async def _storm(base_url: str, plan: Plan, outcomes: list[Outcome]) -> None:
    deadline = time.monotonic() + 120 + plan.storm_jobs * 1.5
    shares = [outcomes[i :: plan.storm_clients] for i in range(plan.storm_clients)]
    await asyncio.gather(*(_client(base_url, share, plan, deadline) for share in shares))
    # Read back every log with a few connections, once every job is done.
    limits = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await asyncio.gather(*(_fetch_log(http, o, limits) for o in outcomes if o.job))


async def _client(base_url: str, share: list[Outcome], plan: Plan, deadline: float) -> None:
    """One caller: submit its jobs back to back, then wait for each in turn."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for outcome in share:
            body = {
                "pipeline_name": "arithmetic",
                "parameters": {"initial_value": outcome.initial_value},
            }
            try:
                response = await http.post("/jobs", json=body)
            except httpx.HTTPError as exc:
                outcome.rejected = repr(exc)
                continue
            if response.status_code != 202:
                outcome.rejected = f"{response.status_code}: {response.text[:200]}"
                continue
            outcome.job_id = response.json()["id"]
        for outcome in share:
            while outcome.job_id is not None and time.monotonic() < deadline:
                job = (await http.get(f"/jobs/{outcome.job_id}")).json()
                if job["status"] in TERMINAL:
                    outcome.job, outcome.seen_at = job, time.perf_counter()
                    break
                await asyncio.sleep(plan.storm_poll_interval)


async def _fetch_log(http: httpx.AsyncClient, outcome: Outcome, limits: asyncio.Semaphore) -> None:
    async with limits:
        response = await http.get(f"/jobs/{outcome.job_id}/logs", params={"limit": 4 * 1024 * 1024})
        outcome.log = response.json()["data"]


def _check(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        job = outcome.job
        if job is None:
            continue
        runs = len(ADD_FIVE_RUNS.findall(outcome.log))
        if job["attempt"] != 1 or runs > 1:
            outcome.problems["duplicate"] = f"attempt {job['attempt']}, add_five ran {runs} times"
        elif runs == 0:
            outcome.problems["no_run"] = "add_five never ran"
        expected = (outcome.initial_value + 5) * 2 - 10
        if (
            job["status"] == "completed"
            and f"subtract_ten: value = {expected}\n" not in outcome.log
        ):
            outcome.problems["result"] = f"no line 'subtract_ten: value = {expected}'"


def _server_rate(jobs: list[dict[str, Any]]) -> float:
    """Completed jobs per second from the first submit to the last completion (server clock)."""
    if not jobs:
        return 0.0
    first = min(timestamp(job["created_at"]) for job in jobs)
    last = max(timestamp(job["completed_at"]) for job in jobs)
    return len(jobs) / (last - first) if last > first else 0.0
