"""The webhook outbox and leases on real databases: deliveries commit with their transition."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.core.config import Settings
from app.core.exceptions import WebhookNotFound
from app.schemas.jobs import JobStatus
from app.schemas.webhooks import DeliveryAttempt, DeliveryStatus, WebhookCreate, WebhookEvent
from app.services import build_core
from app.store import JobManager, utcnow
from app.store.outbox import enqueue_job_event, receiver_key
from app.store.tables import jobs
from app.store.webhook_tables import webhook_deliveries, webhook_holds
from tests.utils.factories import WORKER, outcome, submit
from tests.utils.postgres import database_url
from tests.utils.processes import run_at_once
from tests.utils.stack import wait_until

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "https://hooks.example.com/in"


def subscribe(manager: JobManager, *events: WebhookEvent, **fields: object) -> str:
    request = WebhookCreate.model_validate({"url": URL, "events": list(events), **fields})
    return manager.create_webhook(request=request, secret=SECRET, created_by="root").id


def bodies(manager: JobManager, job_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(type, webhook id, payload) of a job's deliveries, oldest first."""
    with manager._read() as connection:
        rows = connection.execute(
            select(webhook_deliveries)
            .where(webhook_deliveries.c.job_id == job_id)
            .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.webhook_id)
        ).all()
    return [(row.event_type, row.webhook_id, json.loads(row.payload)) for row in rows]


def test_transitions_write_their_deliveries(manager: JobManager) -> None:
    """Claim and finish each write one delivery per receiver, carrying the job as it became."""
    hook = subscribe(manager, WebhookEvent.started, WebhookEvent.completed)
    job = submit(
        manager,
        notify={"url": "https://own.example.com/x", "events": ["job.completed", "job.failed"]},
    )
    assert bodies(manager, job.id) == []
    claim = manager.claim_job(job_id=job.id, worker=WORKER)
    assert claim is not None
    [(kind, target, started)] = bodies(manager, job.id)
    assert (kind, target) == ("job.started", hook)
    assert started["type"] == "job.started" and started["data"]["status"] == "running"
    assert started["data"]["id"] == job.id and started["timestamp"]

    assert manager.finish_job(job_id=job.id, attempt=claim.attempt, outcome=outcome())
    ended = [(kind, target) for kind, target, _ in bodies(manager, job.id)][1:]
    assert sorted(ended, key=str) == sorted(
        [("job.completed", hook), ("job.completed", None)], key=str
    )
    finished = bodies(manager, job.id)[-1][2]
    assert finished["data"]["status"] == "completed" and finished["data"]["exit_code"] == 0
    deliveries = manager.list_deliveries(job_id=job.id)
    assert {d.url for d in deliveries} == {URL, "https://own.example.com/x"}
    assert all(d.status == DeliveryStatus.pending and d.id.startswith("msg_") for d in deliveries)


def test_unsubscribed_events_and_cancel(manager: JobManager) -> None:
    """No receiver, no row; cancelling a pending job emits job.cancelled."""
    subscribe(manager, WebhookEvent.cancelled)
    quiet = submit(manager)
    claim = manager.claim_job(job_id=quiet.id, worker=WORKER)
    assert claim is not None
    manager.finish_job(job_id=quiet.id, attempt=claim.attempt, outcome=outcome(JobStatus.failed))
    assert bodies(manager, quiet.id) == []
    cancelled = submit(manager)
    manager.request_cancel(job_id=cancelled.id, reason="cancelled by alice")
    [(kind, _, body)] = bodies(manager, cancelled.id)
    assert kind == "job.cancelled" and body["data"]["error_message"] == "cancelled by alice"


def test_retrying_hook_commits_or_rolls_back_with_its_transition(manager: JobManager) -> None:
    """The hook the retry transition calls: its delivery exists only if the transition commits."""
    subscribe(manager, WebhookEvent.retrying)
    job = submit(manager)
    claim = manager.claim_job(job_id=job.id, worker=WORKER)
    assert claim is not None

    def back_to_pending(fail: bool) -> None:
        with manager._write() as connection:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.status == JobStatus.running.value)
                .values(status=JobStatus.pending.value)
            )
            written = enqueue_job_event(
                connection, job_id=job.id, event=WebhookEvent.retrying, at=utcnow()
            )
            assert written == 1
            if fail:
                raise RuntimeError("the transition failed after the hook")

    with pytest.raises(RuntimeError):
        back_to_pending(fail=True)
    assert manager.get_job(job_id=job.id).status == JobStatus.running
    assert bodies(manager, job.id) == []
    back_to_pending(fail=False)
    [(kind, _, body)] = bodies(manager, job.id)
    assert kind == "job.retrying" and body["data"]["status"] == "pending"


