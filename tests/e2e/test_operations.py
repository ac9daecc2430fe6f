"""Operations: health, workers on two queues and two projects, metrics, JSON logs."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import EXAMPLE_PROJECT
from tests.utils.stack import Stack, running_stack, submit, wait_for_status, wait_until

pytestmark = pytest.mark.e2e

WORKER_SECRET = "topsecret-key-9f2c"
EXTRA_PIPELINE = '''

def register_pipelines() -> dict[str, Pipeline]:  # noqa: F811
    """The demo's pipelines plus one only this copy has."""
    registered = _demo_pipelines()
    registered["only_here"] = registered["arithmetic"]
    return registered
'''


def _second_project(directory: Path) -> Path:
    """A copy of the demo project with one more pipeline, `only_here`."""
    project = directory / "other_project"
    shutil.copytree(EXAMPLE_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    registry = project / "src" / "demo_project" / "pipeline_registry.py"
    source = registry.read_text().replace("def register_pipelines(", "def _demo_pipelines(")
    registry.write_text(source + EXTRA_PIPELINE)
    return project


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two queues served by two workers with two different projects; JSON logs."""
    directory = tmp_path_factory.mktemp("ops")
    with running_stack(
        directory,
        f"sqlite:///{directory / 'jobs.db'}",
        workers=0,
        LOG_FORMAT="json",
        WORKER_LOST_AFTER_SECONDS="3",
    ) as stack:
        stack.start_worker(name="main", API_KEYS=f"ops:{WORKER_SECRET}", ADMIN_USERS="ops")
        stack.start_worker(
            name="other", queues="other", KEDRO_PROJECT_PATH=str(_second_project(directory))
        )
        with stack.client() as http:
            wait_until(
                lambda: len(http.get("/workers").json()["items"]) == 2,
                timeout=30,
                what="both workers to announce themselves",
            )
        yield stack


@pytest.fixture
def client(ops: Stack) -> Iterator[httpx.Client]:
    if ops.redis.process is None:
        ops.redis.start()
    with ops.client() as http:
        wait_until(
            lambda: http.get("/health").json()["checks"]["broker"]["ok"],
            timeout=30,
            what="the broker to answer",
        )
        yield http


def test_workers_on_two_queues_with_their_projects(client: httpx.Client) -> None:
    workers = {w["name"].split("@")[0]: w for w in client.get("/workers").json()["items"]}
    assert workers["main"]["queues"] == ["default"] and workers["other"]["queues"] == ["other"]
    assert all(w["alive"] and w["project_ok"] and w["kedro_version"] for w in workers.values())
    assert workers["other"]["project_path"].endswith("other_project")


def test_pipelines_are_listed_and_validated_per_queue(client: httpx.Client) -> None:
    default = {p["name"] for p in client.get("/pipelines").json()["items"]}
    other = client.get("/pipelines", params={"queue": "other"}).json()
    assert "only_here" not in default and "arithmetic" in default
    assert "only_here" in {p["name"] for p in other["items"]} and other["refreshed_at"]
    node = client.get("/pipelines/arithmetic").json()["nodes"][0]
    assert node == {
        "name": "add_five",
        "func": "add_five",
        "inputs": ["params:initial_value"],
        "outputs": ["plus_five"],
        "tags": ["first"],
    }
    assert client.get("/pipelines/nope").status_code == 404

    refused = client.post("/jobs", json={"pipeline_name": "only_here"})
    assert refused.status_code == 422
    assert "only_here" in refused.json()["detail"] and "arithmetic" in refused.json()["detail"]
    unknown_queue = client.post("/jobs", json={"pipeline_name": "arithmetic", "queue": "nowhere"})
    assert unknown_queue.status_code == 422 and "nowhere" in unknown_queue.json()["detail"]

    job = submit(client, pipeline_name="only_here", queue="other")
    done = wait_for_status(client, job["id"])
    assert done["status"] == "completed" and done["worker"].startswith("other@")
    assert client.post("/pipelines/refresh", params={"queue": "other"}).status_code == 202


def _metrics(client: httpx.Client) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = httpx.get(
        f"{client.base_url.scheme}://{client.base_url.host}:{client.base_url.port}/metrics"
    ).text
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_move_when_a_job_completes(client: httpx.Client) -> None:
    finished = (("pipeline", "arithmetic"), ("status", "completed"))
    histogram = (("le", "+Inf"), ("pipeline", "arithmetic"))
    before = _metrics(client)
    done = wait_for_status(client, submit(client, pipeline_name="arithmetic")["id"])
    after = _metrics(client)
    assert done["status"] == "completed"
    assert after["gateway_jobs_finished_total"][finished] == (
        before.get("gateway_jobs_finished_total", {}).get(finished, 0) + 1
    )
    assert after["gateway_job_duration_seconds_bucket"][histogram] == (
        before.get("gateway_job_duration_seconds_bucket", {}).get(histogram, 0) + 1
    )
    assert after["gateway_workers_live"][(("queue", "default"),)] == 1
    assert after["gateway_workers_live"][(("queue", "other"),)] == 1
    assert (("queue", "default"),) in after["gateway_queue_depth"]
    assert any(key.startswith("gateway_http_request") for key in after)


def test_json_log_lines_about_a_job_carry_its_id(ops: Stack, client: httpx.Client) -> None:
    job = submit(client, pipeline_name="arithmetic")
    wait_for_status(client, job["id"])
    records = []
    for line in ops.workers[0].log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    about_job = [r for r in records if r.get("job_id") == job["id"]]
    assert about_job, "no JSON record carried the job id"
    assert any("starting" in r["message"] for r in about_job)


def test_health_names_the_broker_when_redis_stops_and_recovers(
    ops: Stack, client: httpx.Client
) -> None:
    ops.redis.stop()
    started = time.monotonic()
    response = client.get("/health")
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and not body["checks"]["broker"]["ok"]
    assert body["checks"]["database"]["ok"]
    ops.redis.start()
    wait_until(
        lambda: client.get("/health").status_code == 200, timeout=30, what="health to recover"
    )


def test_health_reports_missing_workers_and_a_missing_project(
    ops: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    broken = ops.start_worker(
        name="broken", queues="broken", KEDRO_PROJECT_PATH=str(tmp_path / "missing")
    )

    def project_failure() -> dict[str, Any] | None:
        body = client.get("/health").json()
        check = body["checks"]["kedro_project"]
        return body if not check["ok"] and "broken@" in check.get("error", "") else None

    body = wait_until(project_failure, timeout=30, what="the missing project to be reported")
    assert "does not exist" in json.dumps(body["checks"]["kedro_project"])
    broken.kill()  # SIGKILL: its heartbeat goes stale after WORKER_LOST_AFTER_SECONDS

    def workers_failure() -> dict[str, object] | None:
        response = client.get("/health")
        check = response.json()["checks"]["workers"]
        return check if response.status_code == 503 and "broken" in check.get("error", "") else None

    wait_until(workers_failure, timeout=30, what="the queue without a live worker")


def test_kedro_runs_see_no_gateway_secret(client: httpx.Client) -> None:
    job = submit(client, pipeline_name="environ")
    done = wait_for_status(client, job["id"])
    log = client.get(f"/jobs/{job['id']}/logs").json()["data"]
    line = next(line for line in log.split("\n") if line.startswith("ENVIRON "))
    environ = json.loads(line.removeprefix("ENVIRON "))
    assert done["status"] == "completed"
    assert WORKER_SECRET not in line
    for name in ("API_KEYS", "ADMIN_USERS", "DATABASE_URL", "CELERY_BROKER_URL"):
        assert name not in environ
    # Kedro's bootstrap sets PYTHONPATH to the project's src; nothing inherited is kept.
    assert environ.get("PYTHONPATH", "").split(":")[0].endswith("src")
    assert environ["KEDRO_DISABLE_TELEMETRY"] == "1"
