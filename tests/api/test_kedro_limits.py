"""Submit refuses, with a 422 that says why, what Kedro would take apart or refuse later."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.application import create_app
from app.core.config import Settings
from tests.utils.asgi import TestClient

JOBS = "/api/v1/jobs"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _refused(client: TestClient, body: dict[str, object]) -> str:
    response = client.post(JOBS, json={"pipeline_name": "echo", **body})
    assert response.status_code == 422, response.text[:500]
    assert client.get(JOBS).json()["items"] == []
    text: str = response.text
    return text


def test_five_thousand_parameters_are_refused_naming_omegaconfs_limit(client: TestClient) -> None:
    """OmegaConf would refuse the run-config file (10,001 YAML nodes) after a 202."""
    text = _refused(client, {"parameters": {f"p{i}": i for i in range(5000)}})
    assert "10001 YAML nodes" in text and "OmegaConf's limit of 10000" in text


def test_a_load_versions_name_with_a_colon_is_refused(client: TestClient) -> None:
    """Kedro reads `a:b:<version>` as dataset `a` at version `b:<version>`."""
    text = _refused(client, {"load_versions": {"a:b": "2024-01-01T00.00.00.000Z"}})
    assert "dataset name 'a:b' contains ':'" in text
    accepted = client.post(JOBS, json={"pipeline_name": "echo", "load_versions": {"ds": "v:1"}})
    assert accepted.status_code == 202  # a ':' in the version is read back whole