def test_duration_warning_once_per_attempt_and_receiver(manager: JobManager) -> None:
    """A running job past a threshold gets one warning per receiver, however often it is asked."""
    hook = subscribe(manager, WebhookEvent.duration_warning, duration_warning_seconds=60)
    job = submit(
        manager,
        notify={
            "url": "https://own.example.com/x",
            "events": ["job.duration_warning"],
            "duration_warning_seconds": 600,
        },
    )
    assert manager.claim_job(job_id=job.id, worker=WORKER) is not None
    now = utcnow()
    assert manager.enqueue_duration_warnings(now=now) == 0
    assert manager.enqueue_duration_warnings(now=now + timedelta(seconds=61)) == 1
    assert manager.enqueue_duration_warnings(now=now + timedelta(seconds=62)) == 0
    assert manager.enqueue_duration_warnings(now=now + timedelta(seconds=601)) == 1
    assert manager.enqueue_duration_warnings(now=now + timedelta(seconds=900)) == 0
    warned = bodies(manager, job.id)
    assert [(kind, target) for kind, target, _ in warned] == [
        ("job.duration_warning", hook),
        ("job.duration_warning", None),
    ]
    assert warned[0][2]["data"]["status"] == "running"


def test_attempts_are_logged_and_only_pending_deliveries_move(manager: JobManager) -> None:
    """Each attempt is logged; a delivered one stays delivered; due ones come oldest first."""
    hook = subscribe(manager, WebhookEvent.started)
    job = submit(manager)
    manager.claim_job(job_id=job.id, worker=WORKER)
    [due] = manager.due_deliveries(now=utcnow(), limit=10)
    assert due.secret == SECRET and due.attempts == 0 and due.url == URL
    later = utcnow() + timedelta(seconds=30)
    failed = DeliveryAttempt(at=utcnow(), status_code=500, latency_ms=3.0, error="HTTP 500")
    assert manager.record_attempt(
        delivery_id=due.id,
        attempt=failed,
        outcome=DeliveryStatus.pending,
        next_attempt_at=later,
        receiver_failures=1,
    )
    assert manager.due_deliveries(now=utcnow(), limit=10) == []
    [again] = manager.due_deliveries(now=later, limit=10)
    assert (again.id, again.attempts) == (due.id, 1)
    ok = DeliveryAttempt(at=utcnow(), status_code=204, latency_ms=2.0, error=None)
    assert manager.record_attempt(
        delivery_id=due.id,
        attempt=ok,
        outcome=DeliveryStatus.delivered,
        next_attempt_at=None,
        receiver_failures=0,
    )
    assert not manager.record_attempt(
        delivery_id=due.id,
        attempt=ok,
        outcome=DeliveryStatus.failed,
        next_attempt_at=None,
        receiver_failures=1,
    )
    [logged] = manager.list_deliveries(webhook_id=hook)
    assert logged.status == DeliveryStatus.delivered and logged.delivered_at is not None
    assert [(a.status_code, a.error) for a in logged.attempts] == [(500, "HTTP 500"), (204, None)]


def test_deleting_a_webhook_drops_its_deliveries(manager: JobManager) -> None:
    hook = subscribe(manager, WebhookEvent.started)
    test = manager.enqueue_test(webhook_id=hook)
    assert test.type == "webhook.test" and test.status == DeliveryStatus.pending
    assert [w.id for w in manager.list_webhooks()] == [hook]
    assert "secret" not in manager.get_webhook(webhook_id=hook).model_dump()
    manager.delete_webhook(webhook_id=hook)
    assert manager.due_deliveries(now=utcnow(), limit=10) == []
    for call in (manager.get_webhook, manager.delete_webhook, manager.enqueue_test):
        with pytest.raises(WebhookNotFound):
            call(webhook_id=hook)


