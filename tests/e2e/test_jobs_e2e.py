"""End to end: real Redis, real Celery workers, the API over HTTP, real `kedro run`."""

from __future__ import annotations

import json
import re

import psutil
import pytest

from tests.utils.expected import CONTRACT_PARAMETERS, THREE_OF_THREE
from tests.utils.sse import read_events
from tests.utils.stack import Stack, read_log, submit, wait_for_status, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.stacks(("sqlite", "cold"), ("postgresql", "cold"), ("sqlite", "warm")),
]

AWKWARD = {
    "esc1": "a\\${b}",
    "esc2": "a\\\\${b}",
    "dollar": "$5 {} $",
    "emoji": "🎉 ok",
    "ctrl": "del\x7f nel\x85 ls\u2028 nl\n tab\t",
    "big": 2**70,
    "empty_list": [],
    "empty_dict": {},
    "neg": -0.5,
    "quote": 'it\'s "quoted"',
}


def test_arithmetic_completes_with_progress_results_and_log(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="arithmetic", parameters={"initial_value": 7})
        assert job["status"] == "pending"
        done = wait_for_status(client, job["id"])
        log = read_log(client, job["id"])
        events = client.get(f"/jobs/{job['id']}/events").json()["items"]

    assert done["status"] == "completed", done
    assert done["exit_code"] == 0
    assert done["progress"] == THREE_OF_THREE
    assert done["attempt"] == 1 and done["worker"]
    assert 0 < done["execution_time"] < 60
    assert done["started_at"] <= done["completed_at"]
    results = done["results"]
    assert results["completed_nodes"] == ["add_five", "multiply_by_two", "subtract_ten"]
    assert results["exit_code"] == 0 and results["output_tail"]
    assert re.search(r"subtract_ten: value = 14\b", log), log
    assert [event["status"] for event in events] == ["pending", "running", "completed"]


def test_failing_node_reports_the_error(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="fail")
        done = wait_for_status(client, job["id"])
    assert done["status"] == "failed"
    assert done["exit_code"] == 1
    assert "ValueError" in done["error_message"] and "intentional" in done["error_message"]


def test_unknown_pipeline_is_refused_naming_the_known_ones(stack: Stack) -> None:
    with stack.client() as client:
        wait_until(
            lambda: client.get("/pipelines").json()["refreshed_at"],
            timeout=30,
            what="a worker to report the project's pipelines",
        )
        response = client.post("/jobs", json={"pipeline_name": "no_such_pipeline"})
    assert response.status_code == 422
    assert "no_such_pipeline" in response.json()["detail"]
    assert "arithmetic" in response.json()["detail"]


RUN_OPTIONS = [
    # (options, parameters, nodes expected to complete, a line expected in the log)
    ({"node_names": ["add_five"]}, {"initial_value": 1}, ["add_five"], "add_five: value = 6"),
    ({"tags": ["first"]}, {"initial_value": 2}, ["add_five"], "add_five: value = 7"),
    (
        {"to_nodes": ["multiply_by_two"]},
        {},
        ["add_five", "multiply_by_two"],
        "multiply_by_two: value = 30",
    ),
    (
        {"env": "prod"},
        {},
        ["add_five", "multiply_by_two", "subtract_ten"],
        "subtract_ten: value = 200",
    ),
    (
        {"runner": "ThreadRunner"},
        {},
        ["add_five", "multiply_by_two", "subtract_ten"],
        "thread_runner",
    ),
    ({"runner": "ParallelRunner"}, {"initial_value": 7}, None, "subtract_ten: value = 14"),
]


@pytest.mark.parametrize(
    ("options", "parameters", "nodes", "line"),
    RUN_OPTIONS,
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_run_options_reach_kedro(
    stack: Stack,
    options: dict[str, object],
    parameters: dict[str, object],
    nodes: list[str] | None,
    line: str,
) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="arithmetic", parameters=parameters, **options)
        done = wait_for_status(client, job["id"])
        log = read_log(client, job["id"])
    assert done["status"] == "completed", done["error_message"]
    for name, value in options.items():
        assert done[name] == value  # the job echoes every option it was submitted with
    if nodes is not None:
        assert done["results"]["completed_nodes"] == nodes
    assert line in log


@pytest.mark.parametrize(
    "options",
    [
        {"runner": "kedro.runner.EvilRunner"},
        {"env": "../etc"},
        {"node_names": ["a,b"]},
        {"tags": [""]},
        {"load_versions": {"ds": "2024;rm"}},
        {"timeout_seconds": 0},
        {"node_names": "add_five"},
        {"queue": "a/b"},
    ],
)
def test_bad_run_option_values_are_refused(stack: Stack, options: dict[str, object]) -> None:
    with stack.client() as client:
        response = client.post("/jobs", json={"pipeline_name": "arithmetic", **options})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("parameters", [CONTRACT_PARAMETERS, AWKWARD], ids=["contract", "awkward"])
