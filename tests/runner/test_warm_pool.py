"""The warm pool's retry rule: a failed warm-up is not retried on every job, only once the
project changes (or after WARM_RETRY_SECONDS), and a good warm-up clears the error."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import EXAMPLE_PROJECT, Settings
from app.runner.command import kedro_environment
from app.runner.warm import WarmPool, WarmUnavailable


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE_PROJECT, copy, ignore=shutil.ignore_patterns("__pycache__", ".viz"))
    return copy


@pytest.fixture
def failing_python(tmp_path: Path) -> Path:
    """An interpreter that cannot warm: it counts its attempts and exits 3."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho x >> "{tmp_path / "attempts"}"\nexit 3\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def pool() -> Iterator[WarmPool]:
    warm = WarmPool()
    yield warm
    warm.close()


def _attempts(failing_python: Path) -> int:
    counter = failing_python.with_name("attempts")
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def _settings(settings: Settings, project: Path, python: Path | str) -> Settings:
    return settings.model_copy(
        update={"kedro_project_path": project, "kedro_python": str(python), "runner_mode": "warm"}
    )


def test_a_failed_warm_up_is_retried_only_once_the_project_changes(
    settings: Settings, project: Path, failing_python: Path, pool: WarmPool
) -> None:
    failing = _settings(settings, project, failing_python)
    env = kedro_environment(failing, {})
    with pytest.raises(WarmUnavailable, match="warming the Kedro project failed"):
        pool.server_for(failing, env, 1.0)
    assert pool.error_changed() and pool.last_error is not None
    with pytest.raises(WarmUnavailable):
        pool.server_for(failing, env, 1.0)  # the same project: remembered, not retried
    assert _attempts(failing_python) == 1
    assert not pool.error_changed()  # reported once

    (project / "conf" / "base" / "parameters.yml").write_text("initial_value: 1\n")
    with pytest.raises(WarmUnavailable):
        pool.server_for(failing, env, 1.0)
    assert _attempts(failing_python) == 2


def test_a_good_warm_up_clears_the_error_and_is_reused(
    settings: Settings, project: Path, failing_python: Path, pool: WarmPool
) -> None:
    failing = _settings(settings, project, failing_python)
    with pytest.raises(WarmUnavailable):
        pool.server_for(failing, kedro_environment(failing, {}), 1.0)
    pool.error_changed()
    good = _settings(settings, project, sys.executable)
    env = kedro_environment(good, {"PATH": "/usr/bin:/bin"})
    server = pool.server_for(good, env, 1.0)
    assert pool.last_error is None and pool.error_changed()
    assert pool.server_for(good, env, 1.0) is server
    (project / "conf" / "base" / "parameters.yml").write_text("initial_value: 2\n")
    assert pool.server_for(good, env, 1.0) is not server  # re-warmed after an edit
