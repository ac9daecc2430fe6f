"""Parameters from the command line: typed values, dotted keys, files, run options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kedro_gateway_client.cli import build_job_create
from kedro_gateway_client.params import (
    ParameterError,
    build_parameters,
    load_params_file,
    parse_load_versions,
    parse_value,
    split_names,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("-3", -3),
        ("0.1", 0.1),
        ("1e-3", 0.001),
        ("true", True),
        ("false", False),
        ("null", None),
        ('[1, 2, "a"]', [1, 2, "a"]),
        ('{"a": {"b": 1}}', {"a": {"b": 1}}),
        ('"10"', "10"),  # quoted: the string
        ("hello", "hello"),
        ("a,b=c d", "a,b=c d"),
        ("True", "True"),  # only JSON's spelling is a boolean
        ("None", "None"),
        ("", ""),
        ("  ", "  "),
        ("NaN", "NaN"),
        ("1e999", "1e999"),  # not finite: kept as typed
        ("[1, NaN]", "[1, NaN]"),
        ("2026-01-01", "2026-01-01"),
        ("ünïcødé ✓", "ünïcødé ✓"),
    ],
)
def test_values_are_typed_like_json_else_text(text: str, value: Any) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_dotted_keys_nest_and_later_assignments_win() -> None:
    params = build_parameters(
        ["model.lr=0.1", "model.layers=[64, 32]", "name=run=1", "model.lr=0.2", "x.y.z=true"]
    )
    assert params == {
        "model": {"lr": 0.2, "layers": [64, 32]},
        "name": "run=1",  # only the first '=' splits
        "x": {"y": {"z": True}},
    }


def test_assignments_apply_over_a_base_without_changing_it() -> None:
    base = {"model": {"lr": 0.1, "depth": 3}, "seed": 1}
    merged = build_parameters(["model.lr=0.5", 'extra={"k": 1}'], base)
    assert merged == {"model": {"lr": 0.5, "depth": 3}, "seed": 1, "extra": {"k": 1}}
    assert base["model"] == {"lr": 0.1, "depth": 3}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["novalue"], "expected KEY=VALUE"),
        (["=1"], "expected KEY=VALUE"),
        (["a..b=1"], "empty name"),
        (["a.=1"], "empty name"),
        (["a=1", "a.b=2"], "a is already 1, not an object"),
    ],
)
def test_bad_assignments_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        build_parameters(items)


def test_params_files_yaml_and_json(tmp_path: Path) -> None:
    yml = tmp_path / "p.yml"
    yml.write_text("model:\n  lr: 0.1\nname: x\n")
    assert load_params_file(yml) == {"model": {"lr": 0.1}, "name": "x"}
    js = tmp_path / "p.json"
    js.write_text('{"a": [1, 2]}')
    assert load_params_file(js) == {"a": [1, 2]}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_params_file(empty) == {}
    listed = tmp_path / "list.yml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="object"):
        load_params_file(listed)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ParameterError, match="not valid JSON"):
        load_params_file(broken)
    with pytest.raises(ParameterError, match="cannot read"):
        load_params_file(tmp_path / "missing.yml")


def test_names_and_load_versions() -> None:
    assert split_names(["a,b", " c ", ""]) == ["a", "b", "c"]
    assert parse_load_versions(["cars:2026-01-01T00.00.00.000Z", "boats=v2"]) == {
        "cars": "2026-01-01T00.00.00.000Z",
        "boats": "v2",
    }
    with pytest.raises(ParameterError):
        parse_load_versions(["cars"])


def test_submit_body_holds_only_what_was_given(tmp_path: Path) -> None:
    assert build_job_create("arithmetic").to_body() == {"pipeline_name": "arithmetic"}

    file = tmp_path / "params.yml"
    file.write_text("initial_value: 1\nmodel:\n  lr: 0.1\n")
    body = build_job_create(
        "arithmetic",
        params=["initial_value=10", "model.depth=3"],
        params_file=file,
        env="prod",
        tags=("a,b",),
        runner="ThreadRunner",
        node_names=("n1",),
        from_nodes=("f1",),
        to_nodes=("t1",),
        from_inputs=("i1",),
        to_outputs=("o1",),
        namespaces=("ns",),
        load_versions=("cars:v1",),
        queue="gpu",
        timeout=60,
        extra=["retries=2"],
    ).to_body()
    assert body == {
        "pipeline_name": "arithmetic",
        "parameters": {"initial_value": 10, "model": {"lr": 0.1, "depth": 3}},
        "env": "prod",
        "tags": ["a", "b"],
        "runner": "ThreadRunner",
        "node_names": ["n1"],
        "from_nodes": ["f1"],
        "to_nodes": ["t1"],
        "from_inputs": ["i1"],
        "to_outputs": ["o1"],
        "namespaces": ["ns"],
        "load_versions": {"cars": "v1"},
        "queue": "gpu",
        "timeout_seconds": 60,
        "retries": 2,  # a field this client does not know yet is passed through
    }


def test_submit_options_the_model_refuses_are_parameter_errors() -> None:
    with pytest.raises(ParameterError, match="runner"):
        build_job_create("arithmetic", runner="FastRunner")
    with pytest.raises(ParameterError, match="top-level"):
        build_job_create("arithmetic", extra=["a.b=1"])
