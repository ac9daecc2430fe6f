"""Admission end to end: real API, Redis, two Celery workers (4 slots) and `kedro run`.

Limits come from the LIMITS setting and from PUT /limits; every check reads the
jobs' recorded start and end times. The race adds a second API process on the
same database.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
# Far more than run in the time Bob's job may wait (ten of Alice's); 500 when slow.
BURSTS = [120, pytest.param(500, marks=[pytest.mark.slow, pytest.mark.timeout(900)])]


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


@pytest.fixture(scope="module")
def second_api(stack: Stack) -> str:
    """Another `python main.py` on the stack's database and broker: its base URL."""
    return stack.start_another_api("api-2")


def _client(stack: Stack, user: str, base_url: str | None = None) -> httpx.Client:
    client = stack.client(base_url)
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
    alice: httpx.Client, bob: httpx.Client, pipeline: str, size: int
) -> None:
    burst = [_submit(alice, pipeline)["id"] for _ in range(size)]
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


@pytest.mark.parametrize("size", BURSTS)
def test_a_burst_of_one_user_does_not_starve_another_limits_from_the_setting(
    alice: httpx.Client, bob: httpx.Client, size: int
) -> None:
    _a_burst_does_not_starve_a_single_job(alice, bob, "echo", size)


@pytest.mark.parametrize("size", BURSTS)
def test_a_burst_of_one_user_does_not_starve_another_limits_changed_at_runtime(
    alice: httpx.Client, bob: httpx.Client, root: httpx.Client, size: int
) -> None:
    changed = root.put("/limits", json={**SETTING, "queues": {"default": 1}})
    assert changed.status_code == 200, changed.text
    try:
        assert root.get("/limits").json()["queues"] == {"default": 1}
        _a_burst_does_not_starve_a_single_job(alice, bob, "arithmetic", size)
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


# --- a race of two APIs and two workers over concurrency keys ------------------------------

HIGH, LOW = 5, 0


@dataclass(frozen=True)
class Race:
    keys: dict[str, int]  # concurrency key -> its limit
    held: int  # jobs per key submitted while every key is held at 0: half HIGH, half LOW
    then: int  # jobs per key submitted (LOW) while those run
    seconds: float  # each job's sleep


SMALL_RACE = Race(keys={"race-a": 1, "race-b": 2, "race-c": 1}, held=4, then=2, seconds=0.3)
LARGE_RACE = Race(keys={f"big-{index}": 2 for index in range(10)}, held=50, then=50, seconds=0.05)


def _submit_through(clients: list[httpx.Client], bodies: list[dict[str, Any]]) -> list[str]:
    """Deal the bodies out to the clients in turn; each client submits its share from a
    thread of its own, all at once. The ids, per client in its order."""

    def share(index: int) -> list[str]:
        return [
            _submit(clients[index], "slow", **body)["id"] for body in bodies[index :: len(clients)]
        ]

    with ThreadPoolExecutor(len(clients)) as pool:
        return [job_id for ids in pool.map(share, range(len(clients))) for job_id in ids]


def _bodies(race: Race, count: int, priority: int) -> list[dict[str, Any]]:
    sleep = {"slow": {"seconds": race.seconds, "interval": 0.1}}
    return [
        {"parameters": sleep, "concurrency_key": key, "priority": priority}
        for _ in range(count)
        for key in race.keys
    ]


