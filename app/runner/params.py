"""Carry job parameters into Kedro's run-config file without losing anything.

Kedro reads the `--config` file with OmegaConf, so `${...}` would be resolved
as an interpolation. OmegaConf's escape is a backslash, and backslashes right
before `${` escape each other, so a run of k backslashes before `${` is written
as 2k+1 (measured with Kedro 1.7, see examples/NOTES.md). The file is JSON,
which YAML reads, with non-ASCII BMP characters written as `\\uXXXX`.
Values that cannot be carried exactly are refused at submit time.

Kedro 0.19 does not unescape: it hands nodes the raw values of the file (after
resolving them), so there a string holding `${` cannot arrive unchanged at all
and is refused (`check_parameters_for_kedro`). OmegaConf 2.4 refuses a YAML
document of more than 10,000 nodes (every mapping, key, sequence and scalar), so
the parameters are counted that way, with room left for the run options.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.core.exceptions import InvalidJobRequest

MAX_DEPTH = 16
# OmegaConf's `max_yaml_expanded_nodes` default: a run-config file of more YAML nodes
# fails the run ("YAML node expansion exceeds the configured limit of 10000").
OMEGACONF_NODE_LIMIT = 10_000
# The run-config document around the parameters: the root mapping, `run` and its
# mapping, `params` (the parameters' own mapping is counted with them), and a key and a
# comma string for each run option the gateway writes (at most eight).
RUN_CONFIG_NODES = 4 + 2 * 8
MAX_PARAMETER_NODES = OMEGACONF_NODE_LIMIT - RUN_CONFIG_NODES
PARAMETER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,199}$")
_INTERPOLATION = re.compile(r"(\\*)\$\{")
# YAML folds or rejects some BMP characters raw (U+0085, U+2028, U+007F...), but reads
# every `\uXXXX` escape exactly; it cannot pair surrogates, so astral ones stay raw.
_ESCAPE_IN_YAML = re.compile("[\x7f-\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALARS = (str, int, float, bool, type(None))


def check_parameters(parameters: dict[str, Any]) -> None:
    """Raise `InvalidJobRequest` unless every parameter reaches Kedro intact."""
    _check_mapping(parameters, path="parameters", depth=1)
    nodes = yaml_nodes(parameters)
    if nodes > MAX_PARAMETER_NODES:
        raise InvalidJobRequest(
            f"parameters: {nodes} YAML nodes (each mapping, name and value counts), more "
            f"than the {MAX_PARAMETER_NODES} that fit OmegaConf's limit of "
            f"{OMEGACONF_NODE_LIMIT} nodes per run-config file"
        )


def check_parameters_for_kedro(parameters: dict[str, Any], *, legacy: bool) -> None:
    """Raise `InvalidJobRequest` for values this Kedro line cannot receive unchanged."""
    if legacy and (path := _find_interpolation(parameters, "parameters")):
        raise InvalidJobRequest(
            f"{path}: contains '${{', which Kedro 0.19 resolves or fails on and cannot "
            "receive unchanged (Kedro 1.x can)"
        )


def yaml_nodes(value: Any) -> int:
    """The YAML nodes OmegaConf counts for `value`: every mapping, key, sequence and scalar."""
    if isinstance(value, dict):
        return 1 + sum(1 + yaml_nodes(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(yaml_nodes(item) for item in value)
    return 1


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


def _find_interpolation(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "${" in value else None
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    return next(
        (found for child, item in items if (found := _find_interpolation(item, child))), None
    )


def _check_mapping(mapping: dict[str, Any], *, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidJobRequest(f"{path}: nested deeper than {MAX_DEPTH} levels")
    for key, value in mapping.items():
        if not PARAMETER_KEY.fullmatch(key):
            raise InvalidJobRequest(
                f"{path}: invalid parameter name {key!r} (letters, digits, '_' and '-', "
                "starting with a letter or '_', at most 200 characters)"
            )
        child = f"{path}.{key}"
        if isinstance(value, dict):
            _check_mapping(value, path=child, depth=depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                _check_scalar(item, path=f"{child}[{index}]")
        else:
            _check_scalar(value, path=child)


def _check_scalar(value: Any, *, path: str) -> None:
    if not isinstance(value, _SCALARS):
        raise InvalidJobRequest(
            f"{path}: must be a string, number, boolean, null or a list of them"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJobRequest(f"{path}: must be a finite number")
    if isinstance(value, str) and _SURROGATE.search(value):
        raise InvalidJobRequest(f"{path}: contains an unpaired UTF-16 surrogate")
