"""API keys: who may call, and whose jobs each caller sees."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from app.api.security import InvalidKeyConfig, KeyRing
from app.application import create_app
from app.core.config import Settings
from tests.utils.asgi import TestClient

ALICE, BOB, ROOT = "alice-key-1", "bob-key-2", "root-key-3"
BOB_DIGEST = hashlib.sha256(BOB.encode()).hexdigest()


def _headers(key: str, style: str = "bearer") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}


@pytest.fixture
def client(settings: Settings, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient]:
    keyed = settings.model_copy(
        update={
            "api_keys": SecretStr(f"alice:{ALICE},bob:sha256:{BOB_DIGEST},root:{ROOT}"),
            "admin_users": ["root"],
        }
    )
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(keyed)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs",
        "/api/v1/pipelines",
        "/api/v1/workers",
        "/api/v1/jobs/2b1c0a52-2f0a-4b7e-8d0e-0c5f0b1b7d11",
    ],
)
def test_endpoints_need_a_key(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.get(path, headers=_headers("wrong")).status_code == 401
    assert client.post("/api/v1/jobs", json={"pipeline_name": "x"}).status_code == 401


def test_probes_and_metrics_stay_open(client: TestClient) -> None:
    assert client.get("/api/v1/health/live").status_code == 200
    assert client.get("/api/v1/health").status_code in {200, 503}
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_users_see_only_their_own_jobs_and_admins_see_all(client: TestClient, style: str) -> None:
    alice, bob, root = (_headers(k, style) for k in (ALICE, BOB, ROOT))
    job = client.post("/api/v1/jobs", json={"pipeline_name": "arithmetic"}, headers=alice).json()
    path = f"/api/v1/jobs/{job['id']}"
    assert job["user_id"] == "alice"
    assert client.get(path, headers=alice).status_code == 200
    assert client.get(path, headers=root).json()["user_id"] == "alice"
    for suffix in ("", "/logs", "/events"):
        assert client.get(path + suffix, headers=bob).status_code == 404
    assert client.post(path + "/cancel", headers=bob).status_code == 404
    assert client.get("/api/v1/jobs", headers=bob).json()["items"] == []
    assert [j["id"] for j in client.get("/api/v1/jobs", headers=root).json()["items"]] == [
        job["id"]
    ]
    assert client.post(path + "/cancel", headers=alice).json()["status"] == "cancelled"


def test_same_idempotency_key_is_per_user(client: TestClient) -> None:
    body = {"pipeline_name": "arithmetic"}
    first = client.post(
        "/api/v1/jobs", json=body, headers={**_headers(ALICE), "Idempotency-Key": "k1"}
    )
    other = client.post(
        "/api/v1/jobs", json=body, headers={**_headers(BOB), "Idempotency-Key": "k1"}
    )
    assert first.status_code == other.status_code == 202
    assert first.json()["id"] != other.json()["id"]


def test_refresh_needs_an_admin_key(client: TestClient) -> None:
    refused = client.post("/api/v1/pipelines/refresh", headers=_headers(ALICE))
    assert refused.status_code == 403
    allowed = client.post("/api/v1/pipelines/refresh", headers=_headers(ROOT))
    assert allowed.status_code == 503  # the fixture's broker is absent; the right was granted
    assert "broker" in allowed.json()["detail"]


def test_keys_never_reach_logs_or_responses(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    for key in (ALICE, BOB, ROOT, "not-a-key"):
        response = client.get("/api/v1/jobs", headers=_headers(key))
        assert key not in response.text
    text = caplog.text + repr(client.app.state.settings)  # type: ignore[attr-defined]
    for key in (ALICE, BOB, ROOT, "not-a-key"):
        assert key not in text


def test_open_api_warns_at_start(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(settings)) as open_client:
        assert open_client.get("/api/v1/jobs").status_code == 200
    assert "API_KEYS is not set" in caplog.text
    assert Settings(_env_file=None).host == "127.0.0.1"  # type: ignore[call-arg]


@pytest.mark.parametrize("config", ["alice", ":key", "al ice:key", "a:b,c"])
def test_malformed_key_config_is_refused_without_echoing_keys(config: str) -> None:
    with pytest.raises(InvalidKeyConfig) as raised:
        KeyRing.parse(config, [])
    assert "key" not in str(raised.value).replace("'user:key'", "")
