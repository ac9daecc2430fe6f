"""End to end: the client and the CLI against a real gateway running real Kedro jobs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Gateway, free_port, run_cli, wait_for_running, wait_until

from kedro_gateway_client import (
    AsyncGatewayClient,
    Conflict,
    ConnectionFailed,
    GatewayClient,
    JobStatus,
    NotFound,
    ValidationFailed,
)

pytestmark = pytest.mark.e2e

ARITHMETIC = {"initial_value": 10}


def test_submit_wait_logs_events(client: GatewayClient) -> None:
    job = client.submit("arithmetic", parameters=ARITHMETIC)
    assert job.status in {JobStatus.pending, JobStatus.running}
    seen: list[JobStatus] = []
    done = client.wait(job.id, timeout=120, on_update=lambda j: seen.append(j.status))
    assert done.status == JobStatus.completed, done
    assert done.exit_code == 0
    assert done.progress.completed_nodes == done.progress.total_nodes == 3
    assert done.parameters == ARITHMETIC
    assert seen[-1] == JobStatus.completed

    chunk = client.logs(job.id)
    assert chunk.complete
    assert "subtract_ten" in chunk.data

    followed = list(client.follow_logs(job.id, timeout=60))
    assert followed[-1].complete
    assert "subtract_ten" in "".join(c.data for c in followed)

    statuses = [e.status for e in client.events(job.id).items]
    assert statuses[0] == JobStatus.pending and statuses[-1] == JobStatus.completed


def test_follow_logs_of_a_running_job_streams_until_the_end(client: GatewayClient) -> None:
    job = client.submit("slow", parameters={"slow": {"seconds": 2, "interval": 0.2}})
    text = "".join(chunk.data for chunk in client.follow_logs(job.id, timeout=120))
    assert "slow done after" in text
    assert client.get(job.id).status == JobStatus.completed


def test_paging_iterates_over_every_page(client: GatewayClient) -> None:
    ids = [client.submit("arithmetic", parameters=ARITHMETIC).id for _ in range(3)]
    for job_id in ids:
        client.wait(job_id, timeout=120)
    pages = list(client.iter_pages(pipeline_name="arithmetic", page_size=1))
    assert len(pages) >= 3
    listed = [job.id for job in client.iter_jobs(pipeline_name="arithmetic", page_size=2)]
    assert listed[:3] == ids[::-1]  # newest first
    assert len(list(client.iter_jobs(page_size=1, max_items=2))) == 2


def test_async_client(gateway: Gateway) -> None:
    async def scenario() -> None:
        async with AsyncGatewayClient(gateway.url) as gw:
            job = await gw.submit("arithmetic", parameters=ARITHMETIC)
            done = await gw.wait(job.id, timeout=120)
            assert done.status == JobStatus.completed
            text = "".join([c.data async for c in gw.follow_logs(job.id, timeout=60)])
            assert "subtract_ten" in text
            assert [j.id async for j in gw.iter_jobs(max_items=1)]
            assert (await gw.health()).ok
            assert (await gw.pipelines()).items

    asyncio.run(scenario())


def test_errors_carry_the_servers_message(client: GatewayClient) -> None:
    with pytest.raises(NotFound, match="not found") as missing:
        client.get("00000000-0000-0000-0000-000000000000")
    assert missing.value.status_code == 404

    with pytest.raises(ValidationFailed) as unknown:
        client.submit("no_such_pipeline")
    assert "arithmetic" in unknown.value.message  # names the known pipelines

    with pytest.raises(ValidationFailed) as invalid:
        client.submit("arithmetic", env="not an env!")  # refused by the server
    assert invalid.value.status_code == 422
    assert invalid.value.errors and "env" in invalid.value.message

    with pytest.raises(ValidationFailed) as local:
        client.submit("arithmetic", runner="FastRunner")  # refused before sending
    assert local.value.status_code is None and "runner" in local.value.message

    done = client.wait(client.submit("arithmetic", parameters=ARITHMETIC).id, timeout=120)
    with pytest.raises(Conflict):
        client.cancel(done.id)

    first = client.submit("arithmetic", parameters=ARITHMETIC, idempotency_key="e2e-key-1")
    again = client.submit("arithmetic", parameters=ARITHMETIC, idempotency_key="e2e-key-1")
    assert again.id == first.id
    with pytest.raises(Conflict):
        client.submit("arithmetic", parameters={"initial_value": 11}, idempotency_key="e2e-key-1")


def test_rerun_from_start_and_from_failure(client: GatewayClient) -> None:
    failed = client.wait(client.submit("fail", parameters=ARITHMETIC).id, timeout=120)
    assert failed.status == JobStatus.failed

    again = client.rerun(failed.id, from_="failure")
    assert again.id != failed.id
    # Nothing completed: the server resumes from the failed node, the whole pipeline.
    assert again.from_nodes == ["boom"] and again.pipeline_name == "fail"
    assert again.parameters == ARITHMETIC
    assert client.wait(again.id, timeout=120).status == JobStatus.failed

    done = client.wait(client.submit("arithmetic", parameters=ARITHMETIC).id, timeout=120)
    copy = client.rerun(done.id, from_="start")
    assert copy.parameters == ARITHMETIC and copy.pipeline_name == "arithmetic"
    assert client.wait(copy.id, timeout=120).status == JobStatus.completed


def test_project_workers_health(client: GatewayClient) -> None:
    names = {p.name for p in client.pipelines().items}
    assert {"arithmetic", "fail", "slow"} <= names
    nodes = client.pipeline("arithmetic").nodes or []
    assert [n.name for n in nodes] == ["add_five", "multiply_by_two", "subtract_ten"]
    assert any(w.alive for w in client.workers().items)
    health = client.health()
    assert health.ok and set(health.checks) >= {"database", "broker", "workers"}
    assert client.live().status == "ok"


# --- the command line ---------------------------------------------------------------------


def test_cli_submit_wait_exits_0(cli_env: dict[str, str]) -> None:
    result = run_cli(["submit", "arithmetic", "-p", "initial_value=10", "--wait"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout


def test_cli_submit_wait_output_json_prints_the_job(cli_env: dict[str, str]) -> None:
    args = ["submit", "arithmetic", "-p", "initial_value=10", "--wait", "--output", "json"]
    result = run_cli(args, cli_env)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "completed"
    assert job["parameters"] == {"initial_value": 10}  # an int, not "10"
    assert job["progress"]["completed_nodes"] == 3


def test_cli_follow_streams_the_log(cli_env: dict[str, str]) -> None:
    result = run_cli(["submit", "arithmetic", "-p", "initial_value=10", "--follow"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "subtract_ten: value = 20" in result.stdout


def test_cli_failing_pipeline_exits_1_and_rerun_from_failure(cli_env: dict[str, str]) -> None:
    result = run_cli(["submit", "fail", "--wait", "--no-progress", "--output", "json"], cli_env)
    assert result.returncode == 1, result.stderr
    failed = json.loads(result.stdout)
    assert failed["status"] == "failed"

    rerun = run_cli(
        ["rerun", failed["id"], "--from", "failure", "--wait", "--output", "json"], cli_env
    )
    assert rerun.returncode == 1, rerun.stderr
    again = json.loads(rerun.stdout)
    assert again["pipeline_name"] == "fail" and again["id"] != failed["id"]

    logs = run_cli(["logs", failed["id"]], cli_env)
    assert logs.returncode == 0 and "intentional failure" in logs.stdout
    status = run_cli(["status", failed["id"]], cli_env)
    assert status.returncode == 1 and "failed" in status.stdout


def test_cli_cancel_exits_2(client: GatewayClient, cli_env: dict[str, str]) -> None:
    job = client.submit("slow", parameters={"slow": {"seconds": 120, "interval": 0.5}})
    waiter = subprocess.Popen(
        [sys.executable, "-m", "kedro_gateway_client", "wait", job.id, "--no-progress"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_running(client, job.id)
        cancelled = run_cli(["cancel", job.id, "--wait"], cli_env)
        assert cancelled.returncode == 2, cancelled.stderr
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 2, err
        assert "cancelled" in out
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        if not client.get(job.id).is_terminal:
            client.cancel(job.id)


def test_cli_wait_deadline_exits_3(client: GatewayClient, cli_env: dict[str, str]) -> None:
    args = [
        "submit",
        "slow",
        "-p",
        "slow.seconds=120",
        "--wait",
        "--wait-timeout",
        "2",
        "--output",
        "json",
    ]
    result = run_cli(args, cli_env)
    job = json.loads(result.stdout)
    try:
        assert result.returncode == 3, result.stderr
        assert job["status"] in {"pending", "running"}
        assert job["parameters"] == {"slow": {"seconds": 120}}
    finally:
        client.cancel(job["id"])
        wait_until(lambda: client.get(job["id"]).is_terminal, timeout=60, what="the cancel")


def test_cli_wrong_url_exits_4(cli_env: dict[str, str]) -> None:
    env = dict(cli_env, KEDRO_GATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    for args in (["status", "x"], ["health"], ["submit", "arithmetic", "--wait"]):
        result = run_cli(args, env)
        assert result.returncode == 4, (args, result.stderr)
        assert "error:" in result.stderr
    with pytest.raises(ConnectionFailed):
        GatewayClient(env["KEDRO_GATEWAY_URL"]).live()


def test_cli_unknown_job_and_bad_params_exit_4(cli_env: dict[str, str]) -> None:
    missing = run_cli(["status", "00000000-0000-0000-0000-000000000000"], cli_env)
    assert missing.returncode == 4 and "404" in missing.stderr
    bad = run_cli(["submit", "arithmetic", "-p", "no-equals-sign"], cli_env)
    assert bad.returncode == 4 and "KEY=VALUE" in bad.stderr
    unknown = run_cli(["submit", "no_such_pipeline"], cli_env)
    assert unknown.returncode == 4 and "arithmetic" in unknown.stderr


def test_cli_reading_commands_with_json_output(cli_env: dict[str, str], tmp_path: Path) -> None:
    params_file = tmp_path / "params.yml"
    params_file.write_text("initial_value: 1\nextra:\n  name: x\n")
    submitted = run_cli(
        [
            "submit",
            "arithmetic",
            "--params-file",
            str(params_file),
            "-p",
            "initial_value=10",
            "--tags",
            "first,rest",
            "--output",
            "json",
        ],
        cli_env,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["parameters"] == {"initial_value": 10, "extra": {"name": "x"}}
    assert job["tags"] == ["first", "rest"]
    assert run_cli(["wait", job["id"]], cli_env).returncode == 0

    for args, key in (
        (["list", "--limit", "2"], "items"),
        (["pipelines"], "items"),
        (["pipelines", "arithmetic"], "nodes"),
        (["workers"], "items"),
        (["health"], "checks"),
        (["events", job["id"]], "items"),
        (["status", job["id"]], "progress"),
        (["logs", job["id"]], "data"),
    ):
        result = run_cli([*args, "--output", "json"], cli_env)
        assert result.returncode == 0, (args, result.stderr)
        assert key in json.loads(result.stdout), args
    for args in (["list"], ["pipelines"], ["workers"], ["health"], ["events", job["id"]]):
        result = run_cli(args, cli_env)
        assert result.returncode == 0, (args, result.stderr)


def test_openapi_of_the_running_server_matches_the_client(gateway: Gateway) -> None:
    from test_openapi_check import load_checker

    checker = load_checker()
    diffs, _notes = checker.check(checker.load_server_openapi(gateway.url))
    assert not diffs, "\n".join(diffs)
