"""Admission end to end: real API, Redis, two Celery workers (4 slots) and `kedro run`.

Limits come from the LIMITS setting and from PUT /limits; every check reads the
jobs' recorded start and end times.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.utils.postgres import database_url
from tests.utils.stack import TERMINAL, Stack, running_stack, wait_for_status, wait_until

KEYS = {"alice": "alice-key", "bob": "bob-key", "root": "root-key"}
SETTING = {"pipelines": {"slow": 1, "echo": 1}}
SLOW = {"slow": {"seconds": 0.3, "interval": 0.1}}
QUICK = {"slow": {"seconds": 0, "interval": 0.1}}


@pytest.fixture(scope="module")
def stack(
    database: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp(f"admission-{database}")
    with running_stack(
        directory,
        database_url(request, database, directory, "admission"),
        workers=2,
        RUNNER_MODE="warm",
        LIMITS=json.dumps(SETTING),
        API_KEYS=",".join(f"{user}:{key}" for user, key in KEYS.items()),
        ADMIN_USERS="root",
    ) as started:
        yield started


def _client(stack: Stack, user: str) -> httpx.Client:
    client = stack.client()
    client.headers["Authorization"] = f"Bearer {KEYS[user]}"
    return client


@pytest.fixture
def alice(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack, "alice") as client:
        yield client


@pytest.fixture
def bob(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack, "bob") as client:
        yield client


@pytest.fixture
def root(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack, "root") as client:
        yield client


def _submit(client: httpx.Client, pipeline: str, **body: Any) -> dict[str, Any]:
    response = client.post("/jobs", json={"pipeline_name": pipeline, **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
    return job


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _cancel_the_rest(client: httpx.Client, ids: list[str]) -> None:
    for job_id in ids:
        response = client.post(f"/jobs/{job_id}/cancel")
        assert response.status_code in (202, 409), response.text
    for job_id in ids:
        wait_for_status(client, job_id, TERMINAL, timeout=120)


def _started_after(client: httpx.Client, ids: list[str], moment: datetime) -> list[datetime]:
    starts = [_job(client, job_id)["started_at"] for job_id in ids]
    return sorted(_at(start) for start in starts if start and _at(start) >= moment)


def test_a_pipeline_limit_of_one_never_runs_two_at_once_while_others_run_beside(
    alice: httpx.Client,
) -> None:
    """10 jobs of `slow` (limit 1 from LIMITS) and 6 of `arithmetic`, 4 worker slots."""
    slow = [_submit(alice, "slow", parameters=SLOW)["id"] for _ in range(10)]
    waiting = _job(alice, slow[-1])
    assert waiting["status"] == "pending"
    assert waiting["waiting_reason"] == "pipeline slow: 1 of 1 running"
    assert waiting["position"] is not None and waiting["position"] >= 1
    other = [_submit(alice, "arithmetic")["id"] for _ in range(6)]
    runs = [wait_for_status(alice, job_id, timeout=180) for job_id in slow + other]
    assert {job["status"] for job in runs} == {"completed"}, runs
    spans = sorted((_at(j["started_at"]), _at(j["completed_at"])) for j in runs[:10])
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert ended <= started, "two jobs of the limited pipeline ran at once"
    beside = [j for j in runs[10:] if _at(j["started_at"]) < spans[-1][0]]
    assert beside, "no other pipeline ran while the limited one was busy"


def _a_burst_does_not_starve_a_single_job(
    alice: httpx.Client, bob: httpx.Client, pipeline: str
) -> None:
    burst = [_submit(alice, pipeline)["id"] for _ in range(500)]
    single = _submit(bob, pipeline)
    # Bob's job mostly waits behind the burst; but when one of Alice's short jobs ends during
    # his submit, his own admission pass may take the freed slot at once (he has had no turn
    # yet). Either way it must not wait for hers: the checks below hold for both.
    done = wait_for_status(bob, single["id"], timeout=180)
    assert done["status"] == "completed"
    started = _at(done["started_at"])
    # Alice's jobs that had not started when Bob submitted; Bob's must start before her 10th.
    before_bob = [s for s in _started_after(alice, burst, _at(single["created_at"])) if s < started]
    assert len(before_bob) < 10
    assert len(before_bob) <= 2, "users take turns: at most one of Alice's jobs goes first"
    _cancel_the_rest(alice, burst)
    cancelled = [
        job for job in map(lambda i: _job(alice, i), burst) if job["status"] == "cancelled"
    ]
    assert any(job["started_at"] is None for job in cancelled), "none cancelled while waiting"


def test_a_burst_of_one_user_does_not_starve_another_limits_from_the_setting(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    _a_burst_does_not_starve_a_single_job(alice, bob, "echo")


def test_a_burst_of_one_user_does_not_starve_another_limits_changed_at_runtime(
    alice: httpx.Client, bob: httpx.Client, root: httpx.Client
) -> None:
    changed = root.put("/limits", json={**SETTING, "queues": {"default": 1}})
    assert changed.status_code == 200, changed.text
    try:
        assert root.get("/limits").json()["queues"] == {"default": 1}
        _a_burst_does_not_starve_a_single_job(alice, bob, "arithmetic")
    finally:
        assert root.put("/limits", json=SETTING).status_code == 200


def test_a_high_priority_job_behind_a_hundred_waiting_ones_starts_next(
    alice: httpx.Client,
) -> None:
    """A long job holds the one slot of `slow` (LIMITS) while 100 jobs and then an urgent
    one queue behind it; cancelled, it frees the slot, and the urgent job takes it."""
    blocker = _submit(alice, "slow", parameters={"slow": {"seconds": 120, "interval": 0.5}})
    wait_for_status(alice, blocker["id"], {"running"}, timeout=60)
    queued = [_submit(alice, "slow", parameters=QUICK)["id"] for _ in range(100)]
    try:
        urgent = _submit(alice, "slow", parameters=QUICK, priority=10)
        assert (urgent["waiting_reason"], urgent["position"]) == (
            "pipeline slow: 1 of 1 running",
            1,
        )
        assert alice.post(f"/jobs/{blocker['id']}/cancel").status_code == 202
        done = wait_for_status(alice, urgent["id"], timeout=120)
        assert done["status"] == "completed"
        submitted = _at(urgent["created_at"])
        earlier = [
            s for s in _started_after(alice, queued, submitted) if s < _at(done["started_at"])
        ]
        assert earlier == [], "a waiting job started before the high-priority one"
        wait_until(
            lambda: _job(alice, queued[0])["status"] != "pending",
            timeout=60,
            what="the next job to start after the urgent one",
        )
    finally:
        _cancel_the_rest(alice, [blocker["id"], *queued])


def test_waiting_jobs_show_in_metrics(
    stack: Stack, alice: httpx.Client, root: httpx.Client
) -> None:
    assert root.put("/limits", json={**SETTING, "pipelines": {"fail": 0}}).status_code == 200
    try:
        held = [_submit(alice, "fail")["id"] for _ in range(3)]
        text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
        assert 'gateway_jobs_waiting{queue="default",reason="pipeline fail"} 3.0' in text
        _cancel_the_rest(alice, held)
    finally:
        assert root.put("/limits", json=SETTING).status_code == 200
