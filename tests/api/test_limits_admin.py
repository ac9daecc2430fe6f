"""GET/PUT /limits: admins only, validated, stored in the database; 429 over the pending cap."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from app.application import create_app
from app.core.config import Settings
from tests.utils.asgi import TestClient

ALICE, ROOT = "alice-key-1", "root-key-3"
LIMITS = {
    "queues": {"default": 4},
    "pipelines": {"train": 1},
    "users": {"*": 2, "alice": 3},
    "concurrency_keys": {"*": 1, "data/model.pkl": 2},
    "max_pending_per_user": 2,
}


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"api_keys": SecretStr(f"alice:{ALICE},root:{ROOT}"), "admin_users": ["root"]}
    )


@pytest.fixture
def client(keyed: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(keyed)) as test_client:
        yield test_client


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_limits_need_a_key_and_an_admin(client: TestClient) -> None:
    assert client.get("/api/v1/limits").status_code == 401
    assert client.put("/api/v1/limits", json=LIMITS).status_code == 401
    assert client.get("/api/v1/limits", headers=_as(ALICE)).status_code == 403
    refused = client.put("/api/v1/limits", json=LIMITS, headers=_as(ALICE))
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert client.get("/api/v1/limits", headers=_as(ROOT)).json() == {
        "queues": {},
        "pipelines": {},
        "users": {},
        "concurrency_keys": {},
        "max_pending_per_user": None,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"pipelines": {"train": -1}},
        {"pipelines": {"bad name": 1}},
        {"queues": {"default": "many"}},
        {"users": {"a:b": 1}},
        {"concurrency_keys": {"a key": 1}},
        {"max_pending_per_user": 0},
        {"pools": {}},
        [],
    ],
)
def test_invalid_limits_are_422_and_change_nothing(client: TestClient, body: object) -> None:
    response = client.put("/api/v1/limits", json=body, headers=_as(ROOT))
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert client.get("/api/v1/limits", headers=_as(ROOT)).json()["pipelines"] == {}


def test_limits_persist_across_a_restart_and_the_setting_does_not_override_them(
    keyed: Settings,
) -> None:
    with TestClient(create_app(keyed)) as first:
        saved = first.put("/api/v1/limits", json=LIMITS, headers=_as(ROOT))
        assert saved.status_code == 200 and saved.json() == LIMITS
    restarted = keyed.model_copy(update={"limits": '{"pipelines": {"train": 9}}'})
    with TestClient(create_app(restarted)) as second:
        assert second.get("/api/v1/limits", headers=_as(ROOT)).json() == LIMITS


def test_the_setting_gives_the_initial_limits(keyed: Settings) -> None:
    seeded = keyed.model_copy(update={"limits": '{"pipelines": {"train": 1}}'})
    with TestClient(create_app(seeded)) as client:
        assert client.get("/api/v1/limits", headers=_as(ROOT)).json()["pipelines"] == {"train": 1}


def test_submit_fields_and_the_pending_cap(client: TestClient) -> None:
    limits = {"pipelines": {"arithmetic": 0}, "max_pending_per_user": 2}
    assert client.put("/api/v1/limits", json=limits, headers=_as(ROOT)).status_code == 200
    body = {"pipeline_name": "arithmetic", "priority": 5, "concurrency_key": "data/out.csv"}
    first = client.post("/api/v1/jobs", json=body, headers=_as(ALICE))
    assert first.status_code == 202, first.text
    job = first.json()
    assert (job["priority"], job["concurrency_key"]) == (5, "data/out.csv")
    assert (job["waiting_reason"], job["position"]) == ("pipeline arithmetic: 0 of 0 running", 1)
    assert client.post("/api/v1/jobs", json=body, headers=_as(ALICE)).status_code == 202
    refused = client.post("/api/v1/jobs", json=body, headers=_as(ALICE))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "max_pending_per_user" in refused.json()["detail"]
    listed = client.get("/api/v1/jobs", headers=_as(ALICE)).json()["items"]
    assert len(listed) == 2
    assert {item["position"] for item in listed} == {1, 2}
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=_as(ALICE))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert client.post("/api/v1/jobs", json=body, headers=_as(ALICE)).status_code == 202


@pytest.mark.parametrize(
    "field",
    [{"priority": 1.5}, {"priority": 10**9}, {"concurrency_key": "*"}, {"concurrency_key": ""}],
)
def test_invalid_submit_fields_are_422(client: TestClient, field: dict[str, object]) -> None:
    body = {"pipeline_name": "arithmetic", **field}
    assert client.post("/api/v1/jobs", json=body, headers=_as(ALICE)).status_code == 422
