"""The webhook sender against a real HTTP receiver: signing, backoff, give-up, refusals, lease."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from app.core.config import Settings
from app.core.exceptions import InvalidWebhook
from app.ops.webhook_http import UrlPolicy, new_secret, signing_key
from app.ops.webhooks import SET_ASIDE_AFTER, SendReport, WebhookSender, backoff
from app.schemas.jobs import JobStatus
from app.schemas.webhooks import DeliveryStatus, WebhookCreate, WebhookEvent
from app.store import JobManager
from tests.utils.factories import WORKER, outcome, submit
from tests.utils.receiver import Receiver, receiving
from tests.utils.stack import wait_until

NOTIFY_SECRET = new_secret()


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allow_http": True,
            "webhook_allowed_hosts": ["127.0.0.1"],
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_max_seconds": 0.4,
            "webhook_timeout_seconds": 1.0,
            "webhook_secret": SecretStr(NOTIFY_SECRET),
        }
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as started:
        yield started


@pytest.fixture
def sender(manager: JobManager, hook_settings: Settings) -> Iterator[WebhookSender]:
    live = WebhookSender(manager, hook_settings)
    yield live
    live.close()


def subscribe(manager: JobManager, url: str, *events: WebhookEvent) -> tuple[str, str]:
    secret = new_secret()
    request = WebhookCreate(url=url, events=list(events))
    return manager.create_webhook(request=request, secret=secret, created_by=None).id, secret


def start_job(manager: JobManager, **fields: Any) -> str:
    job = submit(manager, **fields)
    assert manager.claim_job(job_id=job.id, worker=WORKER) is not None
    return job.id


def pass_until(sender: WebhookSender, done: Any, what: str) -> None:
    """Run passes until `done()` holds (each pass sends whatever is due)."""

    def step() -> bool:
        sender.deliver_pass()
        return bool(done())

    wait_until(step, timeout=20, interval=0.02, what=what)


def test_a_delivery_is_signed_and_verifies(
    manager: JobManager, sender: WebhookSender, receiver: Receiver
) -> None:
    hook, secret = subscribe(manager, receiver.url, WebhookEvent.started)
    job_id = start_job(manager)
    report = sender.deliver_pass()
    assert report == SendReport(held=True, delivered=1)
    [(message_id, body)] = receiver.verified(secret)
    [request] = receiver.received()
    assert request.path == "/hook?token=abc"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert body["type"] == "job.started" and body["data"]["id"] == job_id
    assert body["data"]["status"] == "running" and body["timestamp"]
    [logged] = manager.list_deliveries(webhook_id=hook)
    assert logged.id == message_id and logged.status == DeliveryStatus.delivered
    assert [(a.status_code, a.error) for a in logged.attempts] == [(200, None)]
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(request.body, request.headers)


def test_retries_back_off_with_the_same_id_until_delivered(
    manager: JobManager, sender: WebhookSender, receiver: Receiver, hook_settings: Settings
) -> None:
    hook, secret = subscribe(manager, receiver.url, WebhookEvent.started)
    start_job(manager)
    receiver.status = 500
    for failures in (1, 2, 3):
        pass_until(sender, lambda n=failures: len(receiver.received()) == n, f"attempt {failures}")
        [pending] = manager.list_deliveries(webhook_id=hook)
        assert pending.status == DeliveryStatus.pending
        last = pending.attempts[-1]
        assert (last.status_code, last.error) == (500, "HTTP 500")
        assert pending.next_attempt_at is not None
        assert pending.next_attempt_at - last.at == backoff(failures, hook_settings)
    assert [backoff(n, hook_settings).total_seconds() for n in (1, 2, 3, 4, 5)] == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.4,
    ]
    receiver.status = 204
    pass_until(sender, lambda: len(receiver.received()) == 4, "the delivery after recovery")
    received = receiver.verified(secret)
    assert len({message_id for message_id, _ in received}) == 1
    assert len({request.body for request in receiver.received()}) == 1
    [done] = manager.list_deliveries(webhook_id=hook)
    assert done.status == DeliveryStatus.delivered
    assert [a.status_code for a in done.attempts] == [500, 500, 500, 204]
    assert sender.deliver_pass() == SendReport(held=True)
    assert len(receiver.received()) == 4


def test_gives_up_after_the_configured_time(
    manager: JobManager, hook_settings: Settings, receiver: Receiver
) -> None:
    quick = hook_settings.model_copy(update={"webhook_max_age_seconds": 0.3})
    sender = WebhookSender(manager, quick)
    try:
        hook, _ = subscribe(manager, receiver.url, WebhookEvent.started)
        start_job(manager)
        receiver.status = 503
        pass_until(
            sender,
            lambda: manager.list_deliveries(webhook_id=hook)[0].status == DeliveryStatus.failed,
            "the delivery to be given up",
        )
        sent = len(receiver.received())
        assert sent >= 2
        assert sender.deliver_pass() == SendReport(held=True)
        assert len(receiver.received()) == sent
        [failed] = manager.list_deliveries(webhook_id=hook)
        assert failed.next_attempt_at is None and len(failed.attempts) == sent
    finally:
        sender.close()


def test_notify_is_signed_with_the_gateway_secret(
    manager: JobManager, sender: WebhookSender, receiver: Receiver
) -> None:
    job_id = start_job(manager, notify={"url": receiver.url, "events": ["job.started"]})
    sender.deliver_pass()
    [(_, body)] = receiver.verified(NOTIFY_SECRET)
    assert body["data"]["id"] == job_id
    [logged] = manager.list_deliveries(job_id=job_id)
    assert logged.webhook_id is None and logged.status == DeliveryStatus.delivered


def test_private_addresses_are_refused_at_delivery(
    manager: JobManager, hook_settings: Settings, receiver: Receiver
) -> None:
    strict = hook_settings.model_copy(update={"webhook_allowed_hosts": []})
    sender = WebhookSender(manager, strict)
    try:
        hook, _ = subscribe(manager, receiver.url, WebhookEvent.started)
        start_job(manager)
        sender.deliver_pass()
        [refused] = manager.list_deliveries(webhook_id=hook)
        assert refused.status == DeliveryStatus.pending
        [attempt] = refused.attempts
        assert attempt.status_code is None
        assert attempt.error is not None and "loopback" in attempt.error
        assert attempt.error.startswith("refused")
        assert receiver.received() == []
    finally:
        sender.close()


def test_redirects_are_not_followed_and_slow_receivers_time_out(
    manager: JobManager, sender: WebhookSender, receiver: Receiver
) -> None:
    hook, _ = subscribe(manager, receiver.url, WebhookEvent.started)
    receiver.status, receiver.location = 302, "http://127.0.0.1:1/elsewhere"
    start_job(manager)
    sender.deliver_pass()
    [attempt] = manager.list_deliveries(webhook_id=hook)[0].attempts
    assert (attempt.status_code, attempt.error) == (302, "redirect (HTTP 302) not followed")
    assert len(receiver.received()) == 1

    receiver.status, receiver.location, receiver.delay = 200, None, 3.0
    pass_until(
        sender,
        lambda: len(manager.list_deliveries(webhook_id=hook)[0].attempts) == 2,
        "a second attempt",
    )
    slow = manager.list_deliveries(webhook_id=hook)[0].attempts[-1]
    assert (slow.status_code, slow.error) == (None, "timed out")
    assert 900 <= slow.latency_ms < 2900


def test_one_sender_at_a_time(
    manager: JobManager, hook_settings: Settings, receiver: Receiver
) -> None:
    first, second = WebhookSender(manager, hook_settings), WebhookSender(manager, hook_settings)
    try:
        subscribe(manager, receiver.url, WebhookEvent.started)
        assert first.deliver_pass().held
        start_job(manager)
        assert second.deliver_pass() == SendReport(held=False)
        assert receiver.received() == []
        first.close()  # releases the lease: the other takes over at once
        assert second.deliver_pass() == SendReport(held=True, delivered=1)
    finally:
        first.close()
        second.close()


def _resolver(*answers: str) -> Any:
    """A resolver answering each lookup with the next address (the last one repeats)."""
    queue = list(answers)

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("fe80::1", "link-local"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
    ],
)
def test_url_policy_refuses_non_public_addresses(address: str, kind: str) -> None:
    policy = UrlPolicy(resolve=_resolver(address))
    with pytest.raises(InvalidWebhook, match=rf"a non-public address \({kind}\)") as refused:
        policy.addresses("https://hooks.example.com/in")
    assert address not in refused.value.detail
    allowed = UrlPolicy(resolve=_resolver(address), allowed_hosts=frozenset({"hooks.example.com"}))
    assert [str(a) for a in allowed.addresses("https://HOOKS.example.com/in")] != []


def test_url_policy_schemes_and_rebinding() -> None:
    public = UrlPolicy(resolve=_resolver("93.184.215.14"))
    assert [str(a) for a in public.addresses("https://hooks.example.com/in")] == ["93.184.215.14"]
    with pytest.raises(InvalidWebhook, match="https"):
        public.addresses("http://hooks.example.com/in")
    assert UrlPolicy(allow_http=True, resolve=_resolver("93.184.215.14")).addresses(
        "http://hooks.example.com/in"
    )
    rebinding = UrlPolicy(resolve=_resolver("93.184.215.14", "127.0.0.1"))
    assert rebinding.addresses("https://hooks.example.com/in")  # at registration
    with pytest.raises(InvalidWebhook, match="loopback"):
        rebinding.addresses("https://hooks.example.com/in")  # at delivery


def test_secrets_follow_the_standard_format() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(signing_key(secret)) == 32
    for bad in ("whsec_", "whsec_!!!", "abc", "whsec_" + "A" * 8):
        with pytest.raises(ValueError, match="whsec_") as error:
            signing_key(bad)
        assert bad == "whsec_" or bad not in str(error.value)
    assert backoff(40, Settings(_env_file=None)) == timedelta(seconds=3600)  # type: ignore[call-arg]


def test_a_receivers_events_arrive_in_order(
    manager: JobManager, sender: WebhookSender, receiver: Receiver
) -> None:
    _, secret = subscribe(manager, receiver.url, WebhookEvent.started, WebhookEvent.failed)
    job_id = start_job(manager)
    job = manager.get_job(job_id=job_id)
    manager.finish_job(job_id=job_id, attempt=job.attempt, outcome=outcome(JobStatus.failed))
    assert sender.deliver_pass().delivered == 2
    assert [body["type"] for _, body in receiver.verified(secret)] == ["job.started", "job.failed"]


def test_a_dead_receiver_costs_one_attempt_per_pass(
    manager: JobManager, sender: WebhookSender
) -> None:
    with receiving() as dead, receiving() as alive:
        dead.status = 500
        dead_hook, _ = subscribe(manager, dead.url.replace("/hook", "/dead"), WebhookEvent.started)
        for _ in range(150):
            manager.enqueue_test(webhook_id=dead_hook)
        subscribe(manager, alive.url, WebhookEvent.started)
        start_job(manager)
        report = sender.deliver_pass()
        assert (report.delivered, report.retrying) == (0, 1)  # the 150 fill the first batch
        assert len(dead.received()) == 1
        pass_until(sender, lambda: alive.received(), "the live receiver's delivery")
        assert len(dead.received()) <= 3  # one per backoff, not one per pending delivery


def test_events_written_after_a_failure_wait_behind_the_retried_one(
    manager: JobManager, hook_settings: Settings, receiver: Receiver
) -> None:
    """The receiver fails job.started; job.failed is written while it is held back; once
    the hold passes it gets job.started (again, same webhook-id) before job.failed."""
    patient = hook_settings.model_copy(update={"webhook_retry_base_seconds": 1.0})
    sender = WebhookSender(manager, patient)
    try:
        _, secret = subscribe(manager, receiver.url, WebhookEvent.started, WebhookEvent.failed)
        job_id = start_job(manager)
        receiver.status = 500
        assert sender.deliver_pass() == SendReport(held=True, retrying=1)
        job = manager.get_job(job_id=job_id)
        manager.finish_job(job_id=job_id, attempt=job.attempt, outcome=outcome(JobStatus.failed))
        receiver.status = 204
        assert sender.deliver_pass() == SendReport(held=True)  # held: neither is sent
        pass_until(sender, lambda: len(receiver.received()) == 3, "both events after the hold")
        received = receiver.verified(secret)
        assert [body["type"] for _, body in received] == [
            "job.started",
            "job.started",
            "job.failed",
        ]
        assert received[0][0] == received[1][0] != received[2][0]
        assert [request.status for request in receiver.received()] == [500, 204, 204]
    finally:
        sender.close()


def test_a_payload_the_receiver_always_refuses_does_not_hold_back_the_rest(
    manager: JobManager, sender: WebhookSender, receiver: Receiver
) -> None:
    """The receiver refuses one delivery and accepts the others. It goes first while it
    has failed fewer than `SET_ASIDE_AFTER` times; then it is set aside, the later ones
    arrive in order, and it is still retried, with its own `webhook-id`, on its own backoff."""
    hook, secret = subscribe(manager, receiver.url, WebhookEvent.started)
    poison = manager.enqueue_test(webhook_id=hook).id
    receiver.refused.add(poison)
    later = [manager.enqueue_test(webhook_id=hook).id for _ in range(3)]

    def sent() -> list[str]:
        return [request.headers["webhook-id"] for request in receiver.received()]

    pass_until(sender, lambda: set(later) <= set(sent()), "the deliveries behind the refused one")
    assert sent() == [poison] * SET_ASIDE_AFTER + later
    assert [webhook_id for webhook_id, _ in receiver.verified(secret)[-3:]] == later
    pass_until(sender, lambda: sent().count(poison) > SET_ASIDE_AFTER, "the refused one again")
    [refused] = [d for d in manager.list_deliveries(webhook_id=hook) if d.id == poison]
    assert refused.status == DeliveryStatus.pending
    assert {a.status_code for a in refused.attempts} == {400}


def test_a_dead_receiver_is_held_after_the_set_aside_delivery_and_one_more(
    manager: JobManager, sender: WebhookSender, receiver: Receiver
) -> None:
    """Past `SET_ASIDE_AFTER` failures a dead receiver gets the failing delivery and the
    next one per backoff, never the rest of its queue."""
    hook, _ = subscribe(manager, receiver.url, WebhookEvent.started)
    waiting = [manager.enqueue_test(webhook_id=hook).id for _ in range(20)]
    receiver.status = 503
    pass_until(sender, lambda: len(receiver.received()) >= 3 * SET_ASIDE_AFTER, "several backoffs")
    tried = {request.headers["webhook-id"] for request in receiver.received()}
    assert tried == set(waiting[:2])
