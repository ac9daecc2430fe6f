"""The command line without a gateway: exit codes, usage errors, helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import free_port

from kedro_gateway_client._calls import (
    Backoff,
    ServerFeatures,
    SseDecoder,
    chunk_of_event,
    rerun_request,
    resume_nodes,
)
from kedro_gateway_client.cli import (
    EXIT_CANCELLED,
    EXIT_COMPLETED,
    EXIT_ERROR,
    EXIT_FAILED,
    exit_code_for,
    run,
)
from kedro_gateway_client.errors import GatewayError
from kedro_gateway_client.models import Job, JobStatus


def make_job(**changes: Any) -> Job:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": "j1",
        "pipeline_name": "arithmetic",
        "parameters": {"initial_value": 10},
        "status": "completed",
        "user_id": None,
        "queue": "default",
        "timeout_seconds": None,
        "created_at": now,
        "started_at": now,
        "completed_at": now,
        "execution_time": 1.0,
        "exit_code": 0,
        "error_message": None,
        "progress": {"completed_nodes": 3},
        "results": None,
        "worker": "w",
        "attempt": 1,
        "cancel_requested": False,
        "heartbeat_at": None,
        "output_bytes": 10,
        "output_dropped_bytes": 0,
        "tags": ["t"],
        "runner": "ThreadRunner",
    }
    fields.update(changes)
    return Job.model_validate(fields)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("completed", EXIT_COMPLETED),
        ("failed", EXIT_FAILED),
        ("cancelled", EXIT_CANCELLED),
        ("running", EXIT_COMPLETED),
        ("pending", EXIT_COMPLETED),
    ],
)
def test_exit_code_by_status(status: str, code: int) -> None:
    assert exit_code_for(make_job(status=status)) == code


@pytest.mark.parametrize(
    "argv",
    [
        ["submit"],  # missing PIPELINE
        ["nonsense"],  # unknown command
        ["submit", "arithmetic", "-p", "novalue"],
        ["submit", "arithmetic", "-p", "a=1", "-p", "a.b=2"],
        ["submit", "arithmetic", "--runner", "FastRunner"],
        ["submit", "arithmetic", "--timeout", "-1"],
        ["rerun", "x", "--from", "middle"],
        ["list", "--output", "yaml"],
    ],
)
def test_usage_errors_exit_4(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == EXIT_ERROR
    assert capsys.readouterr().err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    assert "Exit status" in capsys.readouterr().out
    assert run(["submit", "--help"]) == 0
    assert "--wait-timeout" in capsys.readouterr().out
    assert run(["--version"]) == 0


def test_connection_errors_exit_4(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    url = f"http://127.0.0.1:{free_port()}"
    assert run(["--url", url, "workers"]) == EXIT_ERROR
    assert "error:" in capsys.readouterr().err
    assert run(["health", "--url", url, "--output", "json"]) == EXIT_ERROR


def test_bad_config_exits_4(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    assert run(["--config", str(tmp_path / "none.toml"), "health"]) == EXIT_ERROR
    assert run(["--profile", "nope", "--config", str(tmp_path / "none.toml"), "health"]) == 4
    assert "not found" in capsys.readouterr().err


def test_sse_decoder_reassembles_multiline_data() -> None:
    decoder = SseDecoder()
    lines = [
        "event: log",
        "id: 12",
        "data: line one",
        "data: line two",
        "data: ",
        "",
        ": ping",
        "",
        "event: end",
        'data: {"id": "j1"}',
        "",
    ]
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("log", "line one\nline two\n", "12"),
        ("end", '{"id": "j1"}', None),
    ]
    chunk = chunk_of_event(events[0], offset=0)
    assert chunk is not None and chunk.next_offset == 12 and chunk.data.startswith("line one")


def test_server_features_from_openapi() -> None:
    assert not ServerFeatures().known
    doc = {
        "paths": {
            "/api/v1/jobs/{job_id}": {
                "get": {
                    "parameters": [
                        {"name": "job_id", "in": "path"},
                        {"name": "wait", "in": "query"},
                    ]
                }
            },
            "/api/v1/jobs/{job_id}/rerun": {
                "post": {"parameters": [{"name": "from", "in": "query"}]}
            },
            "/api/v1/jobs/{job_id}/logs": {
                "get": {"parameters": [{"name": "follow", "in": "query"}]}
            },
        }
    }
    features = ServerFeatures.from_openapi(doc)
    assert features.long_poll and features.rerun and features.rerun_style == "query"
    assert features.sse_logs and features.known
    plain = ServerFeatures.from_openapi({"paths": {"/api/v1/jobs/{job_id}": {"get": {}}}})
    assert not plain.long_poll and not plain.rerun and not plain.sse_logs


def test_resume_hint_and_rerun_requests() -> None:
    output = (
        "WARNING kedro.runner.sequential_runner: There are 3 nodes that have not run.\n"
        "You can resume the pipeline run ... to your previous command:\n"
        '  --from-nodes "add_five,boom"\n'
    )
    assert resume_nodes(output) == ["add_five", "boom"]
    assert resume_nodes("nothing here") is None

    failed = make_job(status="failed", progress={"completed_nodes": 1})
    body = rerun_request(failed, "failure", output, {}).to_body()
    assert body["from_nodes"] == ["add_five", "boom"]
    assert body["parameters"] == {"initial_value": 10} and body["tags"] == ["t"]
    assert body["runner"] == "ThreadRunner" and body["queue"] == "default"

    nothing_ran = make_job(status="failed", progress={"completed_nodes": 0})
    assert "from_nodes" not in rerun_request(nothing_ran, "failure", "", {}).to_body()
    with pytest.raises(GatewayError, match="no resume hint"):
        rerun_request(failed, "failure", "no hint", {})
    with pytest.raises(GatewayError, match="no failure"):
        rerun_request(make_job(), "failure", "", {})
    with pytest.raises(GatewayError, match="still running"):
        rerun_request(make_job(status="running"), "failure", "", {})
    changed = rerun_request(make_job(), "start", "", {"parameters": {"initial_value": 1}})
    assert changed.parameters == {"initial_value": 1} and changed.from_nodes == []


def test_backoff_grows_to_its_cap() -> None:
    delays = Backoff(initial=0.1, factor=2, maximum=0.5)
    assert [delays.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    delays.reset()
    assert delays.next() == 0.1


def test_job_status_terminal() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        JobStatus.completed,
        JobStatus.failed,
        JobStatus.cancelled,
    }
