"""The webhook sender: one API process at a time sends the outbox, at least once.

Every API process runs `deliver_forever`, but a pass only works while its process
holds the `webhooks` lease (a row in the database, renewed while it sends), so
one process sends at a time and another takes over within `lease_ttl` if it
dies. A delivery leaves the outbox only once a receiver answered 2xx (delivered)
or it stayed undelivered for `WEBHOOK_MAX_AGE_SECONDS` (failed); in between it is
retried with exponential backoff, always with the same `webhook-id` and body. A
receiver gets its deliveries one at a time, oldest first. One that fails is held
back (one row in the store, however many deliveries wait for it) until the failed
delivery's next attempt, which waits longer with each failure in a row and is
again the first one sent: a dead receiver costs one attempt per backoff, and the
later deliveries arrive after the earlier ones. From its `SET_ASIDE_AFTER`-th failed
attempt on, a failing delivery is set aside on its own backoff and the receiver's
next one is tried at once: if that fails too, the receiver is held back; if it is
accepted, the rest follow. So one payload a receiver always refuses delays the others
by its first backoffs, not until it is given up. A process killed mid-send leaves the
delivery pending: it is sent again (receivers drop duplicates by `webhook-id`).

Sends run on a small thread pool of their own (one receiver per thread), with a
timeout, so a slow receiver holds neither the event loop nor the request threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.exceptions import InvalidWebhook
from app.ops.webhook_http import UrlPolicy, notify_secret, post, signed_headers
from app.schemas.webhooks import DeliveryAttempt, DeliveryStatus, JobNotify
from app.store import JobManager, OutboundDelivery, utcnow

logger = logging.getLogger(__name__)

LEASE = "webhooks"
BATCH = 64
CONCURRENCY = 8
SET_ASIDE_AFTER = 3


@dataclass(frozen=True)
class SendReport:
    """What one pass did: whether it held the lease, and its deliveries' outcomes."""

    held: bool
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    full: bool = False


def check_webhook_url(url: str, settings: Settings) -> None:
    """422 (InvalidWebhook) for a URL the gateway would refuse to call."""
    UrlPolicy.from_settings(settings).addresses(url)


def check_notify(notify: JobNotify | None, settings: Settings) -> None:
    """422 for a job's `notify` the gateway cannot sign or may not call."""
    if notify is not None:
        notify_secret(settings)
        check_webhook_url(notify.url, settings)


def backoff(failures: int, settings: Settings) -> timedelta:
    """The wait after a receiver's `failures`-th failed attempt in a row: base, 2·base,
    4·base, … up to the cap."""
    seconds = settings.webhook_retry_base_seconds * 2 ** min(failures - 1, 30)
    return timedelta(seconds=min(seconds, settings.webhook_retry_max_seconds))