def test_many_test_deliveries_in_one_call(manager: JobManager) -> None:
    hook = subscribe(manager, WebhookEvent.started)
    ids = manager.enqueue_tests(webhook_id=hook, count=300)
    assert len(set(ids)) == 300
    assert manager.enqueue_tests(webhook_id=hook, count=0) == []
    due = manager.due_deliveries(now=utcnow(), limit=1000)
    assert {d.id for d in due} == set(ids)
    assert {(d.url, d.attempts, d.secret) for d in due} == {(URL, 0, SECRET)}
    assert {json.loads(d.payload)["type"] for d in due} == {"webhook.test"}
    manager.delete_webhook(webhook_id=hook)
    with pytest.raises(WebhookNotFound):
        manager.enqueue_tests(webhook_id=hook, count=1)


def test_purge_keeps_pending_deliveries(manager: JobManager) -> None:
    hook = subscribe(manager, WebhookEvent.started)
    pending = manager.enqueue_test(webhook_id=hook)
    done = manager.enqueue_test(webhook_id=hook)
    ok = DeliveryAttempt(at=utcnow(), status_code=200, latency_ms=1.0, error=None)
    manager.record_attempt(
        delivery_id=done.id,
        attempt=ok,
        outcome=DeliveryStatus.delivered,
        next_attempt_at=None,
        receiver_failures=0,
    )
    assert manager.purge_deliveries(finished_before=utcnow() + timedelta(seconds=1)) == 1
    assert [d.id for d in manager.list_deliveries(webhook_id=hook)] == [pending.id]


# --- holding back a failing receiver, on SQLite and PostgreSQL ---------------------------

DEAD = "https://dead.example.com/in"
ALIVE = "https://alive.example.com/in"


def enqueue(manager: JobManager, webhook_id: str, count: int) -> list[str]:
    """`count` test deliveries written one after another (each later than the one before)."""
    return [manager.enqueue_test(webhook_id=webhook_id).id for _ in range(count)]


def attempt(
    manager: JobManager,
    delivery_id: str,
    *,
    at: datetime,
    code: int,
    failures: int,
    until: datetime | None = None,
) -> None:
    """Record one attempt as the sender would: 2xx delivers, else pending until `until`
    (or given up without one)."""
    if 200 <= code < 300:
        outcome = DeliveryStatus.delivered
    else:
        outcome = DeliveryStatus.failed if until is None else DeliveryStatus.pending
    assert manager.record_attempt(
        delivery_id=delivery_id,
        attempt=DeliveryAttempt(at=at, status_code=code, latency_ms=1.0, error=None),
        outcome=outcome,
        next_attempt_at=until,
        receiver_failures=failures,
    )


def due_ids(manager: JobManager, now: datetime, limit: int = 100) -> list[str]:
    return [delivery.id for delivery in manager.due_deliveries(now=now, limit=limit)]


def holds(manager: JobManager) -> list[Any]:
    with manager._read() as connection:
        return list(connection.execute(select(webhook_holds)).all())


def test_a_failing_receiver_is_held_by_one_row_until_its_backoff_passes(
    any_manager: JobManager,
) -> None:
    """A failure writes one hold, whatever the number waiting: the receiver is skipped
    while held, other receivers are not, and its failed delivery goes first after."""
    manager = any_manager
    dead = subscribe(manager, WebhookEvent.started, url=DEAD)
    alive = subscribe(manager, WebhookEvent.started, url=ALIVE)
    waiting = enqueue(manager, dead, 40)
    others = enqueue(manager, alive, 2)
    now = utcnow()
    due = manager.due_deliveries(now=now, limit=100)
    assert [d.id for d in due] == waiting + others
    assert {d.receiver_failures for d in due} == {0}

    until = now + timedelta(seconds=60)
    attempt(manager, waiting[0], at=now, code=503, failures=1, until=until)
    [hold] = holds(manager)
    assert (hold.url, hold.held_until, hold.failures) == (DEAD, until, 1)
    with manager._read() as connection:
        untouched = connection.execute(
            select(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.created_at).where(
                webhook_deliveries.c.id.in_(waiting[1:])
            )
        ).all()
    assert len(untouched) == 39 and all(row[0] == row[1] for row in untouched)

    assert due_ids(manager, now) == others  # held back; the live receiver is not
    assert due_ids(manager, until - timedelta(milliseconds=1)) == others
    listed = manager.list_deliveries(webhook_id=dead, limit=100)
    assert {d.next_attempt_at for d in listed} == {until}  # when the hold lets them go

    released = manager.due_deliveries(now=until, limit=100)
    assert [d.id for d in released] == waiting + others  # the failed one first again
    assert (released[0].attempts, released[0].receiver_failures) == (1, 1)
    assert {d.receiver_failures for d in released[40:]} == {0}


