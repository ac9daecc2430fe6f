"""`scripts/check_openapi.py`: the client's models against the server's OpenAPI document."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_openapi.py"


def load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_openapi", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_openapi", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server_openapi() -> dict[str, Any]:
    """Built from the server's code (the import path is in the script, in one place)."""
    document: dict[str, Any] = load_checker().load_server_openapi(None)
    return document


def test_client_models_match_the_server_code(server_openapi: dict[str, Any]) -> None:
    diffs, notes = load_checker().check(server_openapi)
    assert not diffs, "\n".join(diffs)
    assert all("not checked" in note for note in notes)


def test_a_drifted_server_fails_with_a_readable_diff(server_openapi: dict[str, Any]) -> None:
    drifted = copy.deepcopy(server_openapi)
    schemas = drifted["components"]["schemas"]
    schemas["Job"]["properties"]["not_in_any_client"] = {"type": "integer"}
    del schemas["Progress"]["properties"]["total_nodes"]
    schemas["LogChunk"]["properties"]["next_offset"] = {"type": "string"}
    diffs, _ = load_checker().check(drifted)
    assert "Job.not_in_any_client: on the server, missing in the client" in diffs
    assert "Job.progress.total_nodes: in the client, unknown to the server" in diffs
    assert "LogChunk.next_offset: server string, client integer" in diffs


def test_main_prints_ok(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server_openapi: dict[str, Any]
) -> None:
    import json

    saved = tmp_path / "openapi.json"
    saved.write_text(json.dumps(server_openapi))
    assert load_checker().main([str(saved)]) == 0
    assert "ok:" in capsys.readouterr().out
