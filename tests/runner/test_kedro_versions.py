"""The runner against real projects on both Kedro lines: discovery, and the gateway's own
flags drawing no deprecation warning from Kedro 1.x."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.core.config import EXAMPLE_PROJECT, Settings
from app.runner.command import build_argv, build_run_config, kedro_environment
from app.runner.inspector import inspect_project
from app.runner.params import dump_run_config
from app.runner.run import KedroRunner
from app.schemas.jobs import JobCreate, JobStatus
from app.store import JobManager
from tests.utils.kedro019 import KEDRO_VERSION, Kedro019

pytestmark = pytest.mark.e2e

ARITHMETIC_RUNNING_NAMES = {
    "add_five: add_five([params:initial_value]) -> [plus_five]": "add_five",
    "multiply_by_two: multiply_by_two([plus_five]) -> [times_two]": "multiply_by_two",
    "subtract_ten: subtract_ten([times_two]) -> [result]": "subtract_ten",
}


def _on(settings: Settings, kedro019: Kedro019 | None) -> Settings:
    if kedro019 is None:
        return settings
    return settings.model_copy(
        update={"kedro_python": kedro019.python, "kedro_project_path": kedro019.project}
    )


@pytest.mark.parametrize("line", ["1.7", "0.19"])
def test_the_inspector_reports_the_version_and_what_running_nodes_log(
    settings: Settings, line: str, request: pytest.FixtureRequest
) -> None:
    kedro019 = request.getfixturevalue("kedro019") if line == "0.19" else None
    report = inspect_project(_on(settings, kedro019))
    assert report.ok, report.error
    assert report.kedro_version == (KEDRO_VERSION if kedro019 else "1.7.0")
    assert report.pipelines is not None
    names = [pipeline.name for pipeline in report.pipelines]
    assert {"__default__", "arithmetic", "fail", "slow", "echo", "children"} <= set(names)
    arithmetic = next(p for p in report.pipelines if p.name == "arithmetic")
    assert [node.name for node in arithmetic.nodes or []] == list(ARITHMETIC_RUNNING_NAMES.values())
    assert report.node_names("arithmetic") == ARITHMETIC_RUNNING_NAMES


def test_kedro_1_gets_no_deprecated_flag_from_the_gateway(
    manager: JobManager, settings: Settings, tmp_path: Path
) -> None:
    """Every run option the gateway sends, with Kedro's deprecation warnings shown."""
    job, _ = manager.create_job(
        request=JobCreate(
            pipeline_name="arithmetic",
            parameters={"initial_value": 1},
            env="local",
            tags=["first", "rest"],
            runner="SequentialRunner",
            node_names=["add_five", "multiply_by_two"],
            from_nodes=["add_five"],
            to_nodes=["multiply_by_two"],
            from_inputs=["params:initial_value"],
            to_outputs=["times_two"],
        ),
        user_id=None,
        dispatched=True,
    )
    config = tmp_path / "run-config.json"
    config.write_text(dump_run_config(build_run_config(job, kedro_version="1.7.0")))
    argv = build_argv(
        job, config_path=config, kedro_python=settings.kedro_python, kedro_version="1.7.0"
    )
    env = kedro_environment(settings, os.environ) | {"PYTHONWARNINGS": "always::DeprecationWarning"}

    def output(argv: list[str]) -> str:
        completed = subprocess.run(
            argv, cwd=EXAMPLE_PROJECT, env=env, capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed.stdout + completed.stderr

    ours = output(argv)
    assert "multiply_by_two: value = 12" in ours
    assert "DeprecationWarning" not in ours, ours
    # The check can see one: Kedro 1.x's own deprecated spelling of the same flag.
    assert "DeprecationWarning: Option '--pipeline' is deprecated" in output(
        [arg if arg != "--pipelines" else "--pipeline" for arg in argv]
    )


def test_a_job_kedro_0_19_cannot_run_fails_before_starting_it(
    manager: JobManager, settings: Settings, kedro019: Kedro019
) -> None:
    """Submitted before the queue's Kedro version was known: refused at run time instead."""
    job, _ = manager.create_job(
        request=JobCreate(pipeline_name="echo", parameters={"t": "${oc.env:HOME}"}),
        user_id=None,
        dispatched=True,
    )
    claim = manager.claim_job(job_id=job.id, worker="test@host")
    assert claim is not None
    on_019 = _on(settings, kedro019)
    outcome = KedroRunner(manager=manager, settings=on_019, project=inspect_project(on_019)).run(
        claim
    )
    done = manager.get_job(job_id=job.id)
    assert outcome.status == done.status == JobStatus.failed
    assert done.exit_code is None and done.output_bytes == 0
    assert done.error_message is not None and "Kedro 0.19" in done.error_message


def test_a_cold_run_on_kedro_0_19_completes_with_named_progress(
    manager: JobManager, settings: Settings, kedro019: Kedro019
) -> None:
    job, _ = manager.create_job(
        request=JobCreate(
            pipeline_name="arithmetic", parameters={"initial_value": 7}, runner="ParallelRunner"
        ),
        user_id=None,
        dispatched=True,
    )
    claim = manager.claim_job(job_id=job.id, worker="test@host")
    assert claim is not None
    on_019 = _on(settings, kedro019)
    report = inspect_project(on_019)
    KedroRunner(manager=manager, settings=on_019, project=report).run(claim)
    done = manager.get_job(job_id=job.id)
    assert done.status == JobStatus.completed, done.error_message
    assert done.results is not None and done.results["runner"] == "cold"
    assert sorted(done.results["node_seconds"]) == sorted(ARITHMETIC_RUNNING_NAMES.values())
    assert done.progress.completed_node_names == list(ARITHMETIC_RUNNING_NAMES.values())
    assert done.progress.running_node_names == []
