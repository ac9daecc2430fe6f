"""What an attacker or a careless client tries, in-process: cross-site writes, foreign
Host headers, details for unauthenticated monitors, oversized error echoes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from app.application import create_app
from app.core.config import Settings
from app.schemas.pipelines import Pipeline
from app.services import build_core
from tests.utils.asgi import TestClient

JOBS = "/api/v1/jobs"
BODY = json.dumps({"pipeline_name": "arithmetic", "parameters": {"initial_value": 1}})
KEY = "k-" + "x" * 30


@pytest.fixture
def open_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def keyed_settings(settings: Settings) -> Settings:
    keyed = settings.model_copy(update={"api_keys": SecretStr(f"ops:{KEY}"), "allowed_hosts": []})
    core = build_core(keyed)  # a project report, so metrics and health have names to hide
    core.manager.record_project(
        queue="default",
        pipelines=[Pipeline(name="secret_pipeline", nodes=[])],
        project_path="/srv/private/project",
        kedro_version="1.7.0",
        worker="w1@private-host",
    )
    core.manager.record_worker(
        name="w1@private-host",
        hostname="private-host",
        queues=["default"],
        concurrency=1,
        pid=1,
        project_path="/srv/private/project",
        kedro_python="python",
        kedro_version="1.7.0",
        project_ok=True,
        project_error=None,
        runner_mode="cold",
    )
    core.manager.dispose()
    return keyed


@pytest.fixture
def keyed_client(keyed_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(keyed_settings)) as client:
        yield client


def _jobs(client: TestClient, **headers: str) -> int:
    return len(client.get(JOBS, headers=headers).json()["items"])


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
def test_bodies_a_page_can_send_without_preflight_are_refused(
    open_client: TestClient, content_type: str
) -> None:
    response = open_client.post(JOBS, content=BODY, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["detail"] == "send the request body as application/json"
    assert _jobs(open_client) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of the same host is the same site
        {"Origin": "http://testserver.evil.example", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_unsafe_requests_from_another_origin_are_refused(
    open_client: TestClient, headers: dict[str, str]
) -> None:
    response = open_client.post(
        JOBS, content=BODY, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "cross-site requests are refused"
    assert _jobs(open_client) == 0


def test_same_origin_pages_and_plain_clients_may_submit(open_client: TestClient) -> None:
    same_origin = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert open_client.post(JOBS, content=BODY, headers=same_origin).status_code == 202
    assert open_client.post(JOBS, content=BODY).status_code == 202
    assert (
        open_client.post(JOBS, content=BODY, headers={"Content-Type": "application/json"})
    ).status_code == 202
    assert _jobs(open_client) == 3


def test_a_foreign_host_header_is_refused_in_open_mode(open_client: TestClient) -> None:
    """DNS rebinding: a page on evil.example, resolved to 127.0.0.1, reads the API."""
    response = open_client.get(JOBS, headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert open_client.get(JOBS, headers={"Host": "127.0.0.1:8000"}).status_code == 200


def test_the_default_host_allowlist_is_the_bind_address_and_localhost(settings: Settings) -> None:
    defaults = settings.model_copy(update={"allowed_hosts": [], "host": "10.1.2.3"})
    assert defaults.trusted_hosts[:3] == ["10.1.2.3", "localhost", "127.0.0.1"]
    keyed = defaults.model_copy(update={"api_keys": SecretStr("a:b")})
    assert keyed.trusted_hosts == ["*"]  # a rebinding page has no key


def test_unauthenticated_health_names_no_host_path_or_version(keyed_client: TestClient) -> None:
    anonymous = keyed_client.get("/api/v1/health").json()
    text = json.dumps(anonymous)
    for private in ("private-host", "/srv/private", "1.7.0", "w1@"):
        assert private not in text, text
    assert set(anonymous["checks"]) == {"database", "broker", "workers", "kedro_project"}
    assert all(set(check) == {"ok"} for check in anonymous["checks"].values())
    known = keyed_client.get("/api/v1/health", headers={"X-API-Key": KEY}).json()
    assert "/srv/private/project" in json.dumps(known)


def test_unauthenticated_metrics_name_no_pipeline(
    keyed_client: TestClient, keyed_settings: Settings
) -> None:
    keyed_client.post(JOBS, json={"pipeline_name": "secret_pipeline"}, headers={"X-API-Key": KEY})
    anonymous = keyed_client.get("/metrics").text
    assert "secret_pipeline" not in anonymous
    assert 'gateway_jobs_submitted_total{pipeline="_all"} 1.0' in anonymous
    known = keyed_client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'gateway_jobs_submitted_total{pipeline="secret_pipeline"} 1.0' in known


def test_public_details_opts_in(keyed_settings: Settings) -> None:
    public = keyed_settings.model_copy(update={"public_details": True})
    with TestClient(create_app(public)) as client:
        assert "/srv/private/project" in client.get("/api/v1/health").text


def test_a_422_echoes_a_bounded_part_of_the_input(open_client: TestClient) -> None:
    body = {"pipeline_name": "arithmetic", "tags": ["t"] * 200_000}
    response = open_client.post(JOBS, json=body)
    assert response.status_code == 422
    assert len(response.content) < 4096, len(response.content)
    assert "characters in all" in response.text


def test_many_validation_errors_are_summed_up(open_client: TestClient) -> None:
    body = {"pipeline_name": "arithmetic", "tags": ["bad tag!"] * 500}
    response = open_client.post(JOBS, json=body)
    detail = response.json()["detail"]
    assert response.status_code == 422 and len(detail) <= 21
    assert len(response.content) < 16_384
