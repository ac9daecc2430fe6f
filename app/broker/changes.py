"""Change notices over Redis pub/sub: the store's changes, heard by every API process.

Whoever changes a job (a worker's run, the API's cancel or reaper) publishes
`<kind> <job id>` on one channel; each API process keeps one subscription and
fans each notice out to the requests waiting on that job (`app.ops.waiting`).
Pub/sub keeps nothing: a notice sent while a subscriber reconnects is lost, so a
subscriber that (re)connects wakes every waiter once, and waiters re-read the
job now and then anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis

from app.store.notices import ChangeKind

logger = logging.getLogger(__name__)

CHANNEL = "kedro-gateway:job-changes"
RECONNECT_SECONDS = 0.5
SKIP_AFTER_FAILURE_SECONDS = 2.0


def redis_url(broker_url: str) -> str:
    """redis-py's URL for a Celery broker URL (`redis+socket://PATH` is `unix://PATH`)."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + urlsplit(broker_url).path
    return broker_url


class ChangePublisher:
    """Publishes notices; one Redis connection pool per process (rebuilt after a fork)."""

    def __init__(self, broker_url: str) -> None:
        self._url = redis_url(broker_url)
        self._client: redis.Redis | None = None
        self._pid = 0
        self._down_until = 0.0

    def __call__(self, job_id: str, kind: ChangeKind) -> None:
        if time.monotonic() < self._down_until:
            return  # Redis failed a moment ago: do not slow every transition down
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=1, socket_connect_timeout=1
            )
            self._pid = os.getpid()
        try:
            self._client.publish(CHANNEL, f"{kind} {job_id}")
        except Exception:
            self._down_until = time.monotonic() + SKIP_AFTER_FAILURE_SECONDS
            raise


async def listen_forever(
    broker_url: str,
    on_change: Callable[[str, str], None],
    on_connect: Callable[[], None],
    on_disconnect: Callable[[], None],
) -> None:
    """Call `on_change(job_id, kind)` for each notice until cancelled; reconnect when
    Redis goes away (`on_disconnect()`), `on_connect()` each time it is subscribed."""
    url = redis_url(broker_url)
    while True:
        client = aioredis.Redis.from_url(url)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(CHANNEL)
                on_connect()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    kind, _, job_id = bytes(message["data"]).decode().partition(" ")
                    on_change(job_id, kind)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("change notices unavailable (%s); reconnecting", exc)
            on_disconnect()
            await asyncio.sleep(RECONNECT_SECONDS)
        finally:
            await client.aclose()
