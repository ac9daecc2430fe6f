"""RUNNER_MODE=warm: runs forked from a warmed project, re-warmed when the code changes."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import EXAMPLE_PROJECT
from tests.utils.expected import THREE_OF_THREE
from tests.utils.stack import (
    Stack,
    processes_mentioning,
    read_log,
    running_stack,
    submit,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example project this module may edit."""
    copy = tmp_path_factory.mktemp("warm") / "project"
    shutil.copytree(EXAMPLE_PROJECT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory, project: Path) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("warm-stack")
    with running_stack(
        directory,
        f"sqlite:///{directory / 'jobs.db'}",
        workers=0,
        RUNNER_MODE="warm",
        KEDRO_PROJECT_PATH=str(project),
    ) as stack:
        stack.start_worker(name="warm", concurrency=1)
        yield stack


@pytest.fixture
def client(warm: Stack) -> Iterator[httpx.Client]:
    with warm.client() as http:
        yield http


def _run(client: httpx.Client, pipeline: str = "arithmetic", **body: object) -> dict[str, object]:
    return wait_for_status(client, submit(client, pipeline_name=pipeline, **body)["id"])


def test_jobs_run_warm_with_results_progress_and_logs(client: httpx.Client) -> None:
    _run(client)  # the first job of a worker process may pay for warming
    done = _run(client, parameters={"initial_value": 7})
    assert done["status"] == "completed" and done["exit_code"] == 0
    assert done["results"]["runner"] == "warm"  # type: ignore[index]
    assert done["progress"] == THREE_OF_THREE
    assert "subtract_ten: value = 14" in read_log(client, str(done["id"]))
    failed = _run(client, "fail")
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert "intentional failure" in str(failed["error_message"])
    assert failed["results"]["runner"] == "warm"  # type: ignore[index]


def test_edited_node_code_is_picked_up_by_the_next_job(client: httpx.Client, project: Path) -> None:
    before = _run(client, parameters={"initial_value": 7})
    assert "add_five: value = 12" in read_log(client, str(before["id"]))
    nodes = project / "src" / "demo_project" / "nodes.py"
    source = nodes.read_text()
    assert "result = value + 5" in source
    nodes.write_text(source.replace("result = value + 5", "result = value + 6"))
    try:
        after = _run(client, parameters={"initial_value": 7})
        assert after["results"]["runner"] == "warm"  # type: ignore[index]
        assert "add_five: value = 13" in read_log(client, str(after["id"]))
    finally:
        nodes.write_text(source)


def test_cancel_and_timeout_stop_the_whole_warm_process_tree(client: httpx.Client) -> None:
    job = submit(client, pipeline_name="children")

    def pids() -> list[int] | None:
        match = re.search(r"children pids: (\d+) (\d+)", read_log(client, job["id"]))
        return [int(pid) for pid in match.groups()] if match else None

    children = wait_until(pids, timeout=30, what="children to start")
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    cancelled = wait_for_status(client, job["id"], timeout=10)
    assert cancelled["status"] == "cancelled"
    assert cancelled["results"]["runner"] == "warm"
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    timed_out = _run(client, "slow", timeout_seconds=1, parameters={"slow": {"seconds": 30}})
    assert timed_out["status"] == "failed" and "timed out" in str(timed_out["error_message"])
    assert not processes_mentioning(str(timed_out["id"]))


def test_when_warming_fails_jobs_run_cold_and_health_says_why(
    warm: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    wrapper = tmp_path / "python"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$1" in *warm_server.py) echo "cannot warm here" >&2; exit 3;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    warm.start_worker(name="coldish", queues="coldish", concurrency=1, KEDRO_PYTHON=str(wrapper))
    wait_until(
        lambda: client.get("/pipelines", params={"queue": "coldish"}).json()["items"],
        timeout=30,
        what="the coldish worker to report its project",
    )
    done = _run(client, queue="coldish")
    assert done["status"] == "completed" and done["results"]["runner"] == "cold"  # type: ignore[index]
    workers = {w["name"].split("@")[0]: w for w in client.get("/workers").json()["items"]}
    assert "warming the Kedro project failed" in workers["coldish"]["warm_error"]
    projects = client.get("/health").json()["checks"]["kedro_project"]["workers"]
    entry = next(value for name, value in projects.items() if name.startswith("coldish@"))
    assert "running cold" in entry["warm_error"] and entry["runner"] == "warm"
