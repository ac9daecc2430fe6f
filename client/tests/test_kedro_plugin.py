"""`kedro gateway run` (the Kedro plugin) in the example project, against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import GATEWAY_REPO, Gateway, free_port

from kedro_gateway_client.kedro_plugin import split_params, submit_argv

PROJECT = GATEWAY_REPO / "examples" / "demo_project"
KEDRO = Path(sys.executable).with_name("kedro")


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def start_kedro_gateway_run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(KEDRO), "gateway", "run", *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """The three runs, started together (each `kedro` start-up takes seconds)."""
    home = tmp_path_factory.mktemp("kedro-plugin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEDRO_GATEWAY_")}
    env.update(
        KEDRO_GATEWAY_URL=gateway.url,
        XDG_CONFIG_HOME=str(home / "config"),
        HOME=str(home),
        COLUMNS="200",
        KEDRO_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
    )
    down = {**env, "KEDRO_GATEWAY_URL": f"http://127.0.0.1:{free_port()}"}
    started = {
        "arithmetic": start_kedro_gateway_run(
            ["--pipeline", "arithmetic", "--params", "initial_value=10"], env
        ),
        "fail": start_kedro_gateway_run(["--pipelines", "fail"], env),
        "down": start_kedro_gateway_run(["--pipeline", "arithmetic"], down),
    }
    results: dict[str, Result] = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=180)
            results[name] = Result(process.returncode, stdout, stderr)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def test_params_and_flags_become_a_submit_command_line() -> None:
    assert split_params("initial_value=10, model.lr=0.1,,name=a=b") == [
        "initial_value=10",
        "model.lr=0.1",
        "name=a=b",
    ]
    assert submit_argv(
        "arithmetic", params=["a=1"], tags=["x,y"], runner="ThreadRunner", follow=True
    ) == ["submit", "arithmetic", "--param=a=1", "--tags=x,y", "--runner=ThreadRunner", "--follow"]


@pytest.mark.e2e
def test_run_follows_the_log_and_exits_0(runs: dict[str, Result]) -> None:
    result = runs["arithmetic"]
    assert result.returncode == 0, result.stderr
    assert "subtract_ten" in result.stdout
    assert "completed" in result.stdout


@pytest.mark.e2e
def test_a_failed_run_exits_1(runs: dict[str, Result]) -> None:
    result = runs["fail"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stdout


@pytest.mark.e2e
def test_a_gateway_that_is_down_exits_4_without_a_traceback(runs: dict[str, Result]) -> None:
    result = runs["down"]
    assert result.returncode == 4, result.stdout + result.stderr
    assert "error: request to http://127.0.0.1:" in result.stderr
    assert "failed: [Errno 111] Connection refused" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
