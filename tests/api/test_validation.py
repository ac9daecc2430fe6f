"""Input validation of the jobs API through the real app: bad input is a 4xx, never a job.

The broker URL of the `settings` fixture points at a missing socket, so publishing
fails fast and submitted jobs simply stay pending.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from app.api.limits import MAX_BODY_BYTES
from tests.utils.asgi import TestClient
from tests.utils.expected import CONTRACT_PARAMETERS

JOBS = "/api/v1/jobs"
JSON_HEADERS = {"Content-Type": "application/json"}
CONTRACT_JOB_FIELDS = {
    "id",
    "pipeline_name",
    "parameters",
    "env",
    "status",
    "user_id",
    "created_at",
    "started_at",
    "completed_at",
    "execution_time",
    "exit_code",
    "error_message",
    "progress",
    "results",
    "worker",
    "attempt",
}
ECHOED_OPTIONS = {
    "queue",
    "tags",
    "timeout_seconds",
    "runner",
    "node_names",
    "from_nodes",
    "to_nodes",
    "from_inputs",
    "to_outputs",
    "namespaces",
    "load_versions",
}


def job_count(client: TestClient) -> int:
    response = client.get(JOBS, params={"limit": 100})
    assert response.status_code == 200
    return len(response.json()["items"])


def assert_client_error(response: Any, expected: int | None = None) -> None:
    """A 4xx (or exactly `expected`) with a JSON `detail` and no traceback."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if expected is not None:
        assert response.status_code == expected, response.text[:500]
    assert "detail" in response.json()
    assert "Traceback" not in response.text