def _listed(client: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The jobs as GET /jobs lists them (newest first, so ours come first)."""
    wanted, found, cursor = set(ids), dict[str, dict[str, Any]](), None
    while wanted - found.keys():
        params: dict[str, str | int] = {"pipeline_name": "slow", "limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/jobs", params=params).json()
        found.update((job["id"], job) for job in page["items"] if job["id"] in wanted)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert found.keys() == wanted, "GET /jobs did not list every job of the race"
    return found


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans open at one instant; an end at the instant of a start counts first."""
    points = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in points:
        running += change
        most = max(most, running)
    return most


def _race(stack: Stack, second_api: str, root: httpx.Client, race: Race, *, timeout: float) -> None:
    """Both APIs take the submits; all four worker slots, both APIs' submits and the
    maintenance pass admit jobs at once. Then, from the jobs' recorded times:

    - no key ever ran more jobs at once than its limit. A job holds its key's slot from
      its admission until its end is committed. Its `started_at` (the claim) is later than
      its admission: `admitted_at` is stamped after the pass read the occupancy, and the
      job is published only once the pass committed. Its `completed_at` is stamped before
      the end is committed. So [started_at, completed_at] lies within the time the job held
      its slot, and counting these spans can miss an overlap of slots but never report
      one that did not happen, however late a claim comes on a loaded machine. (Every
      time is stamped by this machine's clock, on PostgreSQL too.)
    - every job ran exactly once (attempt 1, completed).
    - priority: a LOW job held with HIGH ones of its key is admitted only once none of
      those waits, and then at most limit - 1 of them still hold a slot: all the others
      have ended before it starts. With a limit of 1, every HIGH job ends before any LOW
      one starts.
    """
    with _client(stack, "alice") as first, _client(stack, "alice", second_api) as second:
        clients = [first, second]
        assert root.put("/limits", json={"concurrency_keys": {"*": 0}}).status_code == 200
        low: list[str] = []
        high: list[str] = []
        more: list[str] = []
        try:
            low = _submit_through(clients, _bodies(race, race.held // 2, LOW))
            high = _submit_through(clients, _bodies(race, race.held - race.held // 2, HIGH))
            held = _listed(first, low + high)
            assert {job["waiting_reason"] for job in held.values()} == {
                f"concurrency_key {key}: 0 of 0 running" for key in race.keys
            }
            released = root.put("/limits", json={"concurrency_keys": race.keys})
            assert released.status_code == 200, released.text
            more = _submit_through(clients, _bodies(race, race.then, LOW))
            deadline = time.monotonic() + timeout
            for job_id in low + high + more:
                left = max(deadline - time.monotonic(), 0.1)
                wait_for_status(clients[0], job_id, timeout=left, interval=0.2)
        finally:
            _cancel_the_rest(first, low + high + more)
            assert root.put("/limits", json=SETTING).status_code == 200
        jobs = _listed(second, low + high + more)
    runs = [(job["status"], job["attempt"]) for job in jobs.values()]
    assert set(runs) == {("completed", 1)}, runs
    span = {job_id: (_at(j["started_at"]), _at(j["completed_at"])) for job_id, j in jobs.items()}
    reached = set()
    for key, limit in race.keys.items():
        mine = [job_id for job_id, job in jobs.items() if job["concurrency_key"] == key]
        most = _most_at_once([span[job_id] for job_id in mine])
        assert most <= limit, f"{key}: {most} jobs ran at once, limit {limit}"
        if most == limit > 1:
            reached.add(key)
        highs = [span[job_id] for job_id in high if job_id in mine]
        for job_id in (job_id for job_id in low if job_id in mine):
            started = span[job_id][0]
            ended_before = sum(end <= started for _, end in highs)
            assert ended_before >= len(highs) - (limit - 1), (
                f"{key}: a low-priority job started when only {ended_before} of the "
                f"{len(highs)} high-priority ones had ended (limit {limit})"
            )
    assert reached, "no key with a limit above 1 ever reached it: the race tested little"


def test_two_apis_and_two_workers_never_run_more_than_a_keys_limit(
    stack: Stack, second_api: str, root: httpx.Client
) -> None:
    """18 jobs over 3 keys (limits 1, 2, 1) through two APIs, on four worker slots."""
    _race(stack, second_api, root, SMALL_RACE, timeout=180)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_apis_and_two_workers_never_run_more_than_a_keys_limit_at_scale(
    stack: Stack, second_api: str, root: httpx.Client
) -> None:
    """1,000 jobs over 10 keys, 2 per key (20 key slots, more than the 4 worker slots:
    admitted jobs also wait in the broker), through two APIs."""
    _race(stack, second_api, root, LARGE_RACE, timeout=1700)
