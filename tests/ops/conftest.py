"""A real Redis for the broker-facing operations, and a Broker for it or for no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.broker.publisher import Broker
from app.core.config import Settings
from tests.utils.stack import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_settings(settings: Settings, redis_server: RedisServer) -> Settings:
    return settings.model_copy(update={"celery_broker_url": redis_server.url})


@pytest.fixture
def broker(broker_settings: Settings) -> Iterator[Broker]:
    live = Broker(broker_settings)
    yield live
    live.close()


@pytest.fixture
def dead_broker(settings: Settings) -> Iterator[Broker]:
    """A broker whose Redis socket has no server behind it."""
    gone = Broker(settings)
    yield gone
    gone.close()


@pytest.fixture
def queue_length(redis_server: RedisServer):
    client = redis.Redis(unix_socket_path=str(redis_server.socket_path))
    yield lambda queue="default": int(client.llen(queue))
    client.close()
