"""The `kedro run` command: its argv, its run-config file and its environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.runner.params import escape_parameters
from app.schemas.jobs import Job

LOGGING_CONFIG = Path(__file__).with_name("kedro_logging.yml")
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV")


def build_run_config(job: Job) -> dict[str, Any]:
    """The `--config` file's content: parameters and run options, types intact."""
    run: dict[str, Any] = {"params": escape_parameters(job.parameters)}
    for option in (
        "node_names",
        "from_nodes",
        "to_nodes",
        "from_inputs",
        "to_outputs",
        "namespaces",
    ):
        names = getattr(job, option)
        if names:
            run[option] = ",".join(names)
    if job.runner:
        run["runner"] = job.runner
    if job.load_versions:
        run["load_versions"] = ",".join(f"{k}:{v}" for k, v in job.load_versions.items())
    return {"run": run}


def build_argv(job: Job, *, config_path: Path, kedro_python: str) -> list[str]:
    """`<KEDRO_PYTHON> -m kedro run --pipelines <name> --config <file> [--env] [--tags]`."""
    argv = [
        kedro_python,
        "-m",
        "kedro",
        "run",
        "--pipelines",
        job.pipeline_name,
        "--config",
        str(config_path),
    ]
    if job.env:
        argv += ["--env", job.env]
    if job.tags:
        argv += ["--tags", ",".join(job.tags)]
    return argv


def kedro_environment(settings: Settings, inherited: Mapping[str, str]) -> dict[str, str]:
    """An allowlisted environment: no gateway secrets, no PYTHONPATH, no telemetry."""
    names = set(INHERITED_ENV) | set(settings.kedro_env_passthrough)
    env = {
        name: value for name, value in inherited.items() if name in names or name.startswith("LC_")
    }
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="ignore",
        KEDRO_LOGGING_CONFIG=inherited.get("KEDRO_LOGGING_CONFIG", str(LOGGING_CONFIG)),
    )
    return env
