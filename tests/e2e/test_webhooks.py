"""End to end: real API, Redis, workers and `kedro run`, and a real receiver that verifies
every delivery with the `standardwebhooks` library."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.ops.webhook_http import new_secret
from app.ops.webhooks import backoff
from tests.utils.postgres import database_url
from tests.utils.receiver import Receiver, receiving
from tests.utils.stack import Stack, running_stack, submit, wait_for_status, wait_until

pytestmark = pytest.mark.e2e

NOTIFY_SECRET = new_secret()
OUTAGE_SECONDS = 60.0
# Backoff of the outage test: 1, 2, 4, then every 8 s, so about ten attempts in the minute.
OUTAGE_RETRY = Settings(
    webhook_retry_base_seconds=1,
    webhook_retry_max_seconds=8,
    _env_file=None,  # type: ignore[call-arg]
)


def _receiver_env(*, retry_base: float, retry_max: float) -> dict[str, str]:
    """Settings for a stack that delivers to the test's receiver on 127.0.0.1 over http."""
    return {
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_SECRET": NOTIFY_SECRET,
        "WEBHOOK_RETRY_BASE_SECONDS": str(retry_base),
        "WEBHOOK_RETRY_MAX_SECONDS": str(retry_max),
        "WEBHOOK_TIMEOUT_SECONDS": "2",
    }


