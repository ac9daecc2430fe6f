"""The app on the shared SQLite `settings`, and a client with its lifespan running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from app.application import create_app
from app.core.config import Settings
from tests.utils.asgi import TestClient


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """The app with its lifespan running; server errors come back as 500s, not exceptions."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
