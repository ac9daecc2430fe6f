"""Per-node start and end times, the failed node's error, and the planned total."""

from __future__ import annotations

from datetime import datetime

from app.runner.graph import selected_nodes
from app.runner.output import OutputParser
from app.schemas.jobs import Job, Progress
from app.schemas.pipelines import Pipeline, PipelineNode
from tests.runner.test_output import FAILED_RUN, SEQUENTIAL_RUN


def local(text: str) -> str:
    return datetime.fromisoformat(text).astimezone().strftime("%H:%M:%S.%f")[:-3]


def test_node_times_come_from_the_logged_times() -> None:
    parser = OutputParser()
    parser.feed(SEQUENTIAL_RUN)
    times = parser.timings()
    assert list(times) == ["add_five", "multiply_by_two", "subtract_ten"]
    assert local(times["add_five"]["started_at"]) == "13:13:32.603"
    assert local(times["add_five"]["ended_at"]) == "13:13:32.604"
    assert local(times["multiply_by_two"]["ended_at"]) == "13:13:32.605"
    assert "ended_at" not in times["subtract_ten"]  # still running
    assert datetime.fromisoformat(times["add_five"]["started_at"]).utcoffset() is not None


def test_a_failed_node_keeps_its_failure_line() -> None:
    parser = OutputParser()
    parser.feed(FAILED_RUN)
    parser.finish()
    boom = parser.timings()["boom"]
    assert local(boom["failed_at"]) == "13:13:40.101"
    assert boom["error"].startswith("Node boom: boom([params:initial_value]) -> None failed")
    assert boom["exception"].startswith("ValueError: intentional failure in node boom")
    assert parser.progress.completed_nodes == []


def test_the_total_is_known_before_kedro_counts() -> None:
    nodes = [
        PipelineNode(name="a", func="f", inputs=["x"], outputs=["y"], tags=["first"]),
        PipelineNode(name="b", func="f", inputs=["y"], outputs=["z"], tags=["rest"]),
    ]
    job = make_job(tags=["rest"])
    assert selected_nodes([Pipeline(name="p", nodes=nodes)], job) == ["b"]
    assert selected_nodes([Pipeline(name="p", nodes=None)], job) is None
    assert selected_nodes(None, job) is None
    parser = OutputParser()
    parser.plan(["b"])
    assert parser.progress.total_nodes == 1


def make_job(**options: object) -> Job:
    return Job.model_validate(
        {
            "id": "j",
            "pipeline_name": "p",
            "parameters": {},
            "status": "running",
            "user_id": None,
            "queue": "default",
            "timeout_seconds": None,
            "created_at": "2026-01-01T00:00:00Z",
            "started_at": None,
            "completed_at": None,
            "execution_time": None,
            "exit_code": None,
            "error_message": None,
            "progress": Progress(),
            "results": None,
            "worker": None,
            "attempt": 1,
            "cancel_requested": False,
            "heartbeat_at": None,
            "output_bytes": 0,
            "output_dropped_bytes": 0,
            **options,
        }
    )
