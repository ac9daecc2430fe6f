"""End to end on a Kedro 0.19 project: the example pipelines in a project made by 0.19's
own `kedro new`, in a virtualenv of its own, behind a worker on queue `kedro019`.

One warm worker keeps this lean (the cold path on 0.19 is covered in
tests/runner/test_kedro_versions.py); warm runs use the same arguments a cold one does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.test_jobs_e2e import AWKWARD, RUN_OPTIONS
from tests.utils.expected import CONTRACT_PARAMETERS, THREE_OF_THREE
from tests.utils.kedro019 import KEDRO_VERSION, Kedro019
from tests.utils.stack import (
    Stack,
    group_members,
    read_log,
    running_stack,
    submit,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e
QUEUE = "kedro019"
# Kedro 0.19 cannot hand a node a string holding `${` unchanged: such values are refused.
INTERPOLATING = {"tmpl", "esc1", "esc2"}


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory, kedro019: Kedro019) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("kedro019-stack")
    with running_stack(
        directory, f"sqlite:///{directory / 'jobs.db'}", workers=0, RUNNER_MODE="warm"
    ) as stack:
        stack.start_worker(
            name="k019",
            queues=QUEUE,
            concurrency=1,
            KEDRO_PYTHON=kedro019.python,
            KEDRO_PROJECT_PATH=str(kedro019.project),
        )
        yield stack


@pytest.fixture(scope="module")
def client(legacy: Stack) -> Iterator[httpx.Client]:
    with legacy.client() as http:
        wait_until(
            lambda: http.get("/pipelines", params={"queue": QUEUE}).json()["items"],
            timeout=60,
            what="the 0.19 worker to report its project",
        )
        yield http


def _run(client: httpx.Client, pipeline: str = "arithmetic", **body: object) -> dict[str, object]:
    return wait_for_status(
        client, submit(client, pipeline_name=pipeline, queue=QUEUE, **body)["id"]
    )


def test_the_worker_reports_kedro_0_19_and_its_pipelines(client: httpx.Client) -> None:
    project = client.get("/pipelines", params={"queue": QUEUE}).json()
    assert project["kedro_version"] == KEDRO_VERSION
    names = {pipeline["name"] for pipeline in project["items"]}
    assert {"arithmetic", "fail", "slow", "echo", "children"} <= names


def test_arithmetic_runs_warm_with_progress_and_results(client: httpx.Client) -> None:
    done = _run(client, parameters={"initial_value": 7})
    assert done["status"] == "completed", done["error_message"]
    assert done["exit_code"] == 0 and done["progress"] == THREE_OF_THREE
    results = done["results"]
    assert isinstance(results, dict) and results["runner"] == "warm"
    assert set(results["node_seconds"]) == {"add_five", "multiply_by_two", "subtract_ten"}
    log = read_log(client, str(done["id"]))
    assert "subtract_ten: value = 14" in log and "--pipelines" not in log


def test_a_failing_node_reports_its_error(client: httpx.Client) -> None:
    failed = _run(client, "fail")
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert "ValueError: intentional failure" in str(failed["error_message"])


@pytest.mark.parametrize(
    ("options", "parameters", "nodes", "line"),
    RUN_OPTIONS,
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_run_options_reach_kedro_0_19(
    client: httpx.Client,
    options: dict[str, Any],
    parameters: dict[str, object],
    nodes: list[str] | None,
    line: str,
) -> None:
    done = _run(client, parameters=parameters, **options)
    assert done["status"] == "completed", done["error_message"]
    if nodes is not None:
        assert done["results"]["completed_nodes"] == nodes  # type: ignore[index]
    assert line in read_log(client, str(done["id"]))


def test_a_namespace_is_checked_at_submit_and_load_versions_reach_kedro_0_19(
    client: httpx.Client,
) -> None:
    """The example has neither: the reported pipeline refuses the namespace at submit, and
    Kedro's own refusal shows it read `load_versions` under 0.19's key."""
    namespaced = client.post(
        "/jobs", json={"pipeline_name": "arithmetic", "queue": QUEUE, "namespaces": ["nowhere"]}
    )
    assert namespaced.status_code == 422
    assert "namespaces: 'nowhere'" in namespaced.json()["detail"]
    versioned = _run(client, load_versions={"ghost": "2024-01-01T00.00.00.000Z"})
    assert "'load_versions' keys [ghost] are not found" in str(versioned["error_message"])


@pytest.mark.parametrize("parameters", [CONTRACT_PARAMETERS, AWKWARD], ids=["contract", "awkward"])
def test_parameters_reach_kedro_0_19_with_types_and_characters_intact(
    client: httpx.Client, parameters: dict[str, object]
) -> None:
    carried = {name: value for name, value in parameters.items() if name not in INTERPOLATING}
    done = _run(client, "echo", parameters=carried)
    assert done["status"] == "completed", done["error_message"]
    log = read_log(client, str(done["id"]))
    echoed = json.loads(next(ln for ln in log.split("\n") if ln.startswith("ECHO "))[5:])
    for name, value in carried.items():
        assert echoed[name]["value"] == value, name
        assert echoed[name]["type"] == type(value).__name__, name


def test_what_kedro_0_19_cannot_run_is_refused_at_submit(client: httpx.Client) -> None:
    for body in (
        {"parameters": {"tmpl": CONTRACT_PARAMETERS["tmpl"]}},
        {"parameters": {"esc": AWKWARD["esc1"]}},
        {"namespaces": ["a", "b"]},
    ):
        response = client.post("/jobs", json={"pipeline_name": "echo", "queue": QUEUE, **body})
        assert response.status_code == 422, response.text
        assert "Kedro 0.19" in response.text


def test_cancel_stops_a_parallel_runner_run_whole(client: httpx.Client) -> None:
    job = submit(client, pipeline_name="children", queue=QUEUE, runner="ParallelRunner")

    def pids() -> list[int] | None:
        match = re.search(r"children pids: (\d+) (\d+)", read_log(client, job["id"]))
        return [int(pid) for pid in match.groups()] if match else None

    children = wait_until(pids, timeout=30, what="the node's children to start")
    run_group = os.getpgid(children[0])
    assert len(group_members(run_group)) >= 3
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    done = wait_for_status(client, job["id"], timeout=10)
    assert done["status"] == "cancelled"
    assert done["results"]["runner"] == "warm"
    for pid in children:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert not group_members(run_group)


def test_a_timeout_stops_the_run(client: httpx.Client) -> None:
    timed_out = _run(client, "slow", timeout_seconds=1, parameters={"slow": {"seconds": 30}})
    assert timed_out["status"] == "failed"
    assert "timed out" in str(timed_out["error_message"])


def test_progress_names_the_running_node_while_it_runs(client: httpx.Client) -> None:
    job = submit(client, pipeline_name="slow", queue=QUEUE, parameters={"slow": {"seconds": 2}})

    def running() -> dict[str, object] | None:
        current: dict[str, object] = client.get(f"/jobs/{job['id']}").json()
        return current if current["progress"]["running_node_names"] else None  # type: ignore[index]

    during = wait_until(running, timeout=30, what="the running node to be named")
    done = wait_for_status(client, job["id"])
    assert during["progress"]["running_node_names"] == ["sleep_with_progress"]  # type: ignore[index]
    assert done["progress"]["completed_node_names"] == ["sleep_with_progress"]
    assert done["progress"]["running_node_names"] == []
