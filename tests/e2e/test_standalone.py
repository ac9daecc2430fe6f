"""`python main.py` as a newcomer runs it: the whole stack up, a job done, Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from app.core.config import REPO_ROOT
from tests.utils.expected import THREE_OF_THREE
from tests.utils.stack import (
    free_port,
    scrubbed_env,
    submit,
    wait_for_api,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _start_main(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python main.py` as a user starts it, in a process group of its own."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "main.py"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_standalone_runs_a_job_and_a_stop_signal_stops_every_process(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = free_port()
    env = scrubbed_env(
        PORT=str(port),
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
    )
    log_path = tmp_path / "main.log"
    main = _start_main(env, log_path)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_for_api(f"http://127.0.0.1:{port}", main, log_path.read_text, timeout=60)
        with httpx.Client(base_url=base, timeout=30) as client:
            job = submit(client, pipeline_name="arithmetic", parameters={"initial_value": 10})
            done = wait_for_status(client, job["id"], timeout=90)
        assert done["status"] == "completed", done
        assert done["progress"] == THREE_OF_THREE
        started = psutil.Process(main.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert "redis-server" in names and "celery" in names

        if stop_signal == signal.SIGINT:
            os.killpg(main.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        else:
            main.send_signal(signal.SIGTERM)  # what systemd or `kill` sends
        assert main.wait(timeout=60) == 0, log_path.read_text()

        def all_gone() -> bool:
            return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started)

        wait_until(all_gone, timeout=30, what="every started process to exit")
        assert "standalone: stopped the worker and redis" in log_path.read_text()
    finally:
        if main.poll() is None:
            os.killpg(main.pid, signal.SIGKILL)


def test_standalone_keeps_secrets_out_of_the_worker_and_files_private(tmp_path: Path) -> None:
    """With API keys on: the worker's and the run's environments hold no gateway secret,
    and the data directory, database and the worker's settings file are owner-only."""
    port = free_port()
    key = "k-" + "s" * 30
    data = tmp_path / "data"
    env = scrubbed_env(
        PORT=str(port),
        DATA_DIR=str(data),
        DATABASE_URL=f"sqlite:///{data / 'jobs.db'}",
        API_KEYS=f"ops:{key}",
    )
    log_path = tmp_path / "main.log"
    main = _start_main(env, log_path)
    try:
        wait_for_api(f"http://127.0.0.1:{port}", main, log_path.read_text, timeout=60)
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers) as client:
            job = submit(client, pipeline_name="environ")
            done = wait_for_status(client, job["id"], timeout=90)
            assert done["status"] == "completed", done
            output = client.get(f"/jobs/{job['id']}/logs").json()["data"]
        run_env = json.loads(output.split("ENVIRON ", 1)[1].splitlines()[0])
        workers = [
            p
            for p in psutil.Process(main.pid).children(recursive=True)
            if "celery" in " ".join(p.cmdline()) and "worker" in p.cmdline()
        ]
        assert workers
        for environment in [run_env, *(worker.environ() for worker in workers)]:
            for secret in ("API_KEYS", "DATABASE_URL", "CELERY_BROKER_URL"):
                assert secret not in environment
            assert key not in json.dumps(environment)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for private in (data / "jobs.db", data / "worker.env"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    finally:
        os.killpg(main.pid, signal.SIGTERM)
        main.wait(timeout=60)
