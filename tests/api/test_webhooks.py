"""Webhook endpoints: admins only, the secret shown once, bad URLs and events refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.application import create_app
from app.core.config import Settings
from app.ops.webhook_http import new_secret
from tests.utils.asgi import TestClient

ALICE, BOB, ROOT = "alice-key-1", "bob-key-2", "root-key-3"
USER, OTHER, ADMIN = ({"X-API-Key": key} for key in (ALICE, BOB, ROOT))
HOOK = "http://127.0.0.1:9/hook"
NOTIFY_SECRET = new_secret()


def _client(settings: Settings, **update: Any) -> TestClient:
    keyed = settings.model_copy(
        update={
            "api_keys": SecretStr(f"alice:{ALICE},bob:{BOB},root:{ROOT}"),
            "admin_users": ["root"],
            "webhook_allow_http": True,
            "webhook_allowed_hosts": ["127.0.0.1"],
            **update,
        }
    )
    return TestClient(create_app(keyed))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _client(settings, webhook_secret=SecretStr(NOTIFY_SECRET)) as test_client:
        yield test_client


def register(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/webhooks",
        json={"url": HOOK, "events": ["job.completed"], **body},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_admin_registers_and_sees_the_secret_once(client: TestClient) -> None:
    created = register(client, description="billing", events=["job.completed", "job.failed"])
    assert created["secret"].startswith("whsec_") and created["created_by"] == "root"
    assert created["events"] == ["job.completed", "job.failed"]
    path = f"/api/v1/webhooks/{created['id']}"
    listed = client.get("/api/v1/webhooks", headers=ADMIN).json()["items"]
    one = client.get(path, headers=ADMIN).json()
    assert [item["id"] for item in listed] == [created["id"]]
    assert one["description"] == "billing"
    for shown in (client.get("/api/v1/webhooks", headers=ADMIN).text, str(one)):
        assert created["secret"] not in shown and "secret" not in shown

    test = client.post(f"{path}/test", headers=ADMIN)
    assert test.status_code == 202
    assert test.json()["type"] == "webhook.test" and test.json()["id"].startswith("msg_")
    deliveries = client.get(f"{path}/deliveries", headers=ADMIN).json()["items"]
    assert [d["id"] for d in deliveries] == [test.json()["id"]]

    assert client.delete(path, headers=ADMIN).status_code == 204
    for method in ("get", "delete"):
        assert getattr(client, method)(path, headers=ADMIN).status_code == 404
    assert client.post(f"{path}/test", headers=ADMIN).status_code == 404
    assert client.get(f"{path}/deliveries", headers=ADMIN).status_code == 404


def test_only_admins_manage_webhooks(client: TestClient) -> None:
    created = register(client)
    path = f"/api/v1/webhooks/{created['id']}"
    attempts = [
        client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["job.failed"]}, headers=USER),
        client.get("/api/v1/webhooks", headers=USER),
        client.get(path, headers=USER),
        client.delete(path, headers=USER),
        client.post(f"{path}/test", headers=USER),
        client.get(f"{path}/deliveries", headers=USER),
    ]
    assert [response.status_code for response in attempts] == [403] * len(attempts)
    assert client.get("/api/v1/webhooks").status_code == 401


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "should match pattern"),
        ({"url": "file:///etc/passwd"}, "should match pattern"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "credentials"),
        ({"url": "https:///nohost"}, "should match pattern"),
        ({"url": "https://host:99999/x"}, "port"),
        ({"url": "https://host/x#frag"}, "fragment"),
        ({"url": "not a url"}, "should match pattern"),
        ({"events": ["job.exploded"]}, "job.started"),
        ({"events": []}, "at least 1"),
        ({"events": ["job.duration_warning"]}, "duration_warning_seconds"),
        ({"duration_warning_seconds": 0}, "greater than 0"),
        ({"secret": "mine"}, "Extra inputs"),
    ],
)
def test_malformed_bodies_are_refused(client: TestClient, body: dict[str, Any], says: str) -> None:
    response = client.post(
        "/api/v1/webhooks", json={"url": HOOK, "events": ["job.failed"], **body}, headers=ADMIN
    )
    assert response.status_code == 422
    assert says in response.text


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.2/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://10.0.0.1/x", "private"),
        ("http://[::1]:8080/x", "loopback"),
        ("http://no-such-host.invalid/x", "does not resolve"),
    ],
)
def test_addresses_the_gateway_may_not_call_are_refused(
    client: TestClient, url: str, says: str
) -> None:
    response = client.post(
        "/api/v1/webhooks", json={"url": url, "events": ["job.failed"]}, headers=ADMIN
    )
    assert response.status_code == 422
    assert says in response.json()["detail"]
    assert client.get("/api/v1/webhooks", headers=ADMIN).json()["items"] == []


def test_http_needs_the_setting(settings: Settings) -> None:
    with _client(settings, webhook_allow_http=False) as strict:
        response = strict.post(
            "/api/v1/webhooks", json={"url": HOOK, "events": ["job.failed"]}, headers=ADMIN
        )
    assert response.status_code == 422 and "https" in response.json()["detail"]


def test_notify_on_submit_and_the_job_delivery_log(client: TestClient) -> None:
    notify = {"url": HOOK, "events": ["job.cancelled"]}
    job = client.post(
        "/api/v1/jobs", json={"pipeline_name": "arithmetic", "notify": notify}, headers=USER
    )
    assert job.status_code == 202, job.text
    path = f"/api/v1/jobs/{job.json()['id']}"
    assert client.post(f"{path}/cancel", headers=USER).status_code == 202
    [delivery] = client.get(f"{path}/deliveries", headers=USER).json()["items"]
    assert delivery["type"] == "job.cancelled" and delivery["webhook_id"] is None
    assert delivery["url"] == HOOK and delivery["job_id"] == job.json()["id"]
    assert client.get(f"{path}/deliveries", headers=OTHER).status_code == 404
    assert client.get(f"{path}/deliveries", headers=ADMIN).status_code == 200

    refused = client.post(
        "/api/v1/jobs",
        json={"pipeline_name": "arithmetic", "notify": {**notify, "url": "http://10.0.0.1/x"}},
        headers=USER,
    )
    assert refused.status_code == 422 and "private" in refused.json()["detail"]


def test_notify_needs_the_gateway_secret(settings: Settings) -> None:
    with _client(settings) as unsigned:
        response = unsigned.post(
            "/api/v1/jobs",
            json={"pipeline_name": "arithmetic", "notify": {"url": HOOK, "events": ["job.failed"]}},
            headers=USER,
        )
        assert response.status_code == 422
        assert "WEBHOOK_SECRET" in response.json()["detail"]
        assert unsigned.get("/api/v1/jobs", headers=USER).json()["items"] == []
    with _client(settings, webhook_secret=SecretStr("whsec_short")) as malformed:
        response = malformed.post(
            "/api/v1/jobs",
            json={"pipeline_name": "arithmetic", "notify": {"url": HOOK, "events": ["job.failed"]}},
            headers=USER,
        )
    assert response.status_code == 422 and "whsec_short" not in response.text


def test_webhooks_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}",
        "/api/v1/webhooks/{webhook_id}/test",
        "/api/v1/webhooks/{webhook_id}/deliveries",
        "/api/v1/jobs/{job_id}/deliveries",
    ):
        assert path in paths