def test_failures_in_a_row_grow_the_hold_and_one_success_clears_it(
    any_manager: JobManager,
) -> None:
    manager = any_manager
    dead = subscribe(manager, WebhookEvent.started, url=DEAD)
    first, second, third = enqueue(manager, dead, 3)
    now = utcnow()
    attempt(manager, first, at=now, code=500, failures=1, until=now + timedelta(seconds=5))
    later = now + timedelta(seconds=5)
    [again] = manager.due_deliveries(now=later, limit=1)
    assert (again.id, again.receiver_failures) == (first, 1)
    attempt(manager, first, at=later, code=500, failures=2, until=later + timedelta(seconds=10))
    assert [(h.failures, h.held_until) for h in holds(manager)] == [
        (2, later + timedelta(seconds=10))
    ]
    assert due_ids(manager, later + timedelta(seconds=9)) == []

    back = later + timedelta(seconds=10)
    attempt(manager, first, at=back, code=204, failures=0)
    assert holds(manager) == []
    due = manager.due_deliveries(now=back, limit=10)
    assert [(d.id, d.receiver_failures) for d in due] == [(second, 0), (third, 0)]
    [delivered, *pending] = sorted(
        manager.list_deliveries(webhook_id=dead), key=lambda d: d.created_at
    )
    assert delivered.status == DeliveryStatus.delivered
    assert [a.status_code for a in delivered.attempts] == [500, 500, 204]
    assert all(d.next_attempt_at == d.created_at for d in pending)


def test_a_given_up_delivery_keeps_the_streak_but_not_the_hold(any_manager: JobManager) -> None:
    """Past `WEBHOOK_MAX_AGE_SECONDS` a failure gives the delivery up; the next one is due
    at once (the deadline is per delivery), and its backoff starts from the streak. The
    hold goes with the last delivery waiting."""
    manager = any_manager
    dead = subscribe(manager, WebhookEvent.started, url=DEAD)
    old, young = enqueue(manager, dead, 2)
    now = utcnow()
    attempt(manager, old, at=now, code=500, failures=7)
    assert [(h.failures, h.held_until) for h in holds(manager)] == [(7, now)]
    [next_one] = manager.due_deliveries(now=now, limit=10)
    assert (next_one.id, next_one.receiver_failures) == (young, 7)
    attempt(manager, young, at=now, code=500, failures=8)
    assert holds(manager) == []  # nothing waits for it: the next event starts afresh


def test_a_delivery_set_aside_waits_alone_and_the_receiver_is_not_held(
    any_manager: JobManager,
) -> None:
    """Set aside, a failed delivery is passed over until its own next attempt; the
    receiver keeps its count of failures in a row but its next delivery is due at once."""
    manager = any_manager
    hook = subscribe(manager, WebhookEvent.started, url=DEAD)
    refused, after = enqueue(manager, hook, 2)
    now = utcnow()
    until = now + timedelta(seconds=30)
    assert manager.record_attempt(
        delivery_id=refused,
        attempt=DeliveryAttempt(at=now, status_code=400, latency_ms=1.0, error="HTTP 400"),
        outcome=DeliveryStatus.pending,
        next_attempt_at=until,
        receiver_failures=3,
        set_aside=True,
    )
    assert [(h.failures, h.held_until) for h in holds(manager)] == [(3, now)]
    [probe] = manager.due_deliveries(now=now, limit=10)
    assert (probe.id, probe.receiver_failures) == (after, 3)
    assert due_ids(manager, until) == [refused, after]  # back in its place once due


def test_the_batch_takes_the_longest_waiting_across_receivers(any_manager: JobManager) -> None:
    manager = any_manager
    a = subscribe(manager, WebhookEvent.started, url=DEAD)
    b = subscribe(manager, WebhookEvent.started, url=ALIVE)
    written = [manager.enqueue_test(webhook_id=hook).id for hook in (a, b, a, b, a)]
    assert due_ids(manager, utcnow(), limit=3) == written[:3]
    assert due_ids(manager, utcnow(), limit=10) == written


