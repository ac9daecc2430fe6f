"""The `kedro run` command: its argv, its run-config file and its environment.

Both Kedro lines are spoken, each in its own words (measured with 0.19.14 and
1.7.0): 1.x picks the pipeline with `--pipelines` and takes `namespaces` (a
list), 0.19 has only `--pipeline` and one `namespace`, and does not unescape
`\\${` in run-config parameters. No flag or key a version lacks is ever sent:
0.19 refuses unknown run-config keys, and 1.x warns about `--pipeline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.exceptions import InvalidJobRequest
from app.runner.params import check_parameters_for_kedro, escape_parameters
from app.schemas.jobs import Job, RunOptions

LOGGING_CONFIG = Path(__file__).with_name("kedro_logging.yml")
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV")
# Run options written to the run-config file as comma strings, under the same key on
# both lines (`namespaces` is handled apart: 0.19 calls it `namespace`).
_LIST_OPTIONS = ("node_names", "from_nodes", "to_nodes", "from_inputs", "to_outputs")


def is_legacy_kedro(kedro_version: str | None) -> bool:
    """Kedro before 1.0 (the 0.19 line). An unknown version is taken for 1.x."""
    major = (kedro_version or "").split(".", 1)[0]
    return major.isdigit() and int(major) < 1


def check_for_kedro(
    options: RunOptions, parameters: dict[str, Any], *, kedro_version: str | None
) -> None:
    """Raise `InvalidJobRequest` for what this Kedro version cannot run as asked."""
    legacy = is_legacy_kedro(kedro_version)
    if legacy and len(options.namespaces) > 1:
        raise InvalidJobRequest(
            f"namespaces: Kedro {kedro_version} runs at most one namespace per run "
            "(Kedro 1.x runs several)"
        )
    check_parameters_for_kedro(parameters, legacy=legacy)


def build_run_config(job: Job, *, kedro_version: str | None) -> dict[str, Any]:
    """The `--config` file's content: parameters and run options, types intact."""
    legacy = is_legacy_kedro(kedro_version)
    # 0.19 hands nodes the file's values as written, so there is nothing to escape (and
    # `check_for_kedro` refuses what 0.19 would resolve).
    params = job.parameters if legacy else escape_parameters(job.parameters)
    run: dict[str, Any] = {"params": params}
    for option in _LIST_OPTIONS:
        names = getattr(job, option)
        if names:
            run[option] = ",".join(names)
    if job.namespaces:
        run["namespace" if legacy else "namespaces"] = ",".join(job.namespaces)
    if job.runner:
        run["runner"] = job.runner
    if job.load_versions:
        run["load_versions"] = ",".join(f"{k}:{v}" for k, v in job.load_versions.items())
    return {"run": run}


def build_argv(
    job: Job, *, config_path: Path, kedro_python: str, kedro_version: str | None
) -> list[str]:
    """`<KEDRO_PYTHON> -m kedro run --pipelines <name> --config <file> [--env] [--tags]`

    (`--pipeline <name>` on Kedro 0.19, which has no `--pipelines`)."""
    pipeline_flag = "--pipeline" if is_legacy_kedro(kedro_version) else "--pipelines"
    argv = [
        kedro_python,
        "-m",
        "kedro",
        "run",
        pipeline_flag,
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
