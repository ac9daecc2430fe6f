"""Background duties in exactly one API process at a time, elected by a lease.

Every API process (several with `API_WORKERS`, or replicas behind a load
balancer) runs `maintain_while_elected`, but only the holder of the
`maintenance` lease runs the maintenance pass (reaping lost runs, publishing,
purging). The holder renews the lease on each pass; when it dies the lease
expires after `lease_ttl` and the next process to ask takes it over. The webhook
sender elects its own holder the same way (`app.ops.webhooks`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

from starlette.concurrency import run_in_threadpool

from app.broker.publisher import Broker
from app.core.config import Settings
from app.ops.maintenance import maintenance_pass
from app.store import JobManager

logger = logging.getLogger(__name__)

LEASE = "maintenance"
MIN_LEASE_SECONDS = 3.0


def holder_name() -> str:
    """This process, recognisably in the leases table: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_ttl(settings: Settings) -> timedelta:
    """Three passes' worth: a slow pass keeps the lease, a dead holder loses it in seconds."""
    return timedelta(seconds=max(MIN_LEASE_SECONDS, 3 * settings.maintenance_interval_seconds))


async def maintain_while_elected(
    manager: JobManager, broker: Broker, settings: Settings, *, holder: str
) -> None:
    """Every `MAINTENANCE_INTERVAL_SECONDS`: take or renew the lease, and if held, run a pass."""
    ttl = lease_ttl(settings)
    held = False
    try:
        while True:
            try:
                now_held = await run_in_threadpool(
                    manager.acquire_lease, name=LEASE, holder=holder, ttl=ttl
                )
                if now_held != held:
                    logger.info(
                        "%s the maintenance duties (%s)",
                        "took" if now_held else "lost",
                        holder,
                    )
                held = now_held
                if held:
                    await run_in_threadpool(maintenance_pass, manager, broker, settings)
            except Exception:
                logger.exception("maintenance pass failed; retrying")
            await asyncio.sleep(settings.maintenance_interval_seconds)
    finally:
        if held:
            try:
                await run_in_threadpool(manager.release_lease, name=LEASE, holder=holder)
            except Exception:  # the database is gone: the lease simply expires
                logger.warning("could not release the maintenance lease; it expires by itself")
