"""Reruns and retries for real: Redis, two Celery workers, the API, `kedro run`."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.utils.postgres import database_url
from tests.utils.stack import Stack, read_log, running_stack, submit, wait_for_status, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.stacks(("sqlite", "cold"), ("postgresql", "warm"))]

LOST_AFTER = 3.0
FAIL = {"resume": {"fail": True}}
FIXED = {"resume": {"fail": False}}


@pytest.fixture(scope="module")
def reruns(
    database: str,
    runner_mode: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A stack of its own with two workers: one test kills a worker."""
    directory = tmp_path_factory.mktemp(f"reruns-{database}-{runner_mode}")
    with running_stack(
        directory,
        database_url(request, database, directory, f"reruns_{runner_mode}"),
        workers=2,
        RUNNER_MODE=runner_mode,
        WORKER_LOST_AFTER_SECONDS=str(LOST_AFTER),
        # Runs keep their run-config in TMPDIR: a private one, so that no other gateway
        # on this machine sweeping stale job directories from /tmp can take it away.
        TMPDIR=str(directory),
    ) as stack:
        yield stack


@pytest.fixture
def client(reruns: Stack) -> Iterator[httpx.Client]:
    """A client once the workers have reported the project (reruns need its nodes)."""
    with reruns.client() as http:
        wait_until(
            lambda: http.get("/pipelines").json()["refreshed_at"],
            timeout=60,
            what="the project snapshot",
        )
        yield http


def _events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/jobs/{job_id}/events").json()["items"]
    return items


def _ran(log: str) -> list[str]:
    return re.findall(r"Running node: (\w+)", log)


def _rerun(client: httpx.Client, job_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/jobs/{job_id}/rerun", json=body)
    assert response.status_code == 202, response.text
    rerun: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{rerun['id']}"
    assert rerun["rerun_of"] == job_id
    return rerun


def test_rerun_from_failure_runs_only_the_unfinished_nodes(client: httpx.Client) -> None:
    failed = wait_for_status(
        client, submit(client, pipeline_name="resumable", parameters=FAIL)["id"]
    )
    assert failed["status"] == "failed"
    assert failed["progress"]["completed_node_names"] == ["first_step", "second_step"], read_log(
        client, failed["id"]
    )

    rerun = _rerun(client, failed["id"], parameters=FIXED)
    assert rerun["from_nodes"] == ["third_step"]  # reads the persisted resume_prepared
    assert rerun["planned_nodes"] == ["third_step", "fourth_step"]
    done = wait_for_status(client, rerun["id"])
    log = read_log(client, rerun["id"])
    assert done["status"] == "completed", log
    assert _ran(log) == ["third_step", "fourth_step"]  # the first half does not run again
    assert "RESUME RESULT [10, 11, 12]" in log


def test_rerun_after_a_memory_dataset_restarts_from_its_producer(client: httpx.Client) -> None:
    job = submit(client, pipeline_name="memory_resume", parameters=FAIL)
    failed = wait_for_status(client, job["id"])
    assert failed["progress"]["completed_node_names"] == ["load_step", "produce_step"]

    rerun = _rerun(client, failed["id"], **{"from": "failure", "parameters": FIXED})
    # consume_step read resume_produced, a memory dataset gone with the failed run.
    assert rerun["from_nodes"] == ["produce_step"]
    done = wait_for_status(client, rerun["id"])
    log = read_log(client, rerun["id"])
    assert done["status"] == "completed", log
    assert _ran(log) == ["produce_step", "consume_step", "report_step"]


def test_rerun_from_start_runs_everything_again(client: httpx.Client) -> None:
    failed = wait_for_status(
        client, submit(client, pipeline_name="resumable", parameters=FAIL)["id"]
    )
    rerun = _rerun(client, failed["id"], **{"from": "start", "parameters": FIXED})
    assert rerun["from_nodes"] == [] and rerun["planned_nodes"] is None
    done = wait_for_status(client, rerun["id"])
    assert done["status"] == "completed"
    assert _ran(read_log(client, rerun["id"])) == [
        "first_step",
        "second_step",
        "third_step",
        "fourth_step",
    ]


def test_rerun_refusals(client: httpx.Client) -> None:
    running = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 30}})
    response = client.post(f"/jobs/{running['id']}/rerun", json={})
    assert response.status_code == 409, response.text
    client.post(f"/jobs/{running['id']}/cancel")

    completed = wait_for_status(client, submit(client, pipeline_name="arithmetic")["id"])
    response = client.post(f"/jobs/{completed['id']}/rerun", json={"from": "failure"})
    assert response.status_code == 422
    assert "nothing to resume" in response.json()["detail"]

    failed = wait_for_status(
        client, submit(client, pipeline_name="resumable", parameters=FAIL)["id"]
    )
    response = client.post(
        f"/jobs/{failed['id']}/rerun", json={"from": "failure", "from_nodes": ["first_step"]}
    )
    assert response.status_code == 422 and "from_nodes" in response.json()["detail"]
    response = client.post(f"/jobs/{failed['id']}/rerun", json={"from": "middle"})
    assert response.status_code == 422