@pytest.fixture(scope="module")
def hook_stack(
    database: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp(f"webhooks-{database}")
    with running_stack(
        directory,
        database_url(request, database, directory, "webhooks"),
        workers=1,
        **_receiver_env(retry_base=0.2, retry_max=1),
    ) as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as started:
        yield started


def by_type(received: list[tuple[str, dict[str, Any]]], job_id: str) -> dict[str, list[str]]:
    """Webhook ids per event type of one job's verified deliveries."""
    found: dict[str, list[str]] = {}
    for message_id, body in received:
        if body["data"].get("id") == job_id:
            found.setdefault(body["type"], []).append(message_id)
    return found


def test_started_and_completed_arrive_in_order_and_verified(
    hook_stack: Stack, receiver: Receiver
) -> None:
    with hook_stack.client() as client:
        created = client.post(
            "/webhooks",
            json={"url": receiver.url, "events": ["job.started", "job.completed"]},
        ).json()
        try:
            job = submit(client, pipeline_name="arithmetic", parameters={"initial_value": 3})
            done = wait_for_status(client, job["id"])
            wait_until(
                lambda: "job.completed" in by_type(receiver.verified(created["secret"]), job["id"]),
                timeout=30,
                what="job.completed at the receiver",
            )
            deliveries = client.get(f"/jobs/{job['id']}/deliveries").json()["items"]
        finally:
            client.delete(f"/webhooks/{created['id']}")
    assert done["status"] == "completed"
    received = receiver.verified(created["secret"])
    mine = [(message_id, body) for message_id, body in received if body["data"]["id"] == job["id"]]
    assert [body["type"] for _, body in mine] == ["job.started", "job.completed"]
    assert len({message_id for message_id, _ in mine}) == 2  # each once per webhook-id
    assert mine[1][1]["data"]["status"] == "completed" and mine[1][1]["data"]["exit_code"] == 0
    assert {d["id"] for d in deliveries} == {message_id for message_id, _ in mine}
    assert {d["status"] for d in deliveries} == {"delivered"}


def test_notify_of_a_failed_job(hook_stack: Stack, receiver: Receiver) -> None:
    with hook_stack.client() as client:
        job = submit(
            client, pipeline_name="fail", notify={"url": receiver.url, "events": ["job.failed"]}
        )
        wait_for_status(client, job["id"])
        wait_until(lambda: receiver.received(), timeout=30, what="job.failed at the receiver")
    [(_, body)] = receiver.verified(NOTIFY_SECRET)
    assert body["type"] == "job.failed" and body["data"]["id"] == job["id"]
    assert "ValueError" in body["data"]["error_message"]


def test_a_pending_delivery_survives_a_killed_api(hook_stack: Stack, receiver: Receiver) -> None:
    """The receiver fails, the API is SIGKILLed between attempts; once both are back, the
    event arrives, with the webhook-id it had before."""
    receiver.status = 500
    with hook_stack.client() as client:
        job = submit(
            client,
            pipeline_name="arithmetic",
            notify={"url": receiver.url, "events": ["job.completed"]},
        )
        wait_for_status(client, job["id"])

        def failed_twice() -> dict[str, Any] | None:
            items = client.get(f"/jobs/{job['id']}/deliveries").json()["items"]
            return items[0] if items and len(items[0]["attempts"]) >= 2 else None

        pending = wait_until(failed_twice, timeout=30, what="two failed attempts")
    assert pending["status"] == "pending"
    assert hook_stack.api is not None
    hook_stack.api.kill()  # SIGKILL, its lease still held
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{hook_stack.base_url}/api/v1/health/live", timeout=1)
    before = len(receiver.received())
    receiver.status = 200
    hook_stack.start_api()
    wait_until(
        lambda: any(request.headers.get("webhook-id") for request in receiver.received()[before:]),
        timeout=60,
        what="the delivery after the API came back",
    )
    received = receiver.verified(NOTIFY_SECRET)
    assert {message_id for message_id, _ in received} == {pending["id"]}
    assert {body["type"] for _, body in received} == {"job.completed"}
    with hook_stack.client() as client:
        [delivered] = client.get(f"/jobs/{job['id']}/deliveries").json()["items"]
    assert delivered["id"] == pending["id"] and delivered["status"] == "delivered"
    assert [a["status_code"] for a in delivered["attempts"]][-1] == 200
    assert {a["status_code"] for a in delivered["attempts"][:-1]} == {500}


@pytest.fixture
def outage_stack(database: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        tmp_path,
        database_url(request, database, tmp_path, "webhook_outage"),
        workers=1,
        **_receiver_env(
            retry_base=OUTAGE_RETRY.webhook_retry_base_seconds,
            retry_max=OUTAGE_RETRY.webhook_retry_max_seconds,
        ),
    ) as started:
        yield started


@pytest.mark.slow
def test_events_held_through_a_minute_of_500s_arrive_once_in_order(
    outage_stack: Stack, receiver: Receiver
) -> None:
    """The receiver answers 500 for a full minute from the first attempt on, then 200: the
    job's events arrive only after it recovers, each once, in order, and the job's delivery
    log holds every failed attempt the receiver saw, spaced by the backoff."""
    receiver.outage_seconds = OUTAGE_SECONDS
    submitted = time.monotonic()
    with outage_stack.client() as client:
        job = submit(
            client,
            pipeline_name="arithmetic",
            notify={"url": receiver.url, "events": ["job.started", "job.completed"]},
        )
        assert wait_for_status(client, job["id"])["status"] == "completed"

        def delivered() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = client.get(f"/jobs/{job['id']}/deliveries").json()[
                "items"
            ]
            done = len(items) == 2 and all(item["status"] == "delivered" for item in items)
            return items if done else None

        deliveries = wait_until(
            delivered, timeout=OUTAGE_SECONDS + 60, interval=0.5, what="both events delivered"
        )
    waited = time.monotonic() - submitted
    requests = receiver.received()
    verified = receiver.verified(NOTIFY_SECRET)  # every attempt is signed, the 500s too
    assert receiver.outage_began is not None
    since_outage = [request.at - receiver.outage_began for request in requests]

    # A full minute of 500s, measured by the receiver from the first attempt, then only 200s.
    failed = [request for request in requests if request.status == 500]
    answered = [
        (message_id, body)
        for request, (message_id, body) in zip(requests, verified, strict=True)
        if request.status == 200
    ]
    assert [request.status for request in requests] == [500] * len(failed) + [200] * 2
    assert since_outage[len(failed)] >= OUTAGE_SECONDS and waited >= OUTAGE_SECONDS
    # The sender kept trying through the minute: no gap much longer than the longest backoff.
    assert max(b - a for a, b in pairwise(since_outage)) < (
        OUTAGE_RETRY.webhook_retry_max_seconds + 10
    )

    # After the recovery: started then completed, each once, with one webhook-id each.
    assert [body["type"] for _, body in answered] == ["job.started", "job.completed"]
    assert {body["data"]["id"] for _, body in answered} == {job["id"]}
    ids = [message_id for message_id, _ in answered]
    assert len(set(ids)) == 2
    assert answered[1][1]["data"]["status"] == "completed"
    bodies: dict[str, set[bytes]] = {}
    for request in requests:
        bodies.setdefault(request.headers["webhook-id"], set()).add(request.body)
    assert set(bodies) == set(ids)
    assert all(len(sent) == 1 for sent in bodies.values())  # the same body on every attempt

    # The delivery log: every 500 the receiver answered, then the 200, spaced by the backoff.
    by_id = {delivery["id"]: delivery for delivery in deliveries}
    assert set(by_id) == set(ids)
    for message_id in ids:
        attempts = by_id[message_id]["attempts"]
        codes = [attempt["status_code"] for attempt in attempts]
        assert codes == [500] * (len(codes) - 1) + [200], codes
        assert len(codes) - 1 == sum(r.headers["webhook-id"] == message_id for r in failed)
        times = [datetime.fromisoformat(attempt["at"]) for attempt in attempts]
        for failures, (before, after) in enumerate(pairwise(times), start=1):
            waited_out = backoff(failures, OUTAGE_RETRY) - timedelta(milliseconds=5)
            assert after - before >= waited_out, (message_id, failures, after - before)
    assert len(by_id[ids[0]]["attempts"]) - 1 >= 5  # several attempts during the minute
