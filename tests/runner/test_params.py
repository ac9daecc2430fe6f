"""Parameter checks: what reaches Kedro intact is accepted, anything else is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from app.core.exceptions import InvalidJobRequest
from app.runner.params import (
    MAX_DEPTH,
    MAX_PARAMETER_NODES,
    check_parameters,
    check_parameters_for_kedro,
    dump_run_config,
    escape_parameters,
    yaml_nodes,
)
from tests.utils.expected import CONTRACT_PARAMETERS


def _nested(depth: int) -> dict[str, Any]:
    """A mapping `depth` levels deep (the top level counts as one)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_accepts_the_contract_example() -> None:
    """Commas, '=', '#', ':', unicode, YAML-ish words and templates are all passable."""
    check_parameters(CONTRACT_PARAMETERS)


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"_private": 1, "with-dash": 2, "Mixed_Case9": 3},
        {"a" * 200: 1},
        {"empty_list": []},
        {"big": 10**30, "neg": -1, "zero": 0.0, "tiny": 5e-324},
        {"quotes": 'it\'s "quoted"', "newline": "a\nb", "tab": "\t"},
        {"backslash": "C:\\path\\", "dollar": "$HOME", "brace": "{x}"},
    ],
)
def test_accepts_plain_values(parameters: dict[str, Any]) -> None:
    """Ordinary names and scalar values pass."""
    check_parameters(parameters)


@pytest.mark.parametrize(
    "key",
    ["", "a b", "9lives", "a.b", "a/b", "x${y}", "ü", "-x", "a" * 201, "a;b", "$(id)"],
)
def test_rejects_bad_keys(key: str) -> None:
    """Keys must be plain Kedro parameter names."""
    with pytest.raises(InvalidJobRequest, match="invalid parameter name"):
        check_parameters({key: 1})


def test_rejects_bad_keys_when_nested() -> None:
    """Nested mappings are held to the same naming rule."""
    with pytest.raises(InvalidJobRequest, match=r"parameters\.outer"):
        check_parameters({"outer": {"bad key": 1}})


def test_rejects_key_with_trailing_newline() -> None:
    """A newline is not part of any Kedro parameter name."""
    with pytest.raises(InvalidJobRequest):
        check_parameters({"a\n": 1})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_rejects_non_finite_floats(value: float) -> None:
    """NaN and infinities cannot be written to the run config losslessly."""
    with pytest.raises(InvalidJobRequest, match="finite"):
        check_parameters({"x": value})
    with pytest.raises(InvalidJobRequest, match="finite"):
        check_parameters({"x": [1, value]})
    with pytest.raises(InvalidJobRequest, match="finite"):
        check_parameters({"x": {"y": value}})


@pytest.mark.parametrize("item", [{"a": 1}, [1, 2], {}, (1,), {1, 2}, b"bytes", object()])
def test_rejects_non_scalars_inside_lists(item: Any) -> None:
    """List items are scalars only: no mappings, no nested lists."""
    with pytest.raises(InvalidJobRequest, match=r"parameters\.lst\[1\]"):
        check_parameters({"lst": [1, item]})


@pytest.mark.parametrize("value", [(1, 2), b"bytes", object(), {1, 2}])
def test_rejects_non_json_values(value: Any) -> None:
    """Only JSON scalars, lists and mappings are parameters."""
    with pytest.raises(InvalidJobRequest):
        check_parameters({"x": value})


def test_accepts_backslashes_before_interpolation() -> None:
    """Backslashes before '${' are escaped too, so such values are accepted."""
    check_parameters({"x": "\\${oc.env:HOME}", "y": ["ok", "a\\\\${b}"]})


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", ["ok", "\udc80"]])
def test_rejects_unpaired_surrogates(value: Any) -> None:
    """A lone surrogate cannot be encoded as UTF-8 for Kedro."""
    with pytest.raises(InvalidJobRequest, match="surrogate"):
        check_parameters({"x": value})


def test_depth_limit() -> None:
    """Nesting up to MAX_DEPTH levels passes; one more is refused."""
    check_parameters(_nested(MAX_DEPTH))
    with pytest.raises(InvalidJobRequest, match="nested deeper"):
        check_parameters(_nested(MAX_DEPTH + 1))


def test_parameters_are_counted_in_yaml_nodes_against_omegaconfs_limit() -> None:
    """Every mapping, key, list and scalar counts; room is left for the run options."""
    flat = (MAX_PARAMETER_NODES - 1) // 2  # a mapping of n scalars is 1 + 2n nodes
    check_parameters({f"k{i}": i for i in range(flat)})
    with pytest.raises(InvalidJobRequest, match="OmegaConf's limit of 10000"):
        check_parameters({f"k{i}": i for i in range(flat + 1)})
    check_parameters({"lst": list(range(MAX_PARAMETER_NODES - 3))})
    with pytest.raises(InvalidJobRequest, match="YAML nodes"):
        check_parameters({"lst": list(range(MAX_PARAMETER_NODES - 2))})
    with pytest.raises(InvalidJobRequest, match="YAML nodes"):
        check_parameters({"a": {f"k{i}": i for i in range(2500)}, "b": [0] * 5000})


