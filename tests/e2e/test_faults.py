"""Faults for real: cancel, timeouts, killed workers, a stopped Redis, a killed API, load."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.utils.postgres import database_url
from tests.utils.stack import (
    Stack,
    group_members,
    read_log,
    running_stack,
    submit,
    wait_for_status,
    wait_until,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.stacks(("sqlite", "cold"), ("postgresql", "warm")),
]

LOST_AFTER = 3.0


@pytest.fixture(scope="module")
def faults(
    database: str,
    runner_mode: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A stack of its own (database and runner mode from the module's combos): these
    tests kill its processes."""
    directory = tmp_path_factory.mktemp(f"faults-{database}-{runner_mode}")
    with running_stack(
        directory,
        database_url(request, database, directory, f"faults_{runner_mode}"),
        workers=1,
        RUNNER_MODE=runner_mode,
        WORKER_LOST_AFTER_SECONDS=str(LOST_AFTER),
        REDISPATCH_AFTER_SECONDS="2",
    ) as stack:
        yield stack


@pytest.fixture
def client(faults: Stack) -> Iterator[httpx.Client]:
    """A client on a stack with Redis, the API and at least one worker alive."""
    if faults.redis.process is None:
        faults.redis.start()
    if faults.api is None or not faults.api.alive():
        faults.start_api()
    faults.workers = [worker for worker in faults.workers if worker.alive()]
    if not faults.workers:
        faults.start_worker(name="w1")
    with faults.client() as http:
        yield http


def _child_pids(client: httpx.Client, job_id: str) -> list[int]:
    def pids() -> list[int] | None:
        match = re.search(r"children pids: (\d+) (\d+)", read_log(client, job_id))
        return [int(pid) for pid in match.groups()] if match else None

    return wait_until(pids, timeout=30, what="children to start")


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.mark.parametrize("runner", ["SequentialRunner", "ParallelRunner"])
def test_cancel_running_job_kills_the_whole_process_tree(client: httpx.Client, runner: str) -> None:
    job = submit(client, pipeline_name="children", runner=runner)
    children = _child_pids(client, job["id"])
    run_group = os.getpgid(children[0])  # the run's own process group, cold or warm
    assert len(group_members(run_group)) >= 3, "kedro and its two children should be running"

    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    done = wait_for_status(client, job["id"], timeout=10)

    assert done["status"] == "cancelled"
    assert not _alive(children), "the node's child processes outlived the cancel"
    assert not group_members(run_group), "a process of the run outlived the cancel"
    events = client.get(f"/jobs/{job['id']}/events").json()["items"]
    assert events[-1]["status"] == "cancelled" and "cancelled by" in events[-1]["reason"]
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 409


def test_cancelled_pending_job_never_starts(client: httpx.Client) -> None:
    blockers = [
        submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 30}}) for _ in range(2)
    ]  # fill the worker's two slots
    for blocker in blockers:
        wait_for_status(client, blocker["id"], {"running"}, timeout=30)
    waiting = submit(client, pipeline_name="arithmetic")
    assert client.post(f"/jobs/{waiting['id']}/cancel").json()["status"] == "cancelled"
    for blocker in blockers:
        client.post(f"/jobs/{blocker['id']}/cancel")
        wait_for_status(client, blocker["id"], timeout=10)
    # The worker is free again: a later job runs, and the cancelled one still has not.
    later = wait_for_status(client, submit(client, pipeline_name="arithmetic")["id"])
    assert later["status"] == "completed"
    cancelled = client.get(f"/jobs/{waiting['id']}").json()
    assert cancelled["status"] == "cancelled" and cancelled["attempt"] == 0
    assert cancelled["started_at"] is None and cancelled["output_bytes"] == 0
    statuses = [e["status"] for e in client.get(f"/jobs/{waiting['id']}/events").json()["items"]]
    assert statuses == ["pending", "cancelled"]


def test_timeout_fails_the_job_and_kills_its_process_group(client: httpx.Client) -> None:
    job = submit(
        client,
        pipeline_name="children",
        timeout_seconds=5,  # room for kedro to start its children on a loaded machine
        parameters={"children": {"seconds": 60}},
    )
    run_group = os.getpgid(_child_pids(client, job["id"])[0])
    done = wait_for_status(client, job["id"], timeout=20)
    assert done["status"] == "failed"
    assert "timed out after 5 s" in done["error_message"]
    assert 5 <= done["execution_time"] < 15
    assert not group_members(run_group)


def test_killed_worker_fails_its_job_as_worker_lost_and_leaves_no_orphan(
    faults: Stack, client: httpx.Client
) -> None:
    job = submit(client, pipeline_name="children")
    children = _child_pids(client, job["id"])
    run_group = os.getpgid(children[0])
    worker = faults.workers[0]
    assert worker.process is not None
    main = psutil.Process(worker.process.pid)
    tree = [main.pid, *(p.pid for p in main.children(recursive=True))]  # pool, warm server

    worker.kill(signal.SIGKILL)  # main process and pool, as a lost machine would
    failed = wait_for_status(client, job["id"], timeout=LOST_AFTER + 10)

    assert failed["status"] == "failed"
    assert "worker lost" in failed["error_message"]
    wait_until(
        lambda: not _alive(children) and not group_members(run_group),
        timeout=10,
        what="the kedro tree to die with its worker",
    )
    assert not _alive(tree)
    faults.start_worker(name="w1")  # the same name: it cleans up what it had claimed
    after = wait_for_status(client, submit(client, pipeline_name="arithmetic")["id"])
    assert after["status"] == "completed"


