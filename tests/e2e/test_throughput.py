"""Waiting without polling, and the background duties elected among API processes."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.core.config import Settings
from app.schemas.jobs import JobCreate
from app.services import build_core
from app.store import JobManager
from tests.utils.sse import read_events
from tests.utils.stack import (
    RedisServer,
    ServiceProcess,
    Stack,
    duty_holder,
    free_port,
    scrubbed_env,
    submit,
    wait_for_api,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.mark.stacks(("sqlite", "cold"))
def test_wait_answers_when_the_job_ends_and_events_follow_to_the_end(stack: Stack) -> None:
    with stack.client() as client:
        job = submit(client, pipeline_name="arithmetic", parameters={"initial_value": 3})
        streamed: list[Any] = []

        def follow() -> None:
            with (
                httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=60) as sse,
                sse.stream("GET", f"/jobs/{job['id']}/events", params={"follow": "true"}) as reply,
            ):
                streamed.extend(read_events(reply))

        follower = threading.Thread(target=follow)
        follower.start()
        waited = client.get(f"/jobs/{job['id']}", params={"wait": 60})
        answered_at = time.time()
        follower.join(timeout=60)

    assert waited.status_code == 200, waited.text
    done = waited.json()
    assert done["status"] == "completed", done
    ended_at = datetime.fromisoformat(done["completed_at"]).timestamp()
    assert answered_at - ended_at < 0.1, f"answered {answered_at - ended_at:.3f} s after the end"
    names = [event.event for event in streamed]
    assert names == ["status", "status", "status", "end"], streamed
    statuses = [httpx.Response(200, content=e.data).json()["status"] for e in streamed[:3]]
    assert statuses == ["pending", "running", "completed"]
    assert [e.id for e in streamed[:3]] == sorted({e.id for e in streamed[:3]}, key=int)
    assert httpx.Response(200, content=streamed[-1].data).json()["status"] == "completed"


def test_wait_gives_the_current_state_after_its_time(stack_less_api: _Apis) -> None:
    job = stack_less_api.new_job(queue="nobody")
    began = time.monotonic()
    answer = httpx.get(f"{stack_less_api.urls[0]}/api/v1/jobs/{job}", params={"wait": 1})
    assert answer.json()["status"] == "pending"
    assert 0.9 < time.monotonic() - began < 5


class _Apis:
    """Redis and two API processes on one SQLite file, no worker: the test plays the worker."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.redis = RedisServer(directory)
        self.database_url = f"sqlite:///{directory / 'jobs.db'}"
        self.apis: list[ServiceProcess] = []
        self.urls: list[str] = []
        self.settings = Settings(
            database_url=self.database_url,
            celery_broker_url=self.redis.url,
            _env_file=None,  # type: ignore[call-arg]
        )
        self.manager: JobManager | None = None

    def start(self, count: int) -> None:
        self.redis.start()
        self.manager = build_core(self.settings).manager
        for index in range(count):
            port = free_port()
            api = ServiceProcess(
                [sys.executable, "main.py"],
                scrubbed_env(
                    DATABASE_URL=self.database_url,
                    CELERY_BROKER_URL=self.redis.url,
                    HOST="127.0.0.1",
                    PORT=str(port),
                    PYTHONUNBUFFERED="1",
                    MAINTENANCE_INTERVAL_SECONDS="0.5",
                    WORKER_LOST_AFTER_SECONDS="2",
                ),
                self.directory / f"api{index}.log",
            )
            api.start()
            assert api.process is not None
            url = f"http://127.0.0.1:{port}"
            wait_for_api(url, api.process, api.log)
            self.apis.append(api)
            self.urls.append(url)

    def new_job(self, *, queue: str, dispatched: bool = True) -> str:
        assert self.manager is not None
        job, _ = self.manager.create_job(
            request=JobCreate(pipeline_name="arithmetic", queue=queue),
            user_id=None,
            dispatched=dispatched,
        )
        return job.id

    def holder(self) -> str | None:
        return duty_holder(self.directory / "jobs.db")

    def stop(self) -> None:
        for api in self.apis:
            api.kill()
        if self.manager is not None:
            self.manager.dispose()
        self.redis.stop()


@pytest.fixture
def stack_less_api(tmp_path: Path) -> Any:
    apis = _Apis(tmp_path)
    try:
        apis.start(2)
        yield apis
    finally:
        apis.stop()


def test_one_api_process_runs_the_duties_and_another_takes_them_over(
    stack_less_api: _Apis,
) -> None:
    apis = stack_less_api
    manager = apis.manager
    assert manager is not None
    # Jobs nobody has published yet, on a queue nobody serves: the duties publish each once.
    unpublished = [apis.new_job(queue="nobody", dispatched=False) for _ in range(20)]
    queue = redis.Redis(unix_socket_path=str(apis.redis.socket_path))
    wait_until(lambda: queue.llen("nobody") >= 20, timeout=20, what="the jobs to be published")
    holder = wait_until(apis.holder, timeout=10, what="a holder of the duties")
    pids = [api.process.pid for api in apis.apis if api.process is not None]
    leader = next(i for i, pid in enumerate(pids) if f":{pid}:" in holder)
    wait_until(
        lambda: all(manager.get_job(job_id=j).status.value == "pending" for j in unpublished),
        timeout=5,
    )
    with sqlite3.connect(apis.directory / "jobs.db") as db:
        counts = db.execute(
            "SELECT dispatch_count FROM jobs WHERE queue = 'nobody' AND dispatch_count != 1"
        ).fetchall()
    assert counts == [] and queue.llen("nobody") == 20, "a job was published twice"

    # The leader dies; a run whose worker is gone must still be failed by the other one.
    apis.apis[leader].kill()
    lost = apis.new_job(queue="ghosts")
    claim = manager.claim_job(job_id=lost, worker="ghost@nowhere")
    assert claim is not None
    killed_at = time.monotonic()
    new_holder: str = wait_until(
        lambda: ((now := apis.holder()) != holder and now) or None,
        timeout=15,
        what="another holder of the duties",
    )
    assert f":{pids[1 - leader]}:" in new_holder
    bound = 2 + 3 + 0.5 + 5  # lost after, lease TTL, one pass, slack for a loaded machine
    failed = wait_until(
        lambda: job if (job := manager.get_job(job_id=lost)).status.value == "failed" else None,
        timeout=bound,
        what="the lost run to be failed",
    )
    assert "worker lost" in (failed.error_message or "")
    assert time.monotonic() - killed_at < bound
