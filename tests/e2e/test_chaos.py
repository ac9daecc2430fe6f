"""Infrastructure failing around running jobs: the database stopped, Redis restarted, a
worker or standalone mode stopped, a worker's clock skewed. Every job ends exactly once.

One stack on a PostgreSQL of its own (the database test stops it); on `--databases
sqlite` the tests that need PostgreSQL are skipped and the rest run on SQLite.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import REPO_ROOT
from tests.utils.postgres import PostgresServer, running_postgres, selected_databases
from tests.utils.stack import (
    Stack,
    free_port,
    read_log,
    running_stack,
    scrubbed_env,
    submit,
    wait_for_api,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e

LOST_AFTER = 20.0  # above the database outage below
OUTAGE_SECONDS = 8.0
GRACE = 6.0  # room for a short job's kedro to start and finish on a loaded machine


@pytest.fixture(scope="module")
def postgres(pytestconfig: pytest.Config) -> Iterator[PostgresServer | None]:
    """A server of this module's own: a test stops it, and other stacks must not notice."""
    if "postgresql" not in selected_databases(pytestconfig):
        yield None
        return
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def chaos(
    postgres: PostgresServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("chaos")
    url = postgres.create_database("chaos") if postgres else f"sqlite:///{directory / 'chaos.db'}"
    with running_stack(
        directory,
        url,
        workers=1,
        WORKER_LOST_AFTER_SECONDS=str(LOST_AFTER),
        WORKER_STOP_GRACE_SECONDS=str(GRACE),
        REDISPATCH_AFTER_SECONDS="2",
    ) as stack:
        yield stack


@pytest.fixture
def client(chaos: Stack) -> Iterator[httpx.Client]:
    chaos.workers = [worker for worker in chaos.workers if worker.alive()]
    if not chaos.workers:
        chaos.start_worker(name="w1")
    with chaos.client() as http:
        yield http


def _needs_postgres(postgres: PostgresServer | None) -> PostgresServer:
    if postgres is None:
        pytest.skip("needs PostgreSQL (--databases postgresql)")
    return postgres


def _slow_lines(log: str) -> list[float]:
    return [float(seconds) for seconds in re.findall(r"^slow: ([\d.]+)/", log, re.MULTILINE)]


def test_a_running_job_outlives_a_database_outage_with_all_its_output(
    postgres: PostgresServer | None, chaos: Stack, client: httpx.Client
) -> None:
    server = _needs_postgres(postgres)
    job = submit(
        client, pipeline_name="slow", parameters={"slow": {"seconds": 14, "interval": 0.1}}
    )
    wait_until(lambda: _slow_lines(read_log(client, job["id"])), timeout=60, what="output")
    count_before = client.get("/jobs", params={"limit": 100}).json()["items"]

    server.halt()
    answers: list[tuple[int, str | None]] = []
    health = None
    outage_ends = time.monotonic() + OUTAGE_SECONDS
    try:
        while time.monotonic() < outage_ends:  # the outage lasts while the clients keep asking
            refused = client.post("/jobs", json={"pipeline_name": "arithmetic"})
            answers.append((refused.status_code, refused.headers.get("retry-after")))
            answers.append((client.get(f"/jobs/{job['id']}").status_code, None))
            health = client.get("/health")
            time.sleep(0.2)
    finally:
        server.resume()

    assert {status for status, _ in answers} == {503}, answers
    assert all(after for status, after in answers[::2]), "a refused submit says when to retry"
    assert health is not None and health.status_code == 503
    assert health.json()["checks"]["database"]["ok"] is False

    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "completed" and done["attempt"] == 1, done
    log = read_log(client, job["id"])
    seconds = _slow_lines(log)
    # Every progress line the run printed, in order, none missing through the outage.
    assert seconds == sorted(seconds) and seconds[0] == 0.0
    assert max(b - a for a, b in itertools.pairwise(seconds)) < 1.0
    assert seconds[-1] > 13 and "slow done after" in log
    assert done["output_bytes"] == len(log.encode()) and done["output_dropped_bytes"] == 0
    after = client.get("/jobs", params={"limit": 100}).json()["items"]
    assert len(after) == len(count_before), "a submit refused with 503 recorded a job"
    worker_log = chaos.workers[0].log()
    assert "the database is unavailable" in worker_log and "the database is back" in worker_log


def test_jobs_queued_when_redis_restarts_each_run_once(chaos: Stack, client: httpx.Client) -> None:
    blocker = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 3}})
    wait_for_status(client, blocker["id"], {"running"}, timeout=60)
    ids = [blocker["id"]] + [submit(client, pipeline_name="arithmetic")["id"] for _ in range(4)]
    chaos.redis.stop()  # no persistence: every queued message is gone
    chaos.redis.start()
    for job_id in ids:
        done = wait_for_status(client, job_id, timeout=90)
        assert done["status"] == "completed" and done["attempt"] == 1, done
    for job_id in ids[1:]:
        assert read_log(client, job_id).count("Running node: add_five") == 1


