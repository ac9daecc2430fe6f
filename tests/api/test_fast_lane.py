"""The fast lane's submit: a plain POST is answered before routing, everything else is not,
and both answer alike."""

from __future__ import annotations

from fastapi import FastAPI

from tests.utils.asgi import TestClient

JOBS = "/api/v1/jobs"


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
