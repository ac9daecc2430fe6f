"""Build the FastAPI application from one `Settings`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app.api import api_router, dashboard, metrics
from app.api.errors import install_error_handlers
from app.api.fast_lane import FastLane
from app.api.limits import BodySizeLimit, SameOriginJson
from app.api.security import KeyRing
from app.broker.changes import listen_forever
from app.broker.publisher import Broker
from app.core.config import Settings, get_settings
from app.core.logs import configure_logging
from app.ops.admission import seed_limits
from app.ops.duties import holder_name, maintain_while_elected
from app.ops.log_stream import FollowerSlots, OutputTails
from app.ops.metrics import GatewayCollector
from app.ops.rerun import retry_defaults
from app.ops.submit import Submitter
from app.ops.waiting import ChangeHub, SharedReads
from app.ops.webhooks import WebhookSender, deliver_forever
from app.services import build_core

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with its core services; migrations run before the first request."""
    settings = settings or get_settings()
    registry = CollectorRegistry()
    keyring = KeyRing.parse(
        settings.api_keys.get_secret_value() if settings.api_keys else None, settings.admin_users
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format, batched=True)
        if not keyring.enabled:
            logger.warning(
                "API_KEYS is not set: the API is open to anyone who can reach it; "
                "keep it on 127.0.0.1 (the default HOST) or set API_KEYS"
            )
        core = await run_in_threadpool(build_core, settings)
        await run_in_threadpool(seed_limits, core.manager, settings)
        broker = Broker(settings)
        app.state.settings = settings
        app.state.manager = core.manager
        app.state.broker = broker
        app.state.submitter = Submitter(
            manager=core.manager, broker=broker, retry_defaults=retry_defaults(settings)
        )
        app.state.registry = registry
        app.state.keyring = keyring
        app.state.followers = FollowerSlots(settings.max_followers_per_user)
        hub = ChangeHub()
        app.state.hub = hub
        app.state.shared_reads = SharedReads()
        app.state.tails = OutputTails(core.manager, hub)
        collector = GatewayCollector(core.manager, broker, settings)
        registry.register(collector)
        tasks = [
            asyncio.create_task(
                maintain_while_elected(core.manager, broker, settings, holder=holder_name())
            )
        ]
        sender = WebhookSender(core.manager, settings)
        tasks.append(asyncio.create_task(deliver_forever(sender, settings)))
        if settings.celery_broker_url:
            tasks.append(
                asyncio.create_task(
                    listen_forever(
                        settings.celery_broker_url, hub.changed, hub.reconnected, hub.disconnected
                    )
                )
            )
        # What startup made lives as long as the process: kept out of the collector's
        # full passes, each of which would pause every request for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await run_in_threadpool(sender.close)
            registry.unregister(collector)
            broker.close()
            core.manager.dispose()

    app = FastAPI(
        title="Kedro job gateway",
        version="1.0.0",
        description="Start Kedro pipeline runs over REST, run them on Celery workers, "
        "follow them to their end.",
        lifespan=lifespan,
    )
    app.add_middleware(SameOriginJson)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(
        app, metric_namespace="gateway"
    )
    # Outermost: a plain job read or submit skips routing, dependencies and per-route metrics.
    fast = Counter(
        "gateway_fast_lane_requests",
        "GET /jobs/{id} and POST /jobs answered by the fast lane "
        "(not in the per-route HTTP metrics)",
        registry=registry,
    )
    app.add_middleware(FastLane, allowed_hosts=settings.trusted_hosts, counter=fast)
    return app