def test_sigterm_lets_a_short_job_finish_then_retries_the_rest(
    chaos: Stack, client: httpx.Client
) -> None:
    worker = chaos.workers[0]
    assert worker.process is not None
    short = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 0.5}})
    long = submit(
        client,
        pipeline_name="slow",
        parameters={"slow": {"seconds": 120}},
        retry={"max_attempts": 2, "on": ["worker_lost"], "delay_seconds": 60},
    )
    for job in (short, long):
        wait_for_status(client, job["id"], {"running"}, timeout=60)
    stopped_at = time.monotonic()
    os.kill(
        worker.process.pid, signal.SIGTERM
    )  # its main process, as `kill` or systemd (KillMode=mixed) does
    waiting = submit(client, pipeline_name="arithmetic")

    assert wait_for_status(client, short["id"], timeout=30)["status"] == "completed"
    retried = wait_for_status(client, long["id"], {"pending"}, timeout=GRACE + 30)
    worker.process.wait(timeout=GRACE + 30)
    assert time.monotonic() - stopped_at < GRACE + 15
    assert retried["attempt"] == 1 and "grace period" in retried["error_message"]
    assert client.get(f"/jobs/{waiting['id']}").json()["status"] == "pending"  # not taken
    client.post(f"/jobs/{long['id']}/cancel")


def test_a_worker_with_a_skewed_clock_keeps_its_job(
    postgres: PostgresServer | None, chaos: Stack, client: httpx.Client
) -> None:
    _needs_postgres(postgres)
    if shutil.which("faketime") is None:
        pytest.skip("needs faketime (apt-get install faketime)")
    for worker in chaos.workers:
        worker.kill(signal.SIGTERM)
    # An hour behind the API and the database: its own clock would date every heartbeat
    # an hour ago, and the reaper would fail the job at its first pass.
    chaos.workers = [chaos.start_worker(name="skewed", prefix=("faketime", "-f", "-3600"))]
    job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 3}})
    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "completed" and done["attempt"] == 1, done
    chaos.workers[0].kill(signal.SIGTERM)
    chaos.workers.clear()


def test_ctrl_c_on_standalone_ends_running_jobs_with_a_reason(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "jobs.db"
    env = scrubbed_env(
        PORT=str(port),
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{database}",
        WORKER_STOP_GRACE_SECONDS=str(GRACE),
    )
    log_path = tmp_path / "main.log"
    with log_path.open("wb") as log:
        main = subprocess.Popen(
            [sys.executable, "main.py"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_api(f"http://127.0.0.1:{port}", main, log_path.read_text, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as client:
            job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 120}})
            wait_for_status(client, job["id"], {"running"}, timeout=60)
        os.killpg(main.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert main.wait(timeout=GRACE + 30) == 0, log_path.read_text()
    finally:
        if main.poll() is None:
            os.killpg(main.pid, signal.SIGKILL)
    from app.core.config import Settings
    from app.services import build_core

    core = build_core(Settings(database_url=f"sqlite:///{database}", _env_file=None))  # type: ignore[call-arg]
    try:
        ended = core.manager.get_job(job_id=job["id"])
    finally:
        core.manager.dispose()
    assert ended.status.value == "failed", ended
    assert "grace period" in (ended.error_message or ""), ended.error_message
