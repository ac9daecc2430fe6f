"""The client and the command line against a gateway with API keys on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gateway, run_cli, running_gateway

from kedro_gateway_client import GatewayClient, Unauthorized

pytestmark = pytest.mark.e2e

KEY = "client-e2e-" + "k" * 24


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("keyed"), API_KEYS=f"ci:{KEY}") as gw:
        yield gw


def _env(gateway: Gateway, tmp_path: Path, key: str | None) -> dict[str, str]:
    env = {
        "KEDRO_GATEWAY_URL": gateway.url,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    if key is not None:
        env["KEDRO_GATEWAY_API_KEY"] = key
    return env


def test_the_library_with_a_key_runs_a_job_and_without_one_is_refused(keyed: Gateway) -> None:
    with GatewayClient(keyed.url, api_key=KEY) as client:
        job = client.submit("arithmetic", parameters={"initial_value": 10})
        done = client.wait(job.id, timeout=120)
        assert done.status == "completed" and done.user_id == "ci"
    with GatewayClient(keyed.url) as anonymous, pytest.raises(Unauthorized, match="API key"):
        anonymous.list_jobs()


def test_the_command_line_uses_the_key_from_its_environment(keyed: Gateway, tmp_path: Path) -> None:
    done = run_cli(
        ["submit", "arithmetic", "-p", "initial_value=10", "--wait"], _env(keyed, tmp_path, KEY)
    )
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout + done.stderr  # never printed
    refused = run_cli(["list"], _env(keyed, tmp_path, None))
    assert refused.returncode == 4
    assert "API key" in refused.stderr and "Traceback" not in refused.stderr
