"""A small persisted dataset, so the demo project has data that outlives a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset


class JSONDataset(AbstractDataset[Any, Any]):
    """A JSON file: what a run saves here is still there for the next run to load."""

    def __init__(self, filepath: str) -> None:
        self._filepath = Path(filepath)

    def _load(self) -> Any:
        return json.loads(self._filepath.read_text(encoding="utf-8"))

    def _save(self, data: Any) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        self._filepath.write_text(json.dumps(data), encoding="utf-8")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
