"""The fast lane's submit: a plain POST is answered before routing, everything else is not,
and both answer alike."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.schemas.jobs import JobStatus
from app.store import RunOutcome, RunProgress
from tests.utils.asgi import TestClient

JOBS = "/api/v1/jobs"
DONE = RunOutcome(
    status=JobStatus.completed, exit_code=0, execution_time=0.1, error_message=None, results={}
)


def _fast(app: FastAPI) -> float:
    value = app.state.registry.get_sample_value("gateway_fast_lane_requests_total")
    return float(value or 0.0)


def test_a_plain_submit_is_answered_by_the_fast_lane_as_the_endpoint_would(
    app: FastAPI, client: TestClient
) -> None:
    before = _fast(app)
    response = client.post(JOBS, json={"pipeline_name": "arithmetic", "parameters": {"x": 1}})
    assert response.status_code == 202
    assert _fast(app) == before + 1
    job = response.json()
    assert response.headers["location"] == f"{JOBS}/{job['id']}"
    assert response.headers["content-type"] == "application/json"
    assert job["parameters"] == {"x": 1} and job["status"] == "pending"
    assert client.get(f"{JOBS}/{job['id']}").json() == job


def test_an_idempotent_submit_takes_the_full_path(app: FastAPI, client: TestClient) -> None:
    before = _fast(app)
    body = {"pipeline_name": "arithmetic"}
    first = client.post(JOBS, json=body, headers={"Idempotency-Key": "k"})
    again = client.post(JOBS, json=body, headers={"Idempotency-Key": "k"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert _fast(app) == before


def test_an_invalid_body_is_refused_by_the_full_path_with_its_details(
    app: FastAPI, client: TestClient
) -> None:
    before = _fast(app)
    response = client.post(JOBS, json={"pipeline_name": "no spaces allowed"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "pipeline_name"]
    assert client.post(JOBS, content=b"{not json").status_code in (400, 422)
    assert _fast(app) == before


def test_a_refused_submit_gets_the_applications_own_error_answer(
    app: FastAPI, client: TestClient
) -> None:
    response = client.post(JOBS, json={"pipeline_name": "arithmetic", "queue": "gpu"})
    assert response.status_code == 422
    assert "unknown queue 'gpu'" in response.json()["detail"]


def test_a_pending_job_is_read_by_the_fast_lane_as_the_endpoint_reads_it(
    app: FastAPI, client: TestClient
) -> None:
    """Pending jobs are what pollers read most: published ones as they are, and one that
    waits for admission with why it waits and its place in line, the same body as the
    endpoint's (reached with a query parameter the endpoint ignores, which the fast lane
    leaves alone)."""
    published = client.post(JOBS, json={"pipeline_name": "arithmetic"}).json()
    limits = {"pipelines": {"arithmetic": 0}}
    assert client.put("/api/v1/limits", json=limits).status_code == 200
    waiting = client.post(JOBS, json={"pipeline_name": "arithmetic"}).json()
    assert waiting["waiting_reason"].startswith("pipeline arithmetic: ")
    for job in (published, waiting):
        before = _fast(app)
        fast = client.get(f"{JOBS}/{job['id']}")
        assert _fast(app) == before + 1
        full = client.get(f"{JOBS}/{job['id']}", params={"full": "1"})
        assert _fast(app) == before + 1
        assert fast.status_code == full.status_code == 200
        assert fast.json() == full.json()
        assert fast.json()["status"] == "pending"
    assert client.get(f"{JOBS}/{waiting['id']}").json()["position"] == 1
    assert client.get(f"{JOBS}/{published['id']}").json()["waiting_reason"] is None


def test_a_long_poll_is_answered_by_the_fast_lane_as_the_endpoint_would(
    app: FastAPI, client: TestClient
) -> None:
    pending = client.post(JOBS, json={"pipeline_name": "arithmetic"}).json()
    finished = _finished_job_with_output(app, client)
    for job_id, status in ((pending["id"], "pending"), (finished, "completed")):
        before = _fast(app)
        waited = client.get(f"{JOBS}/{job_id}", params={"wait": "0.05"})
        assert _fast(app) == before + 1
        assert waited.status_code == 200 and waited.json()["status"] == status
        assert waited.json() == client.get(f"{JOBS}/{job_id}", params={"full": "1"}).json()
    before = _fast(app)  # a repeated `wait`: the endpoint's to read as it does
    assert client.get(f"{JOBS}/{finished}?wait=1&wait=2").json()["status"] == "completed"
    assert _fast(app) == before


@pytest.mark.parametrize("query", ["wait=0", "wait=61", "wait=abc", "wait=", "wait=nan"])
def test_a_wait_the_endpoint_refuses_is_refused_by_the_full_path(
    app: FastAPI, client: TestClient, query: str
) -> None:
    job = client.post(JOBS, json={"pipeline_name": "arithmetic"}).json()
    before = _fast(app)
    response = client.get(f"{JOBS}/{job['id']}?{query}")
    assert _fast(app) == before
    assert response.status_code == 422, response.text


def _finished_job_with_output(app: FastAPI, client: TestClient) -> str:
    job = client.post(JOBS, json={"pipeline_name": "arithmetic"}).json()
    manager = app.state.manager
    claim = manager.claim_job(job_id=job["id"], worker="w")
    manager.append_output(
        job_id=job["id"],
        attempt=claim.attempt,
        offset=0,
        data=b"one\ntwo\n",
        progress=RunProgress(),
    )
    manager.finish_job(job_id=job["id"], attempt=claim.attempt, outcome=DONE)
    return str(job["id"])


def test_a_plain_follow_is_streamed_by_the_fast_lane_as_the_endpoint_would(
    app: FastAPI, client: TestClient
) -> None:
    job_id = _finished_job_with_output(app, client)
    url = f"{JOBS}/{job_id}/logs"
    before = _fast(app)
    fast = client.get(url, params={"follow": "true"})
    assert _fast(app) == before + 1
    full = client.get(url, params={"follow": "yes"})  # a spelling the lane leaves to FastAPI
    assert _fast(app) == before + 1
    assert fast.status_code == full.status_code == 200
    assert fast.headers["content-type"] == full.headers["content-type"]
    assert fast.headers["content-type"].startswith("text/event-stream")
    assert fast.text == full.text
    assert "data: one" in fast.text and "event: end" in fast.text
    resumed = client.get(url, params={"follow": "true"}, headers={"Last-Event-ID": "4"})
    assert "data: one" not in resumed.text and "data: two" in resumed.text


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"follow": "true", "offset": "abc"}, {"Last-Event-ID": "4"}),
        ({"follow": "true", "offset": str(2**62 + 1)}, {}),
        ({"follow": "true"}, {"Last-Event-ID": ""}),
        ({"follow": "true"}, {"Last-Event-ID": "4\n"}),
    ],
)
def test_a_follow_the_endpoint_refuses_is_refused_alike(
    app: FastAPI, client: TestClient, params: dict[str, str], headers: dict[str, str]
) -> None:
    job_id = _finished_job_with_output(app, client)
    before = _fast(app)
    response = client.get(f"{JOBS}/{job_id}/logs", params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert _fast(app) == before