def test_submit_refuses_nodes_and_tags_the_pipeline_does_not_have(client: httpx.Client) -> None:
    response = client.post("/jobs", json={"pipeline_name": "arithmetic", "node_names": ["nope"]})
    assert response.status_code == 422
    assert "node_names: 'nope'" in response.json()["detail"]
    response = client.post(
        "/jobs", json={"pipeline_name": "arithmetic", "tags": ["gone"], "to_nodes": ["x"]}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "to_nodes: 'x'" in detail and "tags: 'gone'" in detail


def _worker_named(stack: Stack, hostname: str) -> int:
    name = hostname.split("@", 1)[0]
    for index, worker in enumerate(stack.workers):
        if worker.log_path.name == f"worker-{name}.log":
            return index
    raise AssertionError(f"no worker {hostname}")


def test_killed_worker_retries_on_another_worker_without_a_duplicate_run(
    reruns: Stack, client: httpx.Client
) -> None:
    job = submit(
        client,
        pipeline_name="slow",
        parameters={"slow": {"seconds": 6, "interval": 0.2}},
        retry={"max_attempts": 2, "on": ["worker_lost"], "delay_seconds": 0},
    )
    assert job["retry"] == {
        "max_attempts": 2,
        "on": ["worker_lost"],
        "delay_seconds": 0,
        "backoff": 2.0,
        "strategy": "all",
    }
    running = wait_for_status(client, job["id"], {"running"}, timeout=30)
    wait_until(lambda: "slow: 1." in read_log(client, job["id"]), timeout=30, what="progress")
    index = _worker_named(reruns, running["worker"])
    victim = reruns.workers.pop(index)
    victim_name = victim.log_path.stem.removeprefix("worker-")
    victim.kill(signal.SIGKILL)

    done = wait_for_status(client, job["id"], timeout=LOST_AFTER + 60)
    log = read_log(client, job["id"])
    assert done["status"] == "completed", log
    assert done["attempt"] == 2 and done["worker"] != running["worker"]
    attempts = done["results"]["attempts"]
    assert [(a["attempt"], a["failure"], a["worker"]) for a in attempts] == [
        (1, "worker_lost", running["worker"]),
        (2, None, done["worker"]),
    ]
    events = [(e["status"], e["attempt"]) for e in _events(client, job["id"])]
    assert events == [
        ("pending", 0),
        ("running", 1),
        ("pending", 1),
        ("running", 2),
        ("completed", 2),
    ]
    assert "worker lost" in _events(client, job["id"])[2]["reason"]
    assert log.count("===== kedro-gateway: attempt 1 of 2") == 1
    assert log.count("===== kedro-gateway: attempt 2 of 2") == 1
    assert log.count("slow done after") == 1  # attempt 1 never finished
    reruns.start_worker(name=victim_name)


def test_timeout_retries_after_the_delay(client: httpx.Client) -> None:
    job = submit(
        client,
        pipeline_name="slow",
        parameters={"slow": {"seconds": 30}},
        timeout_seconds=1,
        retry={"max_attempts": 2, "on": ["timeout"], "delay_seconds": 2},
    )
    waiting = wait_until(
        lambda: (
            (j := client.get(f"/jobs/{job['id']}").json())["attempt"] == 1
            and j["status"] == "pending"
            and j
        ),
        timeout=30,
        what="the job waiting for its second attempt",
    )
    assert "timed out" in waiting["error_message"]
    retry_at = datetime.fromisoformat(waiting["next_attempt_at"])
    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "failed" and done["attempt"] == 2  # timed out twice
    events = _events(client, job["id"])
    scheduled = datetime.fromisoformat(events[2]["at"])
    second_start = datetime.fromisoformat(events[3]["at"])
    assert (retry_at - scheduled).total_seconds() == pytest.approx(2, abs=0.05)
    assert second_start >= retry_at
    assert [a["failure"] for a in done["results"]["attempts"]] == ["timeout", "timeout"]


def test_a_failure_not_listed_ends_the_job_at_once(client: httpx.Client) -> None:
    job = submit(
        client, pipeline_name="fail", retry={"max_attempts": 3, "on": ["worker_lost", "timeout"]}
    )
    done = wait_for_status(client, job["id"])
    assert done["status"] == "failed" and done["attempt"] == 1
    assert done["next_attempt_at"] is None
    assert [e["status"] for e in _events(client, job["id"])] == ["pending", "running", "failed"]


def test_a_from_failure_retry_resumes_where_the_attempt_broke(client: httpx.Client) -> None:
    job = submit(
        client,
        pipeline_name="resumable",
        parameters=FAIL,
        retry={"max_attempts": 2, "on": ["failed"], "delay_seconds": 0, "strategy": "from_failure"},
    )
    done = wait_for_status(client, job["id"], timeout=60)
    log = read_log(client, job["id"])
    assert done["status"] == "failed" and done["attempt"] == 2, log
    assert done["resume_from"] == ["third_step"]
    assert done["planned_nodes"] == ["third_step", "fourth_step"]
    assert "attempt 2 of 2 on" in log and "resuming from third_step" in log
    second = log.split("===== kedro-gateway: attempt 2 of 2")[1]
    assert _ran(second) == ["third_step"]