def test_parameters_reach_kedro_with_types_and_characters_intact(
    stack: Stack, parameters: dict[str, object]
) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="echo", parameters=parameters)
        done = wait_for_status(client, job["id"])
        log = read_log(client, job["id"])
    assert done["status"] == "completed", done["error_message"]
    line = next(line for line in log.split("\n") if line.startswith("ECHO "))
    echoed = json.loads(line.removeprefix("ECHO "))
    for name, value in parameters.items():
        assert echoed[name]["value"] == value, name
        assert echoed[name]["type"] == type(value).__name__, name


def test_log_grows_while_running_and_offset_paging_reassembles_it(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(
            client, pipeline_name="slow", parameters={"slow": {"seconds": 3, "interval": 0.1}}
        )

        def growing_while_running() -> bool:
            current = client.get(f"/jobs/{job['id']}").json()
            chunk = client.get(f"/jobs/{job['id']}/logs").json()
            return current["status"] == "running" and "slow" in chunk["data"]

        wait_until(growing_while_running, timeout=30, what="output while running")
        done = wait_for_status(client, job["id"])
        whole = client.get(f"/jobs/{job['id']}/logs").json()
        pieces, offset = [], 0
        while True:
            page = client.get(
                f"/jobs/{job['id']}/logs", params={"offset": offset, "limit": 333}
            ).json()
            pieces.append(page["data"])
            offset = page["next_offset"]
            if page["complete"]:
                break
    assert done["status"] == "completed"
    assert whole["complete"] is True
    assert "".join(pieces) == whole["data"]
    assert offset == done["output_bytes"]


def _worker_rss(stack: Stack) -> int:
    """RSS of every worker process (main and pool), excluding the kedro runs they start."""
    total = 0
    for worker in stack.workers:
        assert worker.process is not None
        main = psutil.Process(worker.process.pid)
        for proc in [main, *main.children(recursive=True)]:
            try:
                cmdline = " ".join(proc.cmdline())
                # The runs themselves (cold: `kedro run`; warm: forks of warm_server.py).
                if "kedro" not in cmdline and "warm_server.py" not in cmdline:
                    total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return total


def test_chatty_output_is_capped_and_worker_memory_stays_bounded(stack: Stack) -> None:
    cap = 2 * 1024 * 1024  # LOG_MAX_BYTES of the shared stack
    with stack.client() as client:
        baseline = _worker_rss(stack)
        job = submit(client, pipeline_name="chatty", parameters={"chatty": {"mb": 50}})
        peak = baseline

        def finished() -> bool:
            nonlocal peak
            peak = max(peak, _worker_rss(stack))
            return client.get(f"/jobs/{job['id']}").json()["status"] in {"completed", "failed"}

        wait_until(finished, timeout=240, interval=0.1, what="chatty job")
        done = client.get(f"/jobs/{job['id']}").json()
        logs = f"/jobs/{job['id']}/logs"
        head = client.get(logs, params={"limit": cap}).json()
        tail = client.get(logs, params={"offset": head["next_offset"], "limit": cap}).json()
    assert done["status"] == "completed", done["error_message"]
    assert done["output_bytes"] >= 50 * 1000 * 1000
    assert done["output_dropped_bytes"] == done["output_bytes"] - cap
    assert head["offset"] == 0 and head["next_offset"] == cap // 2  # the head is kept
    assert tail["offset"] == done["output_bytes"] - cap // 2  # then the gap is skipped
    assert tail["complete"] and "chatty done" in tail["data"]  # the tail rolled to the end
    assert peak - baseline < 50 * 1024 * 1024, (baseline, peak)


def test_sse_follows_a_running_job_then_ends_and_resumes_without_repeats(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 3}})
        url = f"/jobs/{job['id']}/logs"
        received, first_status, end = [], None, None
        with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in read_events(response):
                if event.event == "log":
                    if first_status is None and "slow: " in event.data:
                        first_status = client.get(f"/jobs/{job['id']}").json()["status"]
                    received.append(event)
                elif event.event == "end":
                    end = json.loads(event.data)
                    break
        whole = client.get(url).json()["data"]
        assert first_status == "running"  # lines arrived before the job ended
        assert end is not None and end["status"] == "completed" and end["id"] == job["id"]
        assert "".join(event.data for event in received) == whole

        middle = received[len(received) // 2]
        with client.stream(
            "GET", url, params={"follow": "true"}, headers={"Last-Event-ID": middle.id or ""}
        ) as response:
            resumed = [e for e in read_events(response) if e.event == "log"]
        resumed_text = "".join(event.data for event in resumed).encode()
        assert resumed_text == whole.encode()[int(middle.id or 0) :]  # no line twice, none lost


def test_progress_names_the_running_node_while_it_runs(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 2}})

        def running_node() -> dict[str, object] | None:
            current = client.get(f"/jobs/{job['id']}").json()
            return current if current["progress"]["running_node_names"] else None

        during = wait_until(running_node, timeout=30, what="the running node to be named")
        done = wait_for_status(client, job["id"])
    assert during["progress"]["running_node_names"] == ["sleep_with_progress"]  # type: ignore[index]
    assert done["progress"]["running_node_names"] == []
    assert done["progress"]["completed_node_names"] == ["sleep_with_progress"]
