"""The runner on its own: argv, run config, environment, and real `kedro run`s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from app.core.config import Settings
from app.core.exceptions import InvalidJobRequest
from app.runner.command import build_argv, build_run_config, check_for_kedro, kedro_environment
from app.runner.params import (
    MAX_PARAMETER_NODES,
    OMEGACONF_NODE_LIMIT,
    dump_run_config,
    yaml_nodes,
)
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


@pytest.mark.parametrize(
    ("kedro_version", "pipeline_flag"),
    [
        ("1.7.0", "--pipelines"),
        ("1.0.0", "--pipelines"),
        (None, "--pipelines"),
        ("0.19.14", "--pipeline"),
        ("0.19.0", "--pipeline"),
        ("0.18.14", "--pipeline"),
    ],
)
def test_argv_is_the_documented_list_in_the_versions_words(
    manager: JobManager, tmp_path: Path, kedro_version: str | None, pipeline_flag: str
) -> None:
    claim = _claimed(manager, pipeline_name="arithmetic", env="prod", tags=["a", "b"])
    argv = build_argv(
        claim.job, config_path=tmp_path / "c.json", kedro_python="/py", kedro_version=kedro_version
    )
    assert argv == [
        "/py",
        "-m",
        "kedro",
        "run",
        pipeline_flag,
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
        namespaces=["ns1", "ns2"],
        runner="ThreadRunner",
        load_versions={"ds": "2024-01-01"},
    )
    config = build_run_config(claim.job, kedro_version="1.7.0")
    assert config == {
        "run": {
            "params": {"x": "\\${oc.env:HOME}"},
            "node_names": "n1,n2",
            "namespaces": "ns1,ns2",
            "runner": "ThreadRunner",
            "load_versions": "ds:2024-01-01",
        }
    }
    assert json.loads(dump_run_config(config)) == config


# Run-config keys Kedro 0.19.14 refuses ("Key `...` in provided configuration is not valid").
KEDRO_1_ONLY_KEYS = {"pipelines", "namespaces", "runner_params", "only_missing_outputs"}


def test_run_config_for_kedro_0_19_uses_its_keys_and_no_escapes(manager: JobManager) -> None:
    """0.19 takes one `namespace` and hands nodes the file's values without unescaping."""
    claim = _claimed(
        manager,
        pipeline_name="arithmetic",
        parameters={"x": "a\\b $HOME", "n": {"l": [1, None]}},
        node_names=["n1"],
        from_nodes=["f"],
        to_nodes=["t"],
        from_inputs=["params:x"],
        to_outputs=["o"],
        namespaces=["ns1"],
        runner="ParallelRunner",
        load_versions={"ds": "2024-01-01T00.00.00.000Z"},
    )
    run = build_run_config(claim.job, kedro_version="0.19.14")["run"]
    assert run == {
        "params": {"x": "a\\b $HOME", "n": {"l": [1, None]}},
        "node_names": "n1",
        "from_nodes": "f",
        "to_nodes": "t",
        "from_inputs": "params:x",
        "to_outputs": "o",
        "namespace": "ns1",
        "runner": "ParallelRunner",
        "load_versions": "ds:2024-01-01T00.00.00.000Z",
    }
    assert not KEDRO_1_ONLY_KEYS & set(run)


def test_what_kedro_0_19_cannot_run_is_refused_naming_the_version(manager: JobManager) -> None:
    several = _claimed(manager, pipeline_name="arithmetic", namespaces=["a", "b"]).job
    check_for_kedro(several, several.parameters, kedro_version="1.7.0")
    with pytest.raises(InvalidJobRequest, match=r"Kedro 0\.19\.14 runs at most one namespace"):
        check_for_kedro(several, several.parameters, kedro_version="0.19.14")
    templated = _claimed(manager, pipeline_name="echo", parameters={"t": "${x}"}).job
    check_for_kedro(templated, templated.parameters, kedro_version=None)
    with pytest.raises(InvalidJobRequest, match=r"parameters\.t: contains '\$\{'.*Kedro 0.19"):
        check_for_kedro(templated, templated.parameters, kedro_version="0.19.14")


def test_the_largest_accepted_run_config_loads_in_omegaconf(manager: JobManager) -> None:
    """The parameters' node budget leaves room for every run option the file can hold."""
    pairs = (MAX_PARAMETER_NODES - 4) // 2  # 1 + 2 per scalar + 3 for a one-item list
    parameters: dict[str, object] = {f"k{i}": i for i in range(pairs)} | {"lst": [0]}
    assert yaml_nodes(parameters) == MAX_PARAMETER_NODES
    names = {
        option: ["x"]
        for option in ("node_names", "from_nodes", "to_nodes", "from_inputs", "to_outputs")
    }
    claim = _claimed(
        manager,
        pipeline_name="arithmetic",
        parameters=parameters,
        namespaces=["ns"],
        runner="ThreadRunner",
        load_versions={"ds": "v"},
        **names,
    )
    for version in ("1.7.0", "0.19.14"):  # `namespaces` or `namespace`: the same count
        assert yaml_nodes(build_run_config(claim.job, kedro_version=version)) == (
            OMEGACONF_NODE_LIMIT  # OmegaConf refuses only above it
        )
    config = build_run_config(claim.job, kedro_version="1.7.0")
    assert OmegaConf.to_container(OmegaConf.create(dump_run_config(config))) == config


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
