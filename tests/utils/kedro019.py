"""The example project on Kedro 0.19, in a virtualenv of its own (`scripts/kedro019-project`)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from app.core.config import REPO_ROOT

BUILD_DIR = REPO_ROOT / ".cache" / "kedro019"
KEDRO_VERSION = "0.19.14"


@dataclass(frozen=True)
class Kedro019:
    python: str
    project: Path


def build_kedro019() -> Kedro019:
    """Build it unless already built (about 45 s from scratch: pip install from PyPI)."""
    completed = subprocess.run(
        [str(REPO_ROOT / "scripts" / "kedro019-project"), str(BUILD_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    project = Path(completed.stdout.strip().splitlines()[-1])
    return Kedro019(python=str(BUILD_DIR / "venv" / "bin" / "python"), project=project)