def test_submit_while_redis_is_down_runs_once_redis_is_back(
    faults: Stack, client: httpx.Client
) -> None:
    faults.redis.stop()
    response = client.post("/jobs", json={"pipeline_name": "arithmetic"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "pending"
    health = client.get("/health")
    assert health.status_code == 503 and not health.json()["checks"]["broker"]["ok"]

    faults.redis.start()
    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "completed" and done["attempt"] == 1


def test_message_lost_by_redis_is_dispatched_again(faults: Stack, client: httpx.Client) -> None:
    for worker in faults.workers:
        worker.kill(signal.SIGTERM)
    faults.workers.clear()
    job = submit(client, pipeline_name="arithmetic")
    redis.Redis(unix_socket_path=str(faults.redis.socket_path)).flushall()  # the message is gone
    faults.start_worker(name="w1")
    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "completed" and done["attempt"] == 1


def test_killing_the_api_mid_run_does_not_affect_the_job(
    faults: Stack, client: httpx.Client
) -> None:
    job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 3}})
    wait_for_status(client, job["id"], {"running"}, timeout=30)
    assert faults.api is not None
    faults.api.kill(signal.SIGKILL)
    faults.start_api()
    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "completed" and done["attempt"] == 1
    assert done["progress"]["completed_nodes"] == done["progress"]["total_nodes"] == 1


def test_redelivered_message_for_a_finished_job_does_nothing(
    faults: Stack, client: httpx.Client
) -> None:
    from app.broker.celery_app import RUN_JOB_TASK, create_celery
    from app.core.config import Settings

    done = wait_for_status(client, submit(client, pipeline_name="arithmetic")["id"])
    celery = create_celery(Settings(celery_broker_url=faults.redis.url))
    celery.send_task(RUN_JOB_TASK, args=[done["id"]], queue="default")
    celery.close()
    worker_log = faults.workers[0]
    wait_until(
        lambda: f"job {done['id']}: not claimable" in worker_log.log(),
        timeout=30,
        what="the duplicate to be skipped",
    )
    assert client.get(f"/jobs/{done['id']}").json() == done


def test_concurrent_idempotent_submits_create_one_job(client: httpx.Client) -> None:
    body = {"pipeline_name": "arithmetic", "parameters": {"initial_value": 3}}
    headers = {"Idempotency-Key": "retry-me-7"}
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: client.post("/jobs", json=body, headers=headers), range(16))
        )
    assert {r.status_code for r in responses} <= {200, 202}
    assert sum(r.status_code == 202 for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    job_id = responses[0].json()["id"]
    wait_for_status(client, job_id)
    again = client.post("/jobs", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "completed"
    other = client.post("/jobs", json={**body, "parameters": {"initial_value": 4}}, headers=headers)
    assert other.status_code == 409


@pytest.mark.stacks(("postgresql", "warm"))  # one stack: the rest would add minutes to CI
def test_200_jobs_from_20_clients_on_2_workers_each_run_exactly_once(
    faults: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    if len(faults.workers) < 2:
        faults.start_worker(name="w2")

    def submit_ten(index: int) -> list[str]:
        with faults.client() as own:
            return [
                submit(
                    own, pipeline_name="arithmetic", parameters={"initial_value": index * 10 + n}
                )["id"]
                for n in range(10)
            ]

    with ThreadPoolExecutor(20) as pool:
        ids = [job_id for batch in pool.map(submit_ten, range(20)) for job_id in batch]
    assert len(set(ids)) == 200

    def all_terminal() -> bool:
        page = client.get("/jobs", params={"limit": 100, "status": "pending"}).json()
        running = client.get("/jobs", params={"limit": 100, "status": "running"}).json()
        return not page["items"] and not running["items"]

    wait_until(all_terminal, timeout=600, interval=1, what="200 jobs to finish")
    workers = set()
    for job_id in ids:
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "completed" and job["attempt"] == 1, (job["error_message"], job)
        assert read_log(client, job_id).count("Running node: add_five") == 1
        workers.add(job["worker"])
    assert len(workers) == 2


def test_a_long_queue_is_not_mistaken_for_lost_messages(
    faults: Stack, client: httpx.Client
) -> None:
    """Published jobs still waiting in Redis are not re-published, however long they wait."""
    for worker in faults.workers:
        worker.kill(signal.SIGTERM)
    faults.workers.clear()
    broker = redis.Redis(unix_socket_path=str(faults.redis.socket_path))
    broker.flushall()
    ids = [submit(client, pipeline_name="arithmetic")["id"] for _ in range(3)]
    wait_until(lambda: broker.llen("default") == 3, timeout=10, what="three queued messages")
    # REDISPATCH_AFTER_SECONDS is 2 here: watch several maintenance passes go by.
    with pytest.raises(AssertionError, match="timed out"):
        wait_until(lambda: broker.llen("default") > 3, timeout=6, what="a duplicate message")
    faults.start_worker(name="w1")
    for job_id in ids:
        done = wait_for_status(client, job_id, timeout=60)
        assert done["status"] == "completed" and done["attempt"] == 1
