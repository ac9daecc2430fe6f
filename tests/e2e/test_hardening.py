"""Hardening against real processes: a request that would stall the API, slow clients,
log reads that would amplify memory, followers per user, files at rest, secrets in the
environment, access logs, and a cross-site page in a real browser."""

from __future__ import annotations

import contextlib
import http.server
import json
import signal
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS
from tests.utils.stack import (
    Stack,
    read_log,
    submit,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, one worker and an API with short request timeouts and two followers a user."""
    directory = tmp_path_factory.mktemp("hardened")
    stack = Stack(
        directory,
        f"sqlite:///{directory / 'jobs.db'}",
        extra_env={
            "LOG_MAX_BYTES": str(16 * 1024 * 1024),
            "HEADER_TIMEOUT_SECONDS": "1",
            "BODY_TIMEOUT_SECONDS": "1",
            "MAX_FOLLOWERS_PER_USER": "2",
            "TMPDIR": str(directory),
        },
    )
    try:
        stack.redis.start()
        stack.start_worker(name="w1", concurrency=3)
        stack.start_api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(hardened: Stack) -> Iterator[httpx.Client]:
    with hardened.client() as http:
        yield http


def _api_pid(stack: Stack) -> int:
    assert stack.api is not None and stack.api.process is not None
    return stack.api.process.pid


def _connect(stack: Stack) -> socket.socket:
    return socket.create_connection(("127.0.0.1", stack.port), timeout=10)


def _live_latencies(stack: Stack, stop: threading.Event, into: list[float]) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        while not stop.is_set():
            started = time.monotonic()
            http.get("/api/v1/health/live").raise_for_status()
            into.append(time.monotonic() - started)
            time.sleep(0.01)


def test_an_80_mb_header_is_cut_off_while_the_api_stays_responsive(hardened: Stack) -> None:
    latencies: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=_live_latencies, args=(hardened, stop, latencies))
    prober.start()
    try:
        wait_until(lambda: len(latencies) > 5, timeout=10, what="a few /health/live answers")
        with _connect(hardened) as sock:
            sock.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            started = time.monotonic()
            sent = 0
            block = b"a" * (1024 * 1024)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while sent < 80 * 1024 * 1024:
                    sock.sendall(block)
                    sent += len(block)
            cut_after = time.monotonic() - started
            answer = b""
            with contextlib.suppress(ConnectionResetError, OSError):
                answer = sock.recv(4096)
        wait_until(lambda: len(latencies) > 30, timeout=10, what="probes after the cut")
    finally:
        stop.set()
        prober.join()
    assert sent < 80 * 1024 * 1024, "the server read the whole 80 MB header"
    assert cut_after < 1.0
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    assert max(latencies) < 0.1, sorted(latencies)[-5:]


def test_a_header_sent_a_byte_at_a_time_is_timed_out(hardened: Stack) -> None:
    with _connect(hardened) as sock:
        sock.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        answer = b""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while time.monotonic() - started < 10:
                sock.sendall(b"X")
                sock.settimeout(0.3)
                with contextlib.suppress(TimeoutError):
                    answer = sock.recv(4096)
                    break
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 3


def test_a_body_that_never_arrives_is_timed_out(hardened: Stack) -> None:
    with _connect(hardened) as sock:
        sock.sendall(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pipe'
        )
        started = time.monotonic()
        sock.settimeout(10)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 3


def test_reading_one_byte_of_a_10_mib_log_costs_one_byte(
    hardened: Stack, client: httpx.Client
) -> None:
    job = submit(client, pipeline_name="chatty", parameters={"chatty": {"mb": 10}})
    done = wait_for_status(client, job["id"], timeout=120)
    assert done["status"] == "completed" and done["output_bytes"] > 10 * 1024 * 1024
    api = psutil.Process(_api_pid(hardened))
    before = api.memory_info().rss
    deadline = time.monotonic() + 5

    def read_one_byte_repeatedly(_: int) -> int:
        reads = 0
        with hardened.client() as http:
            while time.monotonic() < deadline:
                chunk = http.get(f"/jobs/{job['id']}/logs", params={"offset": 0, "limit": 1})
                assert len(chunk.json()["data"]) == 1
                reads += 1
        return reads

    with ThreadPoolExecutor(40) as pool:
        reads = sum(pool.map(read_one_byte_repeatedly, range(40)))
    growth = api.memory_info().rss - before
    assert reads > 40
    assert growth < 50 * 1024 * 1024, f"API RSS grew {growth / 2**20:.0f} MiB over {reads} reads"


def test_each_user_follows_at_most_two_logs_at_once(hardened: Stack, client: httpx.Client) -> None:
    job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 30}})
    path = f"/jobs/{job['id']}/logs"
    with contextlib.ExitStack() as streams:
        for _ in range(2):
            response = streams.enter_context(client.stream("GET", path, params={"follow": True}))
            assert response.status_code == 200
        refused = client.get(path, params={"follow": True})
        assert refused.status_code == 429
        assert "at most 2 followed logs" in refused.json()["detail"]
    with client.stream("GET", path, params={"follow": True}) as again:  # slots came back
        assert again.status_code == 200
    client.post(f"/jobs/{job['id']}/cancel")


def test_credentials_in_query_strings_stay_out_of_the_access_log(
    hardened: Stack, client: httpx.Client
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    client.get("/jobs", params={"api_key": secret, "limit": 1})
    api = hardened.api
    assert api is not None
    wait_until(lambda: "api_key=[redacted]" in api.log(), timeout=10, what="the access log")
    assert secret not in api.log()


def test_the_database_and_run_configs_are_private_and_stale_runs_are_swept(
    hardened: Stack, client: httpx.Client
) -> None:
    database = hardened.directory / "jobs.db"
    for path in (database, database.with_name("jobs.db-wal")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finished = submit(client, pipeline_name="arithmetic")
    wait_for_status(client, finished["id"])
    stale = hardened.directory / f"kedro-job-{finished['id']}-abc123"  # as a SIGKILL leaves
    stale.mkdir()
    (stale / "run-config.json").write_text("{}")
    foreign = hardened.directory / f"kedro-job-{uuid.uuid4()}-def456"  # another gateway's
    foreign.mkdir()
    job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 30}})
    wait_for_status(client, job["id"], {"running"})

    def run_files() -> tuple[Path, list[Path]] | None:
        """The run's directory and its files, once it has made them (after its claim)."""
        for directory in hardened.directory.glob(f"kedro-job-{job['id']}-*"):
            if files := list(directory.iterdir()):
                return directory, files
        return None

    running_dir, files = wait_until(run_files, timeout=10, what="the run's directory")
    (config,) = files
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(running_dir.stat().st_mode) == 0o700
    hardened.start_worker(name="w2", concurrency=1)  # a starting worker sweeps
    assert not stale.exists()
    assert foreign.exists()  # not this store's job: left to its own gateway
    assert running_dir.exists()  # a running job's directory is not another worker's to take
    client.post(f"/jobs/{job['id']}/cancel")
    wait_for_status(client, job["id"])


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on another origin that tries every no-preflight write against the API."""

    api = ""

    def do_GET(self) -> None:
        script = f"""
        const api = "{self.api}/api/v1/jobs";
        const body = JSON.stringify({{pipeline_name: "arithmetic"}});
        const attempts = [
          fetch(api, {{method: "POST", mode: "no-cors", body,
                       headers: {{"Content-Type": "application/x-www-form-urlencoded"}}}}),
          fetch(api, {{method: "POST", mode: "no-cors", body,
                       headers: {{"Content-Type": "text/plain"}}}}),
          fetch(api, {{method: "POST", mode: "no-cors", body}}),
        ];
        Promise.allSettled(attempts).then(() => {{ document.title = "done"; }});
        """
        page = f"<!doctype html><title>attacker</title><script>{script}</script>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *_: object) -> None:
        pass


def test_a_page_on_another_origin_cannot_submit_jobs(hardened: Stack, client: httpx.Client) -> None:
    before = {job["id"] for job in client.get("/jobs", params={"limit": 100}).json()["items"]}
    _AttackerPage.api = hardened.base_url
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://localhost:{server.server_address[1]}/")
            page.wait_for_function("document.title === 'done'", timeout=30_000)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    after = {job["id"] for job in client.get("/jobs", params={"limit": 100}).json()["items"]}
    assert after == before
    api = hardened.api
    assert api is not None
    refused = ('"POST /api/v1/jobs HTTP/1.1" 403', '"POST /api/v1/jobs HTTP/1.1" 415')
    # The API writes its access-log lines in batches, a few milliseconds late.
    wait_until(
        lambda: any(line in api.log() for line in refused),
        timeout=10,
        what="the refusal's log line",
    )


def test_a_run_sees_no_gateway_setting_that_could_be_a_secret(
    hardened: Stack, client: httpx.Client
) -> None:
    job = submit(client, pipeline_name="environ")
    assert wait_for_status(client, job["id"], timeout=60)["status"] == "completed"
    line = next(x for x in read_log(client, job["id"]).splitlines() if "ENVIRON " in x)
    environ = json.loads(line.split("ENVIRON ", 1)[1])
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "API_KEYS", "GATEWAY_ENV_FILE"):
        assert name not in environ


def test_a_stopped_api_closes_a_long_poll_after_its_grace(
    hardened: Stack, client: httpx.Client
) -> None:
    """SIGTERM: a `?wait=60` long poll holds the API's stop for `API_STOP_GRACE_SECONDS`
    (1 here), not for its 60 s."""
    base_url = hardened.start_another_api("stopping", API_STOP_GRACE_SECONDS="1")
    api = hardened.more_apis[-1]
    assert api.process is not None
    process, port = api.process, int(base_url.rsplit(":", 1)[1])
    job = submit(client, pipeline_name="slow", parameters={"slow": {"seconds": 120}})

    def waiting_connection() -> bool:
        return any(
            each.status == psutil.CONN_ESTABLISHED and each.laddr.port == port
            for each in psutil.Process(process.pid).net_connections()
        )

    try:
        with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=base_url, timeout=120) as other:
            long_poll = pool.submit(other.get, f"/api/v1/jobs/{job['id']}", params={"wait": 60})
            wait_until(waiting_connection, timeout=30, what="the long poll's connection")
            # Answered after the long poll's request was read (one loop, in order).
            httpx.get(f"{base_url}/api/v1/health/live", timeout=10).raise_for_status()
            stopped_at = time.monotonic()
            api.kill(signal.SIGTERM)
            process.wait(timeout=30)
            assert time.monotonic() - stopped_at < 15
            with contextlib.suppress(httpx.TransportError):
                long_poll.result(timeout=30)
            assert process.returncode is not None
    finally:
        client.post(f"/api/v1/jobs/{job['id']}/cancel")
