"""A worker on "another machine": its own network namespace, its own copy of the project.

Redis and PostgreSQL listen on the root namespace's end of a veth link; the API runs
in the root namespace on that PostgreSQL; the only Celery worker runs inside the
namespace (`ip netns exec`), whose one route out is that link.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis

from app.core.config import EXAMPLE_PROJECT
from tests.utils.netns import NetNamespace, network_namespace
from tests.utils.postgres import PostgresServer, running_postgres, selected_databases
from tests.utils.stack import (
    RedisServer,
    ServiceProcess,
    Stack,
    processes_mentioning,
    read_log,
    submit,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e

LOG_CAP = 2 * 1024 * 1024
DEFAULT_INITIAL_VALUE = 40  # the remote copy's own default (the repo's project says 10)

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


@dataclass
class Remote:
    stack: Stack
    ns: NetNamespace
    worker: ServiceProcess
    project: Path
    postgres: PostgresServer


@pytest.fixture(scope="module")
def remote(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Remote]:
    if "postgresql" not in selected_databases(pytestconfig):
        pytest.skip("a worker on another machine shares PostgreSQL; not among --databases")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    directory = tmp_path_factory.mktemp("remote")
    project = directory / "machine-b" / "demo_project"
    shutil.copytree(EXAMPLE_PROJECT, project, ignore=shutil.ignore_patterns(".viz", "__pycache__"))
    parameters = project / "conf" / "base" / "parameters.yml"
    text = parameters.read_text()
    assert "initial_value: 10" in text
    parameters.write_text(
        text.replace("initial_value: 10", f"initial_value: {DEFAULT_INITIAL_VALUE}")
    )

    with ExitStack() as cleanup:
        ns = cleanup.enter_context(network_namespace())
        postgres = cleanup.enter_context(
            running_postgres(host=ns.host_address, trusted_networks=[ns.network])
        )
        stack = Stack(
            directory, postgres.create_database("remote"), {"LOG_MAX_BYTES": str(LOG_CAP)}
        )
        stack.redis = RedisServer(directory, host=ns.host_address)
        cleanup.callback(stack.stop)
        stack.redis.start()
        stack.start_api()
        worker = stack.start_worker(
            name="remote", prefix=ns.exec_prefix, KEDRO_PROJECT_PATH=str(project)
        )
        yield Remote(stack=stack, ns=ns, worker=worker, project=project, postgres=postgres)


def _probe_from_inside(ns: NetNamespace, host: str, port: int) -> str:
    result = subprocess.run(
        [*ns.exec_prefix, sys.executable, "-I", "-c", PROBE, host, str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_the_worker_is_in_the_namespace_and_reaches_the_root_one_only_over_the_link(
    remote: Remote,
) -> None:
    assert remote.worker.process is not None
    worker_pid = remote.worker.process.pid
    assert remote.ns.contains(worker_pid)
    assert not remote.ns.contains(os.getpid())
    for child in psutil.Process(worker_pid).children(recursive=True):
        assert remote.ns.contains(child.pid), child.cmdline()
    api_port = remote.stack.port
    redis_port = remote.stack.redis.port

    # The root namespace's loopback is not the worker's: the API there is out of reach.
    assert _probe_from_inside(remote.ns, "127.0.0.1", api_port) == "ConnectionRefusedError"
    assert _probe_from_inside(remote.ns, "127.0.0.1", redis_port) == "ConnectionRefusedError"
    assert _probe_from_inside(remote.ns, remote.ns.host_address, api_port) == (
        "ConnectionRefusedError"
    )  # the API listens on loopback only
    # Redis over the link works; nothing but the link's /30 is routed.
    assert _probe_from_inside(remote.ns, remote.ns.host_address, redis_port) == "connected"
    routes = subprocess.run(
        [*remote.ns.exec_prefix, "ip", "-o", "route"], capture_output=True, text=True, check=True
    ).stdout
    assert "default" not in routes and remote.ns.inner_veth in routes, routes
    # And that is the way the worker came: the broker sees it at the namespace's address.
    broker = redis.Redis(unix_socket_path=str(remote.stack.redis.socket_path))
    try:
        peers = {client["addr"].rsplit(":", 1)[0] for client in broker.client_list()}
    finally:
        broker.close()
    assert remote.ns.inner_address in peers, peers


def _database_clients(remote: Remote) -> set[str]:
    """Addresses of the clients connected to the remote stack's database."""
    database = remote.stack.database_url.rsplit("/", 1)[-1]
    with remote.postgres.connect() as connection:
        rows = connection.execute(
            "SELECT client_addr FROM pg_stat_activity WHERE datname = %s", [database]
        ).fetchall()
    return {str(address) for (address,) in rows}


def test_jobs_from_the_root_namespace_run_on_the_remote_worker(remote: Remote) -> None:
    with remote.stack.client() as client:
        default = submit(client, pipeline_name="arithmetic")
        seven = submit(client, pipeline_name="arithmetic", parameters={"initial_value": 7})
        chatty = submit(client, pipeline_name="chatty", parameters={"chatty": {"mb": 20}})

        def kedro_running_remotely() -> list[psutil.Process] | None:
            procs = processes_mentioning(chatty["id"])
            return procs or None

        kedro = wait_until(kedro_running_remotely, timeout=90, what="the chatty kedro run")
        assert all(remote.ns.contains(proc.pid) for proc in kedro)

        def log_while_running() -> bool:
            job = client.get(f"/jobs/{chatty['id']}").json()
            assert job["status"] in {"pending", "running"}, job
            logs = client.get(f"/jobs/{chatty['id']}/logs", params={"limit": 4096}).json()
            return job["status"] == "running" and "chatty 000000000" in logs["data"]

        wait_until(log_while_running, timeout=60, what="chatty output while it runs")

        for job in (default, seven, chatty):
            done = wait_for_status(client, job["id"], timeout=240)
            assert done["status"] == "completed", done
            assert done["worker"].startswith("remote@"), done["worker"]
            assert done["attempt"] == 1

        # The run used the worker's own copy of the project (its default initial_value).
        expected = (DEFAULT_INITIAL_VALUE + 5) * 2 - 10
        assert re.search(rf"subtract_ten: value = {expected}\b", read_log(client, default["id"]))
        assert re.search(r"subtract_ten: value = 14\b", read_log(client, seven["id"]))
        # The worker wrote all that to PostgreSQL from the namespace's address.
        assert remote.ns.inner_address in _database_clients(remote)

        done = client.get(f"/jobs/{chatty['id']}").json()
        assert done["output_bytes"] >= 20 * 1000 * 1000
        assert done["output_dropped_bytes"] == done["output_bytes"] - LOG_CAP
        logs = f"/jobs/{chatty['id']}/logs"
        head = client.get(logs, params={"limit": LOG_CAP}).json()
        tail = client.get(logs, params={"offset": head["next_offset"], "limit": LOG_CAP}).json()
    assert head["offset"] == 0 and "chatty 000000000" in head["data"]
    assert tail["complete"] and "chatty done" in tail["data"]
