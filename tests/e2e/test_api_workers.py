"""The API as several processes (`API_WORKERS=2`): each serves, and exactly one of them
holds the background duties, taken over by another when it dies."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.utils.stack import duty_holder, running_stack, submit, wait_until

pytestmark = pytest.mark.e2e


def _servers(api: psutil.Process) -> list[psutil.Process]:
    """uvicorn's live server processes under `python main.py` (spawned: `spawn_main`)."""
    found = []
    for child in api.children():
        try:  # a child may end (or be reaped) between two of these calls
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _duty_holder_pid(database: Path) -> int | None:
    """The pid in the live `maintenance` lease's holder name (host:pid:nonce)."""
    holder = duty_holder(database)
    return None if holder is None else int(holder.split(":")[1])


def _completes(client: httpx.Client) -> None:
    job = submit(client, pipeline_name="arithmetic", parameters={"initial_value": 7})
    done = client.get(f"/jobs/{job['id']}", params={"wait": 60}, timeout=70).json()
    assert done["status"] == "completed", done


def test_two_api_processes_serve_and_one_holds_the_duties_until_it_dies(tmp_path: Path) -> None:
    database = tmp_path / "jobs.db"
    with running_stack(tmp_path, f"sqlite:///{database}", API_WORKERS="2") as stack:
        assert stack.api is not None and stack.api.process is not None
        api = psutil.Process(stack.api.process.pid)

        def both_up() -> list[psutil.Process] | None:
            found = _servers(api)
            return found if len(found) == 2 else None

        servers = wait_until(both_up, timeout=30, what="two API server processes")
        with stack.client() as client:
            for _ in range(4):  # new connections: the processes share the listening socket
                _completes(client)
        holder = wait_until(
            lambda: _duty_holder_pid(database), timeout=20, what="a holder of the duties"
        )
        assert holder in {server.pid for server in servers}

        psutil.Process(holder).send_signal(signal.SIGKILL)

        def taken_over() -> bool:
            # By the other process, or by the one uvicorn starts in the killed one's place.
            now = _duty_holder_pid(database)
            return now not in (None, holder) and now in {s.pid for s in _servers(api)}

        wait_until(taken_over, timeout=30, what="another API process to take the duties over")
        with stack.client() as client:
            _completes(client)
