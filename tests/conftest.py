"""Shared fixtures: explicit Settings on a fresh SQLite file, and real stacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.job_manager import JobManager
from app.core.services import build_core
from tests.utils.stack import Stack, running_stack


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        celery_broker_url=f"redis+socket://{tmp_path / 'no-broker.sock'}",
        data_dir=tmp_path / "data",
        log_max_bytes=64 * 1024,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def manager(settings: Settings) -> Iterator[JobManager]:
    core = build_core(settings)
    yield core.manager
    core.manager.dispose()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One Redis, two workers and the API on SQLite, shared by the end-to-end tests."""
    directory = tmp_path_factory.mktemp("stack")
    with running_stack(
        directory,
        f"sqlite:///{directory / 'jobs.db'}",
        workers=2,
        LOG_MAX_BYTES=str(2 * 1024 * 1024),
    ) as started:
        yield started
