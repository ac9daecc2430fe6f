"""The runner on its own: argv, run config, environment, and real `kedro run`s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.config import Settings
from app.runner.command import build_argv, build_run_config, kedro_environment
from app.runner.params import dump_run_config
from app.runner.run import KedroRunner
from app.schemas.jobs import JobCreate, JobStatus
from app.store import JobManager


def _claimed(manager: JobManager, **body: object):
    job, _ = manager.create_job(
        request=JobCreate.model_validate(body), user_id=None, dispatched=True
    )
    claim = manager.claim_job(job_id=job.id, worker="test@host")
    assert claim is not None
    return claim


def test_argv_is_the_documented_list(manager: JobManager, tmp_path: Path) -> None:
    claim = _claimed(manager, pipeline_name="arithmetic", env="prod", tags=["a", "b"])
    argv = build_argv(claim.job, config_path=tmp_path / "c.json", kedro_python="/py")
    assert argv == [
        "/py",
        "-m",
        "kedro",
        "run",
        "--pipelines",
        "arithmetic",
        "--config",
        str(tmp_path / "c.json"),
        "--env",
        "prod",
        "--tags",
        "a,b",
    ]


def test_run_config_carries_options_in_kedro_forms(manager: JobManager) -> None:
    claim = _claimed(
        manager,
        pipeline_name="arithmetic",
        parameters={"x": "${oc.env:HOME}"},
        node_names=["n1", "n2"],
        runner="ThreadRunner",
        load_versions={"ds": "2024-01-01"},
    )
    config = build_run_config(claim.job)
    assert config == {
        "run": {
            "params": {"x": "\\${oc.env:HOME}"},
            "node_names": "n1,n2",
            "runner": "ThreadRunner",
            "load_versions": "ds:2024-01-01",
        }
    }
    assert json.loads(dump_run_config(config)) == config


def test_environment_is_allowlisted(settings: Settings) -> None:
    inherited = {
        "PATH": "/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "API_KEYS": "alice:secret",
        "DATABASE_URL": "postgresql://u:pw@db/x",
        "CELERY_BROKER_URL": "redis://:pw@r",
        "PYTHONPATH": "/evil",
        "AWS_SECRET_ACCESS_KEY": "s3",
        "MY_TOKEN": "t",
    }
    env = kedro_environment(
        settings.model_copy(update={"kedro_env_passthrough": ["MY_TOKEN"]}), inherited
    )
    assert env["PATH"] == "/bin" and env["LC_ALL"] == "C.UTF-8" and env["MY_TOKEN"] == "t"
    for secret in (
        "API_KEYS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "PYTHONPATH",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert secret not in env
    assert env["KEDRO_DISABLE_TELEMETRY"] == "1" and env["KEDRO_LOGGING_CONFIG"].endswith(".yml")


@pytest.mark.e2e
def test_unknown_pipeline_fails_at_run_time_naming_it(
    manager: JobManager, settings: Settings
) -> None:
    """With no registry reported yet, only the name's syntax is checked at submit."""
    claim = _claimed(manager, pipeline_name="no_such_pipeline")
    outcome = KedroRunner(manager=manager, settings=settings).run(claim)
    job = manager.get_job(job_id=claim.job.id)
    assert outcome.status == job.status == JobStatus.failed
    assert job.exit_code == 1
    assert job.error_message is not None and "no_such_pipeline" in job.error_message


@pytest.mark.e2e
def test_missing_interpreter_fails_the_job_clearly(manager: JobManager, settings: Settings) -> None:
    claim = _claimed(manager, pipeline_name="arithmetic")
    broken = settings.model_copy(update={"kedro_python": "/nonexistent/python"})
    KedroRunner(manager=manager, settings=broken).run(claim)
    job = manager.get_job(job_id=claim.job.id)
    assert job.status == JobStatus.failed
    assert job.error_message is not None