def test_deleting_the_last_subscription_waiting_on_a_receiver_drops_its_hold(
    any_manager: JobManager,
) -> None:
    manager = any_manager
    first = subscribe(manager, WebhookEvent.started, url=DEAD)
    second = subscribe(manager, WebhookEvent.started, url=DEAD)
    [failed] = enqueue(manager, first, 1)
    [waiting] = enqueue(manager, second, 1)
    now = utcnow()
    until = now + timedelta(hours=1)
    attempt(manager, failed, at=now, code=500, failures=1, until=until)
    manager.delete_webhook(webhook_id=first)
    assert [h.url for h in holds(manager)] == [DEAD]  # `waiting` still waits for it
    assert due_ids(manager, now) == []
    [still] = manager.list_deliveries(webhook_id=second)
    assert (still.id, still.next_attempt_at) == (waiting, until)
    manager.delete_webhook(webhook_id=second)
    assert holds(manager) == []
    again = enqueue(manager, subscribe(manager, WebhookEvent.started, url=DEAD), 1)
    assert due_ids(manager, utcnow()) == again  # a new subscription there is not held back


def test_a_delivery_written_without_its_receiver_key_is_sent_too(
    any_manager: JobManager,
) -> None:
    """A process older than the receiver key (during an upgrade) writes deliveries without
    it: they are keyed when the sender next looks, not left pending forever."""
    manager = any_manager
    hook = subscribe(manager, WebhookEvent.started, url=DEAD)
    written = enqueue(manager, hook, 3)
    with manager._write() as connection:
        connection.execute(update(webhook_deliveries).values(receiver=None))
    assert due_ids(manager, utcnow()) == written
    with manager._read() as connection:
        keys = connection.execute(select(webhook_deliveries.c.receiver)).scalars().all()
    assert keys == [receiver_key(DEAD)] * 3


# --- leases, on SQLite and PostgreSQL -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def lease_settings(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[Settings]:
    url = database_url(request, request.param, tmp_path, "leases")
    configured = settings.model_copy(update={"database_url": url})
    build_core(configured).manager.dispose()  # migrate once, before the race
    yield configured


def _take_in_process(
    index: int, barrier: Barrier, results: Queue[tuple[int, bool]], settings: Settings
) -> None:
    core = build_core(settings, migrate=False)
    try:
        barrier.wait(timeout=120)
        taken = core.manager.acquire_lease(
            name="webhooks", holder=f"api-{index}", ttl=timedelta(minutes=5)
        )
    finally:
        core.manager.dispose()
    results.put((index, taken))


def test_one_process_wins_the_lease(lease_settings: Settings) -> None:
    """Processes racing for a fresh lease, then for a held one: one holder each time."""
    first = run_at_once(_take_in_process, 4, lease_settings)
    assert sum(taken for _, taken in first) == 1
    again = run_at_once(_take_in_process, 4, lease_settings)
    assert [taken for _, taken in again] == [index == first_winner(first) for index in range(4)]


def first_winner(reports: list[tuple[int, bool]]) -> int:
    return next(index for index, taken in reports if taken)


def test_lease_expires_renews_and_releases(lease_settings: Settings) -> None:
    core = build_core(lease_settings, migrate=False)
    manager = core.manager
    try:
        short = timedelta(seconds=0.3)
        assert manager.acquire_lease(name="webhooks", holder="a", ttl=short)
        assert not manager.acquire_lease(name="webhooks", holder="b", ttl=short)
        assert manager.acquire_lease(name="webhooks", holder="a", ttl=short)  # renewal
        wait_until(
            lambda: manager.acquire_lease(name="webhooks", holder="b", ttl=timedelta(minutes=5)),
            timeout=10,
            what="the expired lease to pass to b",
        )
        assert not manager.acquire_lease(name="webhooks", holder="a", ttl=short)
        manager.release_lease(name="webhooks", holder="a")  # not a's: no effect
        assert not manager.acquire_lease(name="webhooks", holder="a", ttl=short)
        manager.release_lease(name="webhooks", holder="b")
        assert manager.acquire_lease(name="webhooks", holder="a", ttl=short)
        assert manager.acquire_lease(name="other", holder="b", ttl=short)
    finally:
        manager.dispose()
