"""Discover a Kedro project's pipelines with the project's own interpreter.

One subprocess: Kedro 1.7's public `kedro.inspection.get_project_snapshot`, or
on older Kedro the registry that `kedro registry list` reads. The gateway never
imports project code itself, so the API may run where the project is not.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass

from app.core.config import Settings
from app.runner.command import kedro_environment
from app.schemas.pipelines import Pipeline

logger = logging.getLogger(__name__)

MARKER = "GATEWAY-SNAPSHOT "
INSPECT_TIMEOUT_SECONDS = 120
_SCRIPT = r"""
import dataclasses, json, sys
import kedro
try:
    from kedro.inspection import get_project_snapshot
except ImportError:
    from pathlib import Path
    from kedro.framework.startup import bootstrap_project
    bootstrap_project(Path.cwd())
    from kedro.framework.project import pipelines as registry
    pipelines = [
        {"name": name, "nodes": [
            {"name": n.name, "func": getattr(n.func, "__name__", repr(n.func)),
             "inputs": list(n.inputs), "outputs": list(n.outputs), "tags": sorted(n.tags)}
            for n in pipeline.nodes]}
        for name, pipeline in registry.items()]
else:
    from kedro.io import CachedDataset, MemoryDataset, SharedMemoryDataset
    from kedro.io.core import parse_dataset_definition
    def persisted(entry):
        # Kedro's resume hint treats a dataset as persisted when the catalog has it and
        # it is not _EPHEMERAL (set per instance by these three): mirror that by type.
        try:
            cls = parse_dataset_definition({"type": entry["type"]})[0]
        except Exception:
            return False
        return not issubclass(cls, (CachedDataset, MemoryDataset, SharedMemoryDataset))
    snapshot = dataclasses.asdict(get_project_snapshot(project_path="."))
    kept = {name for name, entry in snapshot["datasets"].items() if persisted(entry)}
    pipelines = [
        {"name": p["name"], "nodes": [
            {"name": n["name"], "func": n["func_name"], "inputs": n["inputs"],
             "outputs": n["outputs"], "tags": n["tags"]}
            for n in p["nodes"]],
         "persisted_datasets": sorted(
            kept & {d for n in p["nodes"] for d in n["inputs"] + n["outputs"]})}
        for p in snapshot["pipelines"]]
sys.stdout.write("MARKER" + json.dumps({"kedro_version": kedro.__version__,
                                        "pipelines": pipelines}) + "\n")
""".replace("MARKER", MARKER)


@dataclass(frozen=True)
class ProjectReport:
    """What a worker can see of its Kedro project."""

    ok: bool
    kedro_version: str | None
    error: str | None
    pipelines: list[Pipeline] | None


def inspect_project(settings: Settings) -> ProjectReport:
    """Run the snapshot script in the project; never raises."""
    project = settings.kedro_project_path
    if not project.is_dir():
        return _failed(f"KEDRO_PROJECT_PATH {project} does not exist")
    try:
        completed = subprocess.run(  # noqa: S603  (argv list: the project's interpreter)
            [settings.kedro_python, "-c", _SCRIPT],
            cwd=project,
            env=kedro_environment(settings, os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=INSPECT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _failed(f"could not inspect the Kedro project: {exc}")
    output = completed.stdout.decode("utf-8", "replace")
    line = next((ln for ln in output.splitlines() if ln.startswith(MARKER)), None)
    if completed.returncode != 0 or line is None:
        errors = (completed.stderr or completed.stdout).decode("utf-8", "replace").strip()
        last = errors.splitlines()[-1] if errors else f"exit code {completed.returncode}"
        return _failed(f"could not inspect the Kedro project at {project}: {last}")
    snapshot = json.loads(line.removeprefix(MARKER))
    pipelines = [Pipeline.model_validate(item) for item in snapshot["pipelines"]]
    logger.info("Kedro project %s: %d pipelines", project, len(pipelines))
    return ProjectReport(
        ok=True, kedro_version=snapshot["kedro_version"], error=None, pipelines=pipelines
    )


def _failed(error: str) -> ProjectReport:
    logger.warning("%s", error)
    return ProjectReport(ok=False, kedro_version=None, error=error, pipelines=None)
