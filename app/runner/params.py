"""Carry job parameters into Kedro's run-config file without losing anything.

Kedro reads the `--config` file with OmegaConf, so `${...}` would be resolved
as an interpolation. OmegaConf's escape is a backslash, and backslashes right
before `${` escape each other, so a run of k backslashes before `${` is written
as 2k+1 (measured with Kedro 1.7, see examples/NOTES.md). The file is JSON,
which YAML reads, with non-ASCII BMP characters written as `\\uXXXX`.
Values that cannot be carried exactly are refused at submit time.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.core.exceptions import InvalidJobRequest

MAX_DEPTH = 16
MAX_LEAVES = 10_000
PARAMETER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,199}$")
_INTERPOLATION = re.compile(r"(\\*)\$\{")
# YAML folds or rejects some BMP characters raw (U+0085, U+2028, U+007F...), but reads
# every `\uXXXX` escape exactly; it cannot pair surrogates, so astral ones stay raw.
_ESCAPE_IN_YAML = re.compile("[\x7f-\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALARS = (str, int, float, bool, type(None))


def check_parameters(parameters: dict[str, Any]) -> None:
    """Raise `InvalidJobRequest` unless every parameter reaches Kedro intact."""
    leaves = _check_mapping(parameters, path="parameters", depth=1)
    if leaves > MAX_LEAVES:
        raise InvalidJobRequest(f"parameters: more than {MAX_LEAVES} values")


def dump_run_config(config: dict[str, Any]) -> str:
    """JSON that YAML (and so Kedro's `--config`) reads back to exactly `config`."""
    text = json.dumps(config, ensure_ascii=False)
    return _ESCAPE_IN_YAML.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def escape_parameters(value: Any) -> Any:
    """Escape OmegaConf interpolations so strings arrive verbatim."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda match: match.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {key: escape_parameters(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_parameters(item) for item in value]
    return value


def _check_mapping(mapping: dict[str, Any], *, path: str, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise InvalidJobRequest(f"{path}: nested deeper than {MAX_DEPTH} levels")
    leaves = 0
    for key, value in mapping.items():
        if not PARAMETER_KEY.fullmatch(key):
            raise InvalidJobRequest(
                f"{path}: invalid parameter name {key!r} (letters, digits, '_' and '-', "
                "starting with a letter or '_', at most 200 characters)"
            )
        child = f"{path}.{key}"
        if isinstance(value, dict):
            leaves += _check_mapping(value, path=child, depth=depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                _check_scalar(item, path=f"{child}[{index}]")
            leaves += max(1, len(value))
        else:
            _check_scalar(value, path=child)
            leaves += 1
    return leaves


def _check_scalar(value: Any, *, path: str) -> None:
    if not isinstance(value, _SCALARS):
        raise InvalidJobRequest(
            f"{path}: must be a string, number, boolean, null or a list of them"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJobRequest(f"{path}: must be a finite number")
    if isinstance(value, str) and _SURROGATE.search(value):
        raise InvalidJobRequest(f"{path}: contains an unpaired UTF-16 surrogate")