def submit(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post(JOBS, json=body, headers=headers)


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def raw(text: str) -> bytes:
    return text.encode()


# --- bad submits ----------------------------------------------------------------------

BAD_BODIES: list[Any] = [
    pytest.param({"pipeline_name": "../x"}, id="name-dotdot-slash"),
    pytest.param({"pipeline_name": "a;rm -rf /"}, id="name-shell"),
    pytest.param({"pipeline_name": "$(id)"}, id="name-subst"),
    pytest.param({"pipeline_name": ""}, id="name-empty"),
    pytest.param({"pipeline_name": "a" * 201}, id="name-201-chars"),
    pytest.param({"pipeline_name": "x\n"}, id="name-trailing-newline"),
    pytest.param({"pipeline_name": "a b"}, id="name-space"),
    pytest.param({"pipeline_name": "café"}, id="name-unicode"),
    pytest.param({"pipeline_name": 5}, id="name-number"),
    pytest.param({"pipeline_name": None}, id="name-null"),
    pytest.param({"pipeline_name": ["x"]}, id="name-list"),
    pytest.param({}, id="missing-name"),
    pytest.param({"parameters": {"a": 1}}, id="missing-name-with-params"),
    pytest.param({"pipeline_name": "x", "bogus": 1}, id="unknown-field"),
    pytest.param({"pipeline_name": "x", "Parameters": {}}, id="unknown-field-case"),
    pytest.param({"pipeline_name": "x", "status": "completed"}, id="unknown-field-status"),
    pytest.param({"pipeline_name": "x", "user_id": "root"}, id="unknown-field-user"),
    pytest.param({"pipeline_name": "x", "id": str(uuid.uuid4())}, id="unknown-field-id"),
    pytest.param({"pipeline_name": "x", "parameters": [1, 2]}, id="params-list"),
    pytest.param({"pipeline_name": "x", "parameters": "a=1"}, id="params-string"),
    pytest.param({"pipeline_name": "x", "parameters": 3}, id="params-number"),
    pytest.param({"pipeline_name": "x", "parameters": True}, id="params-bool"),
    pytest.param({"pipeline_name": "x", "parameters": None}, id="params-null"),
    pytest.param({"pipeline_name": "x", "parameters": {"a b": 1}}, id="key-space"),
    pytest.param({"pipeline_name": "x", "parameters": {"": 1}}, id="key-empty"),
    pytest.param({"pipeline_name": "x", "parameters": {"1x": 1}}, id="key-digit-first"),
    pytest.param({"pipeline_name": "x", "parameters": {"a.b": 1}}, id="key-dot"),
    pytest.param({"pipeline_name": "x", "parameters": {"${x}": 1}}, id="key-interpolation"),
    pytest.param({"pipeline_name": "x", "parameters": {"k" * 201: 1}}, id="key-201-chars"),
    pytest.param({"pipeline_name": "x", "parameters": {"ok": {"b-d key": 1}}}, id="key-nested"),
    pytest.param({"pipeline_name": "x", "parameters": {"l": [{"a": 1}]}}, id="dict-in-list"),
    pytest.param({"pipeline_name": "x", "parameters": {"l": [[1]]}}, id="list-in-list"),
    pytest.param(
        {
            "pipeline_name": "x",
            "parameters": {
                "k": {
                    "k": {
                        "k": {
                            "k": {
                                "k": {
                                    "k": {
                                        "k": {
                                            "k": {
                                                "k": {
                                                    "k": {
                                                        "k": {
                                                            "k": {
                                                                "k": {"k": {"k": {"k": {"k": 1}}}}
                                                            }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        },
        id="params-too-deep",
    ),
    pytest.param(
        {"pipeline_name": "x", "parameters": {f"k{i}": i for i in range(10_001)}},
        id="params-too-many",
    ),
    pytest.param({"pipeline_name": "x", "runner": "Bogus"}, id="runner-unknown"),
    pytest.param({"pipeline_name": "x", "runner": "sequentialrunner"}, id="runner-case"),
    pytest.param(
        {"pipeline_name": "x", "runner": "kedro.runner.SequentialRunner"}, id="runner-dotted"
    ),
    pytest.param({"pipeline_name": "x", "env": "../prod"}, id="env-path"),
    pytest.param({"pipeline_name": "x", "queue": "../q"}, id="queue-path"),
    pytest.param({"pipeline_name": "x", "queue": ""}, id="queue-empty"),
    pytest.param({"pipeline_name": "x", "tags": ["a b"]}, id="tag-space"),
    pytest.param({"pipeline_name": "x", "tags": "t1"}, id="tags-string"),
    pytest.param({"pipeline_name": "x", "node_names": ["--help"] * 501}, id="too-many-nodes"),
    pytest.param({"pipeline_name": "x", "from_nodes": ["a;b"]}, id="node-shell"),
    pytest.param({"pipeline_name": "x", "load_versions": {"a b": "v"}}, id="load-versions-key"),
    pytest.param({"pipeline_name": "x", "load_versions": ["a"]}, id="load-versions-list"),
    pytest.param({"pipeline_name": "x", "timeout_seconds": 0}, id="timeout-zero"),
    pytest.param({"pipeline_name": "x", "timeout_seconds": -1}, id="timeout-negative"),
    pytest.param({"pipeline_name": "x", "timeout_seconds": "soon"}, id="timeout-string"),
    pytest.param({"pipeline_name": "x", "timeout_seconds": 10**9}, id="timeout-huge"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_body_is_422_and_records_nothing(client: TestClient, body: Any) -> None:
    """Every invalid field gets FastAPI's 422 and no job is recorded."""
    before = job_count(client)
    response = submit(client, body)
    assert_client_error(response, 422)
    assert job_count(client) == before


BAD_RAW_BODIES: list[Any] = [
    pytest.param(b"{bad", JSON_HEADERS, id="malformed"),
    pytest.param(b'{"pipeline_name": "x"', JSON_HEADERS, id="truncated"),
    pytest.param(b'{"pipeline_name": "x",}', JSON_HEADERS, id="trailing-comma"),
    pytest.param(b"", JSON_HEADERS, id="empty"),
    pytest.param(b"null", JSON_HEADERS, id="null"),
    pytest.param(b"[]", JSON_HEADERS, id="array"),
    pytest.param(b'"arithmetic"', JSON_HEADERS, id="string"),
    pytest.param(b"\xff\xfe{}", JSON_HEADERS, id="not-utf8"),
    pytest.param(b"[" * 100_000, JSON_HEADERS, id="deeply-nested"),
    pytest.param(b"{bad", {}, id="no-content-type"),
    pytest.param(b'{"pipeline_name": "x"}', {"Content-Type": "text/plain"}, id="text-plain"),
    pytest.param(
        raw('{"pipeline_name": "x", "pipeline_name": "../x"}'), JSON_HEADERS, id="duplicate-key"
    ),
    pytest.param(
        raw('{"pipeline_name": "x", "parameters": {"a": "\\ud800"}}'),
        JSON_HEADERS,
        id="lone-surrogate-value",
    ),
    pytest.param(
        raw('{"pipeline_name": "x", "parameters": {"a": NaN}}'),
        JSON_HEADERS,
        id="nan-parameter",
    ),
    pytest.param(
        raw('{"pipeline_name": "x", "parameters": {"a": [1, Infinity]}}'),
        JSON_HEADERS,
        id="infinity-parameter",
    ),
    pytest.param(
        raw('{"pipeline_name": "x", "parameters": {"a": 1e999}}'),
        JSON_HEADERS,
        id="overflowing-float",
    ),
    pytest.param(
        raw('{"pipeline_name": "x", "timeout_seconds": NaN}'),
        JSON_HEADERS,
        id="nan-timeout",
    ),
    pytest.param(
        raw('{"pipeline_name": "\\ud800"}'),
        JSON_HEADERS,
        id="lone-surrogate-name",
    ),
    pytest.param(
        raw('{"pipeline_name": "x", "tags": ["\\udfff"]}'),
        JSON_HEADERS,
        id="lone-surrogate-tag",
    ),
]


@pytest.mark.parametrize(("content", "headers"), BAD_RAW_BODIES)
def test_bad_raw_body_is_4xx_and_records_nothing(
    client: TestClient, content: bytes, headers: dict[str, str]
) -> None:
    """Bodies that are not a JSON job request are refused with a 4xx, never a 500."""
    before = job_count(client)
    response = client.post(JOBS, content=content, headers=headers)
    assert_client_error(response)
    assert job_count(client) == before


def _body_of_size(size: int) -> bytes:
    """A valid submit body of exactly `size` bytes."""
    empty = json.dumps({"pipeline_name": "x", "parameters": {"pad": ""}}).encode()
    body = json.dumps({"pipeline_name": "x", "parameters": {"pad": "a" * (size - len(empty))}})
    assert len(body.encode()) == size
    return body.encode()


def test_body_over_one_mib_is_413(client: TestClient) -> None:
    """2 MiB, and one byte over 1 MiB, are refused with 413 before parsing."""
    before = job_count(client)
    for size in (2 * 1024 * 1024, MAX_BODY_BYTES + 1):
        response = client.post(JOBS, content=_body_of_size(size), headers=JSON_HEADERS)
        assert_client_error(response, 413)
    assert job_count(client) == before


def test_body_of_exactly_one_mib_is_accepted(client: TestClient) -> None:
    """The cap is inclusive: a 1 MiB body is an ordinary submit."""
    response = client.post(JOBS, content=_body_of_size(MAX_BODY_BYTES), headers=JSON_HEADERS)
    assert response.status_code == 202, response.text[:300]


def test_body_with_bad_content_length_is_refused(client: TestClient) -> None:
    """A Content-Length that is not a number is a client error."""
    before = job_count(client)
    response = client.post(
        JOBS,
        content=b'{"pipeline_name": "x"}',
        headers={**JSON_HEADERS, "Content-Length": "abc"},
    )
    assert_client_error(response)
    assert job_count(client) == before


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_small_chunked_body_is_accepted(client: TestClient) -> None:
    """A chunked upload (no Content-Length) under the cap is an ordinary submit."""
    response = client.post(JOBS, content=_chunks(_body_of_size(300_000)), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert response.status_code == 202, response.text[:300]


def test_chunked_body_over_one_mib_is_413(client: TestClient) -> None:
    """Without Content-Length the body is counted as it streams in, and still gets 413."""
    before = job_count(client)
    response = client.post(
        JOBS, content=_chunks(_body_of_size(2 * 1024 * 1024)), headers=JSON_HEADERS
    )
    assert "content-length" not in response.request.headers
    assert job_count(client) == before
    assert_client_error(response, 413)


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_bad_idempotency_key_is_422(client: TestClient, key: str) -> None:
    """Idempotency-Key is 1..200 characters."""
    before = job_count(client)
    assert_client_error(submit(client, {"pipeline_name": "x"}, **{"Idempotency-Key": key}), 422)
    assert job_count(client) == before


# --- bad queries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "abc"},
        {"limit": "-1"},
        {"limit": "1.5"},
        {"limit": ""},
        {"status": "bogus"},
        {"status": "PENDING"},
        {"status": ""},
        {"pipeline_name": "p" * 201},
        {"cursor": "c" * 501},
    ],
)
def test_bad_list_query_is_422(client: TestClient, params: dict[str, str]) -> None:
    """Out-of-range limits, unknown statuses and oversized filters are 422."""
    assert_client_error(client.get(JOBS, params=params), 422)


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("bm90IGpzb24", id="not-json"),
        pytest.param(encode_cursor([]), id="empty-list"),
        pytest.param(encode_cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]), id="bad-id"),
        pytest.param(encode_cursor(["yesterday", str(uuid.uuid4())]), id="bad-time"),
        pytest.param(encode_cursor({"a": 1, "b": 2}), id="object"),
        pytest.param(
            encode_cursor(["2026-01-01T00:00:00+00:00", 5]),
            id="numeric-id",
        ),
        pytest.param(
            encode_cursor(["0001-01-01T00:00:00+05:00", str(uuid.uuid4())]),
            id="time-out-of-range",
        ),
    ],
)
def test_bad_cursor_is_422(client: TestClient, cursor: str) -> None:
    """A cursor the API did not hand out is 422 'invalid cursor'."""
    response = client.get(JOBS, params={"cursor": cursor})
    assert_client_error(response, 422)


def test_list_query_edges_are_accepted(client: TestClient) -> None:
    """limit 1 and 100 are in range; a filter on an unknown pipeline is just empty."""
    for limit in ("1", "100"):
        assert client.get(JOBS, params={"limit": limit}).status_code == 200
    response = client.get(JOBS, params={"pipeline_name": "no-such", "status": "failed"})
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", "/cancel"), ("get", "/logs"), ("get", "/events")],
)
def test_unknown_job_is_404(client: TestClient, method: str, suffix: str) -> None:
    """A well-formed but unknown id is 404 on every job endpoint."""
    unknown = uuid.uuid4()
    response = client.request(method.upper(), f"{JOBS}/{unknown}{suffix}")
    assert_client_error(response, 404)
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", "/cancel"), ("get", "/logs"), ("get", "/events")],
)
@pytest.mark.parametrize(
    "job_id", ["nope", "1234", "0b7c3e0e-6f4e-4a0b-9a53-3f1d2c4e5a6", "%24(id)", "%00", "f" * 100]
)
def test_malformed_job_id_is_422(client: TestClient, method: str, suffix: str, job_id: str) -> None:
    """An id that is not a UUID is 422 on every job endpoint."""
    response = client.request(method.upper(), f"{JOBS}/{job_id}{suffix}")
    assert_client_error(response, 422)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"offset": "-1"}, id="negative-offset"),
        pytest.param({"offset": "x"}, id="text-offset"),
        pytest.param({"limit": "0"}, id="zero-limit"),
        pytest.param({"limit": str(10**12)}, id="huge-limit"),
        pytest.param(
            {"offset": str(2**63)},
            id="offset-2-63",
        ),
        pytest.param(
            {"offset": "9" * 30},
            id="offset-30-digits",
        ),
    ],
)
def test_bad_log_query_is_4xx(client: TestClient, params: dict[str, str]) -> None:
    """Log offsets and limits out of range are client errors."""
    job_id = submit(client, {"pipeline_name": "x"}).json()["id"]
    assert_client_error(client.get(f"{JOBS}/{job_id}/logs", params=params))


# --- the happy path ---------------------------------------------------------------------


def _assert_utc(value: str) -> None:
    assert value.endswith(("Z", "+00:00")), value
    assert datetime.fromisoformat(value).utcoffset() is not None


def test_submit_returns_202_location_and_the_contract_job(client: TestClient) -> None:
    """POST /jobs: 202, Location, and a pending job with every contract field."""
    response = submit(client, {"pipeline_name": "arithmetic", "parameters": {"initial_value": 10}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"{JOBS}/{job['id']}"
    assert set(job) >= CONTRACT_JOB_FIELDS | ECHOED_OPTIONS
    assert str(uuid.UUID(job["id"])) == job["id"]
    assert job["pipeline_name"] == "arithmetic"
    assert job["parameters"] == {"initial_value": 10}
    assert job["status"] == "pending"
    assert job["queue"] == "default"
    assert job["progress"] == {
        "completed_nodes": 0,
        "total_nodes": None,
        "completed_node_names": [],
        "running_node_names": [],
    }
    assert job["attempt"] == 0
    for name in (
        "env",
        "user_id",
        "started_at",
        "completed_at",
        "execution_time",
        "exit_code",
        "error_message",
        "results",
        "worker",
        "timeout_seconds",
    ):
        assert job[name] is None, name
    _assert_utc(job["created_at"])

    fetched = client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == job
    listed = client.get(JOBS).json()
    assert [item["id"] for item in listed["items"]] == [job["id"]]
    assert listed["next_cursor"] is None


def test_submit_echoes_every_option_and_parameter_intact(client: TestClient) -> None:
    """The contract's full body is accepted and echoed, parameters with their types."""
    body = {
        "pipeline_name": "arithmetic",
        "parameters": CONTRACT_PARAMETERS,
        "env": "prod",
        "tags": ["t1"],
        "timeout_seconds": 600,
        "queue": "default",
        "runner": "SequentialRunner",
        "node_names": [],
        "from_nodes": [],
        "to_nodes": [],
        "from_inputs": [],
        "to_outputs": [],
        "namespaces": [],
        "load_versions": {},
    }
    response = submit(client, body)
    assert response.status_code == 202, response.text
    job = response.json()
    for name, value in body.items():
        assert job[name] == value, name
    assert json.dumps(job["parameters"], sort_keys=True) == json.dumps(
        CONTRACT_PARAMETERS, sort_keys=True
    )


@pytest.mark.parametrize("runner", ["SequentialRunner", "ThreadRunner", "ParallelRunner"])
def test_every_allowed_runner_is_accepted(client: TestClient, runner: str) -> None:
    """The runner allowlist is exactly Kedro's three runners."""
    response = submit(client, {"pipeline_name": "x", "runner": runner})
    assert response.status_code == 202
    assert response.json()["runner"] == runner


def test_idempotency_key(client: TestClient) -> None:
    """Same key and body → 200 and the first job; different body → 409; one job recorded."""
    headers = {"Idempotency-Key": "submit-1"}
    body = {"pipeline_name": "arithmetic", "parameters": {"initial_value": 1}}
    first = submit(client, body, **headers)
    assert first.status_code == 202
    repeat = submit(client, body, **headers)
    assert repeat.status_code == 200
    assert repeat.json()["id"] == first.json()["id"]
    assert repeat.headers["location"] == first.headers["location"]
    conflict = submit(client, {**body, "parameters": {"initial_value": 2}}, **headers)
    assert_client_error(conflict, 409)
    assert isinstance(conflict.json()["detail"], str)
    assert job_count(client) == 1
    other_key = submit(client, body, **{"Idempotency-Key": "submit-2"})
    assert other_key.status_code == 202
    assert other_key.json()["id"] != first.json()["id"]


def test_cancel_pending_job(client: TestClient) -> None:
    """Cancel a pending job → 202 cancelled; again → 409; events and logs reflect it."""
    job_id = submit(client, {"pipeline_name": "arithmetic"}).json()["id"]
    cancelled = client.post(f"{JOBS}/{job_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    body = cancelled.json()
    assert body["id"] == job_id
    assert body["status"] == "cancelled"
    _assert_utc(body["completed_at"])
    assert_client_error(client.post(f"{JOBS}/{job_id}/cancel"), 409)
    assert client.get(f"{JOBS}/{job_id}").json()["status"] == "cancelled"

    events = client.get(f"{JOBS}/{job_id}/events")
    assert events.status_code == 200
    items = events.json()["items"]
    assert [item["status"] for item in items] == ["pending", "cancelled"]
    for item in items:
        assert set(item) == {"at", "status", "reason", "attempt", "worker"}
        _assert_utc(item["at"])

    logs = client.get(f"{JOBS}/{job_id}/logs")
    assert logs.status_code == 200
    assert logs.json() == {"offset": 0, "next_offset": 0, "data": "", "complete": True}


def test_list_pages_through_the_api(client: TestClient) -> None:
    """Cursor pages over HTTP visit every job once, newest first."""
    created = [submit(client, {"pipeline_name": f"p{i}"}).json()["id"] for i in range(7)]
    seen: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    while True:
        page = client.get(JOBS, params=params)
        assert page.status_code == 200
        seen.extend(item["id"] for item in page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        params = {"limit": "3", "cursor": cursor}
    assert seen == list(reversed(created))


# --- the OpenAPI document ----------------------------------------------------------------

CONTRACT_ENDPOINTS = [
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{job_id}"),
    ("post", "/api/v1/jobs/{job_id}/cancel"),
    ("get", "/api/v1/jobs/{job_id}/logs"),
    ("get", "/api/v1/jobs/{job_id}/events"),
    ("get", "/api/v1/pipelines"),
    ("get", "/api/v1/pipelines/{name}"),
    ("get", "/api/v1/workers"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/health/live"),
    ("get", "/metrics"),
]


def _openapi_operations(client: TestClient) -> set[tuple[str, str]]:
    document = client.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    # Path parameter names are the implementer's choice; compare paths with them blanked.
    return {(method, _blank_parameters(path)) for path, item in paths.items() for method in item}


def _blank_parameters(path: str) -> str:
    parts = path.split("/")
    return "/".join("{}" if part.startswith("{") else part for part in parts)


@pytest.mark.parametrize(
    "endpoint", [pytest.param(endpoint, id=" ".join(endpoint)) for endpoint in CONTRACT_ENDPOINTS]
)
def test_openapi_lists_contract_endpoint(client: TestClient, endpoint: tuple[str, str]) -> None:
    """Every endpoint of the contract is described in /openapi.json."""
    method, path = endpoint
    assert (method, _blank_parameters(path)) in _openapi_operations(client)


def test_openapi_documents_the_job_and_error_responses(client: TestClient) -> None:
    """The submit operation documents 202, its 200 repeat, 409, 413 and 422."""
    document = client.get("/openapi.json").json()
    submit_op = document["paths"]["/api/v1/jobs"]["post"]
    assert {"200", "202", "409", "413", "422"} <= set(submit_op["responses"])
    job_schema = document["components"]["schemas"]["Job"]
    assert set(job_schema["properties"]) >= CONTRACT_JOB_FIELDS | ECHOED_OPTIONS


def test_a_json_body_sent_without_a_type_is_accepted(client: TestClient) -> None:
    """A body with no Content-Type is read as JSON, for plain clients."""
    body = json.dumps({"pipeline_name": "arithmetic", "parameters": {"initial_value": 10}})
    response = client.post(JOBS, content=body)
    assert response.status_code == 202, response.text
    assert response.json()["parameters"] == {"initial_value": 10}