def test_five_thousand_parameters_are_refused_naming_the_limit() -> None:
    with pytest.raises(InvalidJobRequest) as refused:
        check_parameters({f"p{i}": i for i in range(5000)})
    assert "10001 YAML nodes" in refused.value.detail
    assert f"the {MAX_PARAMETER_NODES} that fit OmegaConf's limit" in refused.value.detail


@pytest.mark.parametrize(
    "document",
    [
        {"run": {"params": {f"k{i}": i for i in range(4997)}}},  # 9999 nodes: Kedro ran it
        {"run": {"params": {"x": [{"a": 1}]}, "runner": "ThreadRunner"}},
        {"run": {"params": {}, "node_names": "a,b", "tags": None}},
    ],
    ids=["4997-flat", "nested", "options"],
)
def test_yaml_nodes_counts_what_omegaconf_counts(
    document: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OmegaConf.load (how `kedro run --config` reads the file) takes exactly that many."""
    path = tmp_path / "run-config.json"
    path.write_text(dump_run_config(document), encoding="utf-8")
    nodes = yaml_nodes(document)
    monkeypatch.setenv("OMEGACONF_MAX_YAML_EXPANDED_NODES", str(nodes))
    assert OmegaConf.to_container(OmegaConf.load(path)) == document
    monkeypatch.setenv("OMEGACONF_MAX_YAML_EXPANDED_NODES", str(nodes - 1))
    with pytest.raises(Exception, match="YAML node expansion exceeds"):
        OmegaConf.load(path)


def test_strings_with_interpolations_are_refused_for_kedro_0_19_only() -> None:
    parameters = {"ok": "$HOME {x} $", "deep": {"l": [1, "a${b}"]}}
    check_parameters_for_kedro(parameters, legacy=False)
    with pytest.raises(InvalidJobRequest, match=r"parameters\.deep\.l\[1\]: contains '\$\{'"):
        check_parameters_for_kedro(parameters, legacy=True)
    check_parameters_for_kedro({"ok": "$HOME {x} $ \\$ {"}, legacy=True)


def test_escape_parameters_escapes_interpolations() -> None:
    """Every `${` becomes `\\${`, at any depth; other values are untouched."""
    escaped = escape_parameters(CONTRACT_PARAMETERS)
    assert escaped["tmpl"] == "\\${oc.env:HOME}"
    assert {key: value for key, value in escaped.items() if key != "tmpl"} == {
        key: value for key, value in CONTRACT_PARAMETERS.items() if key != "tmpl"
    }
    nested = escape_parameters({"a": {"b": ["${x}", "y ${z} ${w}", 3]}, "n": None})
    assert nested == {"a": {"b": ["\\${x}", "y \\${z} \\${w}", 3]}, "n": None}
    assert escape_parameters("$ {x} $x {x}") == "$ {x} $x {x}"


@pytest.mark.parametrize("backslashes", [0, 1, 2, 3])
def test_escape_parameters_escapes_backslash_runs(backslashes: int) -> None:
    """k backslashes right before `${` become 2k+1, so OmegaConf reads back k and `${`."""
    value = "a" + "\\" * backslashes + "${x} b\\c"
    assert escape_parameters(value) == "a" + "\\" * (2 * backslashes + 1) + "${x} b\\c"


def test_escape_parameters_does_not_mutate_its_input() -> None:
    """The job's stored parameters stay as submitted."""
    original = {"a": ["${x}"], "b": {"c": "${y}"}}
    escape_parameters(original)
    assert original == {"a": ["${x}"], "b": {"c": "${y}"}}


def test_escape_parameters_keeps_types() -> None:
    """Numbers, booleans and null keep their types (bool is not turned into int)."""
    escaped = escape_parameters({"t": True, "i": 1, "f": 1.0, "z": None})
    assert escaped == {"t": True, "i": 1, "f": 1.0, "z": None}
    assert [type(value) for value in escaped.values()] == [bool, int, float, type(None)]


def test_escaped_parameters_round_trip_through_omegaconf() -> None:
    """What Kedro resolves from the escaped run config equals what was submitted."""
    omegaconf = pytest.importorskip("omegaconf")
    submitted = {
        **CONTRACT_PARAMETERS,
        "one_backslash": "a\\${x}",
        "two_backslashes": "\\\\${y}z",
        "lone_dollar": "$ {z} $",
        "deep": {"inner": ["${a}", "b"]},
    }
    check_parameters(submitted)
    text = json.dumps({"run": {"params": escape_parameters(submitted)}})
    resolved = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.create(text), resolve=True)
    assert resolved["run"]["params"] == submitted