class WebhookSender:
    """Sends due deliveries while this process holds the lease."""

    def __init__(
        self,
        manager: JobManager,
        settings: Settings,
        *,
        policy: UrlPolicy | None = None,
        holder: str | None = None,
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._policy = policy or UrlPolicy.from_settings(settings)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="webhook")
        self._renewal_lock = threading.Lock()
        self._renewed = 0.0

    @property
    def lease_ttl(self) -> timedelta:
        """Long enough for one round of sends (each bounded by the timeout) and a renewal."""
        return timedelta(seconds=3 * self._settings.webhook_timeout_seconds + 1)

    def deliver_pass(self) -> SendReport:
        """Warn about long runs, then send up to one batch of due deliveries.

        Deliveries to one URL go one after another, oldest first (so a job's events
        arrive in order), and stop at the failure that holds that receiver back (a dead
        receiver costs one or two attempts per backoff); different URLs are sent in
        parallel."""
        if not self._hold():
            return SendReport(held=False)
        self._manager.enqueue_duration_warnings(now=utcnow())
        due = self._manager.due_deliveries(now=utcnow(), limit=BATCH)
        by_url: dict[str, list[OutboundDelivery]] = {}
        for delivery in due:
            by_url.setdefault(delivery.url, []).append(delivery)
        counts = {status: 0 for status in DeliveryStatus}
        for outcomes in self._pool.map(self._send_in_order, by_url.values()):
            for outcome in outcomes:
                counts[outcome] += 1
        if self._settings.job_retention_days is not None:
            cutoff = utcnow() - timedelta(days=self._settings.job_retention_days)
            self._manager.purge_deliveries(finished_before=cutoff)
        return SendReport(
            held=True,
            delivered=counts[DeliveryStatus.delivered],
            retrying=counts[DeliveryStatus.pending],
            failed=counts[DeliveryStatus.failed],
            full=len(due) == BATCH,
        )

    def close(self) -> None:
        """Stop sending and hand the lease over at once."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self._manager.release_lease(name=LEASE, holder=self.holder)
        except Exception:  # the database is gone: the lease simply expires
            logger.warning("could not release the webhook lease; it expires by itself")

    def _hold(self) -> bool:
        held = self._manager.acquire_lease(name=LEASE, holder=self.holder, ttl=self.lease_ttl)
        with self._renewal_lock:
            self._renewed = time.monotonic() if held else 0.0
        return held

    def _still_holding(self) -> bool:
        """Renew the lease during a long pass, before a third of it has run out."""
        with self._renewal_lock:
            fresh = time.monotonic() - self._renewed < self.lease_ttl.total_seconds() / 3
        return fresh or self._hold()

    def _send_in_order(self, deliveries: list[OutboundDelivery]) -> list[DeliveryStatus]:
        outcomes = []
        failures = deliveries[0].receiver_failures
        probing = False  # the delivery before this one was set aside
        for delivery in deliveries:
            if not self._still_holding():
                break
            outcome, failures, held = self._send_and_record(delivery, failures, probing)
            outcomes.append(outcome)
            if held:
                break  # this one goes first again when the hold passes
            probing = outcome == DeliveryStatus.pending
        return outcomes

    def _send_and_record(
        self, delivery: OutboundDelivery, failures: int, probing: bool
    ) -> tuple[DeliveryStatus, int, bool]:
        """Send once and record it: the outcome, the receiver's failures in a row, and
        whether the receiver is now held back."""
        at = utcnow()
        answer_code, error, latency = self._send(delivery)
        host = urlsplit(delivery.url).hostname
        next_at, set_aside = None, False
        if answer_code is not None and 200 <= answer_code < 300:
            outcome, failures = DeliveryStatus.delivered, 0
        elif at - delivery.created_at >= timedelta(seconds=self._settings.webhook_max_age_seconds):
            outcome, failures = DeliveryStatus.failed, failures + 1
            logger.warning(
                "webhook %s to %s given up after %d attempts: %s",
                delivery.id,
                host,
                delivery.attempts + 1,
                error,
            )
        else:
            outcome, failures = DeliveryStatus.pending, failures + 1
            tried = delivery.attempts + 1
            set_aside = tried >= SET_ASIDE_AFTER and not probing
            next_at = at + backoff(tried if set_aside else failures, self._settings)
            logger.info("webhook %s to %s failed (%s); retrying", delivery.id, host, error)
        self._manager.record_attempt(
            delivery_id=delivery.id,
            attempt=DeliveryAttempt(
                at=at, status_code=answer_code, latency_ms=round(latency, 3), error=error
            ),
            outcome=outcome,
            next_attempt_at=next_at,
            receiver_failures=failures,
            set_aside=set_aside,
        )
        return outcome, failures, outcome == DeliveryStatus.pending and not set_aside

    def _send(self, delivery: OutboundDelivery) -> tuple[int | None, str | None, float]:
        started = time.monotonic()
        try:
            secret = delivery.secret or notify_secret(self._settings)
            addresses = self._policy.addresses(delivery.url)
        except InvalidWebhook as exc:
            return None, f"refused: {exc.detail}", (time.monotonic() - started) * 1000
        headers = signed_headers(secret, delivery.id, delivery.payload, int(time.time()))
        answer = post(
            delivery.url,
            addresses,
            delivery.payload,
            headers,
            self._settings.webhook_timeout_seconds,
        )
        return answer.status_code, answer.error, answer.latency_ms


async def deliver_forever(sender: WebhookSender, settings: Settings) -> None:
    """Run a pass every `MAINTENANCE_INTERVAL_SECONDS` (at once again after a full batch)."""
    while True:
        report = SendReport(held=False)
        try:
            report = await run_in_threadpool(sender.deliver_pass)
        except Exception:
            logger.exception("webhook pass failed; retrying")
        await asyncio.sleep(0 if report.full else settings.maintenance_interval_seconds)
