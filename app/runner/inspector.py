"""Discover a Kedro project's pipelines with the project's own interpreter.

One subprocess reads the registry the way `kedro registry list` does (bootstrap
the project, then `kedro.framework.project.pipelines`): the same on Kedro 0.19,
which has no `kedro.inspection`, and on 1.x, where it matches
`get_project_snapshot` node for node. It also reports each node's `str(node)`,
which is what Kedro logs as `Running node: ...` (no namespace, and for an
unnamed node no name at all), so the runner can name running nodes. The
gateway never imports project code itself, so the API may run where the project
is not.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field

from app.core.config import Settings
from app.runner.command import kedro_environment
from app.schemas.pipelines import Pipeline

logger = logging.getLogger(__name__)

MARKER = "GATEWAY-SNAPSHOT "
INSPECT_TIMEOUT_SECONDS = 120
_SCRIPT = r"""
import json, sys
from pathlib import Path
import kedro
from kedro.framework.startup import bootstrap_project
bootstrap_project(Path.cwd())
from kedro.framework.project import pipelines as registry

def func_name(node):
    func = node.func
    while hasattr(func, "func"):  # functools.partial
        func = func.func
    return getattr(func, "__name__", type(func).__name__)

def persisted_datasets():
    # Kedro's resume hint treats a dataset as persisted when the catalog has it and it
    # is not _EPHEMERAL (set per instance by these three): mirror that by type. Kedro
    # 0.19 has no catalog snapshot: None, and a rerun restarts from the top.
    try:
        import dataclasses
        from kedro.inspection import get_project_snapshot
        from kedro.io import CachedDataset, MemoryDataset, SharedMemoryDataset
        from kedro.io.core import parse_dataset_definition
    except ImportError:
        return None
    def persisted(entry):
        try:
            cls = parse_dataset_definition({"type": entry["type"]})[0]
        except Exception:
            return False
        return not issubclass(cls, (CachedDataset, MemoryDataset, SharedMemoryDataset))
    snapshot = dataclasses.asdict(get_project_snapshot(project_path="."))
    return {name for name, entry in snapshot["datasets"].items() if persisted(entry)}

kept = persisted_datasets()
pipelines = [
    {"name": name, "nodes": [
        {"name": n.name, "log_text": str(n), "func": func_name(n), "inputs": list(n.inputs),
         "outputs": list(n.outputs), "tags": sorted(n.tags)}
        for n in pipeline.nodes],
     "persisted_datasets": None if kept is None else sorted(
        kept & {d for n in pipeline.nodes for d in list(n.inputs) + list(n.outputs)})}
    for name, pipeline in registry.items()]
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
    # Per pipeline, `Running node: <text>` -> the node's name (as `Completed node:` logs it).
    running_names: dict[str, dict[str, str]] = field(default_factory=dict)

    def node_names(self, pipeline: str) -> dict[str, str]:
        """`str(node)` -> node name for the nodes of `pipeline` (empty if unknown)."""
        return self.running_names.get(pipeline, {})


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
    running_names = {
        item["name"]: {node["log_text"]: node["name"] for node in item["nodes"] or []}
        for item in snapshot["pipelines"]
    }
    return ProjectReport(
        ok=True,
        kedro_version=snapshot["kedro_version"],
        error=None,
        pipelines=pipelines,
        running_names=running_names,
    )


def _failed(error: str) -> ProjectReport:
    logger.warning("%s", error)
    return ProjectReport(ok=False, kedro_version=None, error=error, pipelines=None)
