"""Parameters from the command line: `-p key=value`, dotted keys, typed values, files."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class ParameterError(ValueError):
    """A parameter assignment or file that cannot be used."""


def parse_value(text: str) -> Any:
    """A value typed the way JSON would read it, else the text itself.

    `10` → 10, `0.1` → 0.1, `true`/`false` → booleans, `null` → None, `[1, 2]` and
    `{"a": 1}` → list and object, `"10"` (quoted) → the string "10"; anything else,
    including the empty string, `NaN` and `1e999`, stays the string as typed.
    """
    if not text.strip():
        return text

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=no_constants)
    except ValueError:
        return text
    if _has_non_finite(value):
        return text
    return value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def parse_assignment(item: str) -> tuple[list[str], Any]:
    """`model.lr=0.1` → (["model", "lr"], 0.1)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ParameterError(f"expected KEY=VALUE, got {item!r}")
    path = key.split(".")
    if any(not part for part in path):
        raise ParameterError(f"empty name in parameter key {key!r}")
    return path, parse_value(raw)


def set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at the dotted `path` in `target`, making objects on the way."""
    node = target
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(path[: depth + 1])
            raise ParameterError(
                f"cannot set {'.'.join(path)}: {prefix} is already {json.dumps(child)}, "
                "not an object"
            )
        node = child
    node[path[-1]] = value


def build_parameters(
    assignments: Iterable[str], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`base` (e.g. a params file) with each `key=value` applied over it, in order."""
    result = copy.deepcopy(base) if base else {}
    for item in assignments:
        path, value = parse_assignment(item)
        set_path(result, path, value)
    return result


def load_params_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file (by suffix; YAML otherwise) whose top level is an object."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read {file}: {exc}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ParameterError(f"{file} is not valid {_kind(file)}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{file} must hold an object (a mapping) at the top level")
    return data


def _kind(file: Path) -> str:
    return "JSON" if file.suffix.lower() == ".json" else "YAML"


def split_names(values: Iterable[str]) -> list[str]:
    """Repeated and comma-separated options as one list: `-t a,b -t c` → [a, b, c]."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def parse_load_versions(values: Iterable[str]) -> dict[str, str]:
    """`dataset:version` (Kedro's form) or `dataset=version`, repeated or comma-separated."""
    versions: dict[str, str] = {}
    for item in split_names(values):
        sep = "=" if "=" in item else ":"
        name, found, version = item.partition(sep)
        if not found or not name or not version:
            raise ParameterError(f"expected DATASET:VERSION, got {item!r}")
        versions[name] = version
    return versions
