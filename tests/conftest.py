"""Shared fixtures: explicit Settings on a fresh SQLite file, and real stacks.

The end-to-end stacks run on every backend `--databases` names (default
`sqlite,postgresql`): the `database` argument is parametrized at session scope,
so all tests on one backend run before those on the next, and PostgreSQL is
started (once, by `postgres_server`) only when a selected test needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings
from app.services import build_core
from app.store import JobManager
from tests.utils.kedro019 import Kedro019, build_kedro019
from tests.utils.postgres import (
    DATABASES,
    PostgresServer,
    database_url,
    running_postgres,
    selected_databases,
)
from tests.utils.stack import Stack, running_stack


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--databases",
        default=",".join(DATABASES),
        help="comma-separated job-store backends the end-to-end stacks run on "
        "(default: %(default)s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    selected_databases(config)  # a bad --databases is a usage error before collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize tests that (through their fixtures) need a backend and a runner mode.

    `@pytest.mark.stacks((database, mode), ...)` on a module or a test names the stacks
    it runs on (the closest marker wins): every backend and both runner modes are covered
    without running every test on their cross product. Unmarked: every backend, cold.
    """
    if "database" not in metafunc.fixturenames:
        return
    backends = selected_databases(metafunc.config)
    if "runner_mode" not in metafunc.fixturenames:
        metafunc.parametrize("database", backends, ids=backends, scope="session")
        return
    marker = metafunc.definition.get_closest_marker("stacks")
    wanted = list(marker.args) if marker else [(backend, "cold") for backend in backends]
    combos = list(
        dict.fromkeys(
            (backend if backend in backends else backends[0], mode) for backend, mode in wanted
        )
    )
    metafunc.parametrize(
        ["database", "runner_mode"], combos, ids=[f"{b}-{m}" for b, m in combos], scope="session"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup` (CI), hand each module's tests on one stack to one
    worker: a stack or a module fixture is then started by one worker, not by all of them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        stack = "-".join(
            str(params[name]) for name in ("database", "runner_mode") if name in params
        )
        module = item.nodeid.split("::")[0]
        group = f"{module}[{stack}]" if stack else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        celery_broker_url=f"redis+socket://{tmp_path / 'no-broker.sock'}",
        data_dir=tmp_path / "data",
        log_max_bytes=64 * 1024,
        allowed_hosts=["testserver", "127.0.0.1", "localhost"],  # TestClient's host too
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def manager(settings: Settings) -> Iterator[JobManager]:
    core = build_core(settings)
    yield core.manager
    core.manager.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_manager(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[JobManager]:
    """A store on a fresh SQLite file or a fresh PostgreSQL database."""
    url = database_url(request, request.param, tmp_path, "store")
    core = build_core(settings.model_copy(update={"database_url": url}))
    yield core.manager
    core.manager.dispose()


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session; each stack creates its own database in it."""
    if "postgresql" not in selected_databases(pytestconfig):
        pytest.skip("PostgreSQL is not among --databases")
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def stack(
    database: str,
    runner_mode: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """One Redis, two workers and the API on `database`, running jobs `runner_mode`."""
    directory = tmp_path_factory.mktemp(f"stack-{database}-{runner_mode}")
    with running_stack(
        directory,
        database_url(request, database, directory, f"stack_{runner_mode}"),
        workers=2,
        LOG_MAX_BYTES=str(2 * 1024 * 1024),
        RUNNER_MODE=runner_mode,
    ) as started:
        yield started


@pytest.fixture(scope="session")
def kedro019() -> Kedro019:
    """The example project made by Kedro 0.19's `kedro new`, in its own virtualenv.

    Built when missing (about 45 s, PyPI), so a clean CI machine runs the 0.19 cases too.
    """
    return build_kedro019()
