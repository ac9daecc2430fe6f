"""Schemathesis drives the live API from its `/openapi.json`, with API keys off and on.

Two real servers run for the module, each `uvicorn main:app` in its own process on
127.0.0.1, configured the way operators do it (environment variables): one with no keys,
one with `API_KEYS` (requests carry an admin's key, so every operation is reached). The
operations tested are those of the app's OpenAPI document, and
`test_live_openapi_is_the_fuzzed_document` proves each server serves exactly it.

Each operation gets a bounded, deterministic run (schemathesis's coverage and fuzzing
phases; valid and invalid data) with every check schemathesis has: no 5xx, documented status
codes, content types, response headers and bodies, valid data accepted, invalid data
rejected, 405s with a correct `Allow` and, with keys on, that the same request without
its key or with a wrong one is refused (`ignored_auth`). A stateful run chains real jobs
(submit, read, list, logs, events, cancel). Hand-made requests cover what the fuzzers
cannot: no key or a wrong one, a non-admin key, the SSE log stream, the body cap.

As in `test_validation.py`, the broker URL points at a missing socket, so jobs stay
pending and `/health` answers the `503` it documents.

Failures of the app are not fixed here (app/ is edited elsewhere). Each is a `Finding`
with the smallest request that shows it: `test_known_finding_reproduces` expects it
(xfail(strict=True), so a fix turns it red until the finding is deleted), and the fuzzers
tolerate exactly those failures on that operation and keep exploring, so anything new
still fails them. The xfails use `raises=KnownFinding`: any other error is a real failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.limits import MAX_BODY_BYTES
from app.application import create_app
from app.core.config import REPO_ROOT, Settings
from app.schemas.jobs import Job
from tests.utils.sse import read_events
from tests.utils.stack import free_port, kill_group, wait_until

MODES = ["open", "keyed"]
ADMIN_KEY, USER_KEY = "fuzz-admin-key-1", "fuzz-user-key-2"
API_KEYS = f"fuzzadmin:{ADMIN_KEY},fuzzuser:{USER_KEY}"
REQUEST_TIMEOUT = 10.0
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    # A live server is slow by Hypothesis's standards, and the fixtures are idempotent.
    suppress_health_check=list(hypothesis.HealthCheck),
)
STATEFUL_SETTINGS = hypothesis.settings(FUZZ_SETTINGS, max_examples=15, stateful_step_count=6)
# What `validate_response` checks on a hand-made request (the fuzzers run every check).
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# schemathesis's defaults for `not_a_server_error` and `positive_data_acceptance`, widened
# per operation below.
NOT_A_CRASH = ["2xx", "3xx", "4xx"]
VALID_DATA_OK = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# The document FastAPI serves at /openapi.json (building the app touches no database).
OPENAPI: dict[str, Any] = create_app(
    Settings(database_url="sqlite://", _env_file=None)  # type: ignore[call-arg]
).openapi()
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261122,
        "request-timeout": REQUEST_TIMEOUT,
        "cache": {"enabled": False},  # no `.schemathesis/` left in the work tree
        "operations": [
            {  # Readiness documents its 503 (here: no broker, no worker): not a crash.
                "include-path": "/api/v1/health",
                "checks": {"not_a_server_error": {"expected-statuses": [*NOT_A_CRASH, "503"]}},
            },
            {  # Refresh documents its 503: these servers have no broker.
                "include-path": "/api/v1/pipelines/refresh",
                "checks": {"not_a_server_error": {"expected-statuses": [*NOT_A_CRASH, "503"]}},
            },
            {  # The contract answers 422 for what the schema cannot rule out: an unknown
                # queue or pipeline on submit, a cursor the API did not issue.
                "include-path": "/api/v1/jobs",
                "checks": {"positive_data_acceptance": {"expected-statuses": VALID_DATA_OK}},
            },
            {  # A webhook URL is checked where it resolves (public addresses only): 422.
                "include-path": "/api/v1/webhooks",
                "checks": {"positive_data_acceptance": {"expected-statuses": VALID_DATA_OK}},
            },
            {  # The contract answers 422 when there is nothing to resume (or the nodes to
                # resume from are unknown) and for from_nodes given with "from": "failure".
                "include-path": "/api/v1/jobs/{job_id}/rerun",
                "checks": {"positive_data_acceptance": {"expected-statuses": VALID_DATA_OK}},
            },
        ],
    }
)
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)
PROTECTED = sorted(
    f"{method.upper()} {path}"
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if operation.get("security")
)


FOLLOWED = {"/api/v1/jobs/{job_id}/logs", "/api/v1/jobs/{job_id}/events"}


@schema.hook
def map_case(
    context: schemathesis.HookContext, case: schemathesis.Case[Any]
) -> schemathesis.Case[Any]:
    """Two adjustments to `GET /jobs/{job_id}/logs` and `/events`, the only operations
    they touch.

    - Never follow live: jobs here never end, so the stream would never close.
      `test_logs_stream_as_server_sent_events` checks the stream of a job that has ended.
    - FastAPI documents the optional `Last-Event-ID` header as `anyOf: [string, null]`;
      a header cannot carry JSON null (leaving it out is how one says null), but
      schemathesis sends the text `null`, which the header's pattern rightly refuses.
    """
    if case.operation.path not in FOLLOWED:
        return case
    if case.query and str(case.query.get("follow")).lower() in {"true", "1", "yes", "on"}:
        case.query["follow"] = "false"
    for name in list(case.headers or {}):
        value = case.headers[name]
        if (name.lower() == "accept" and "event-stream" in str(value)) or (
            name.lower() == "last-event-id" and value in (None, "null")
        ):
            del case.headers[name]
    return case


# -- Findings -------------------------------------------------------------------------


class KnownFinding(AssertionError):
    """Every failure of a response is a known one (see `Finding`)."""


@dataclass(frozen=True)
class Finding:
    """A failure the app has today, with the smallest request that shows it.

    The fuzzers tolerate its `failures` on its `operation` (and keep exploring), while
    `test_known_finding_reproduces` sends `case` and expects them, xfail(strict=True).
    """

    id: str
    operation: str
    # (schemathesis failure code, status of the response it is about; None: any)
    failures: frozenset[tuple[str, int | None]]
    case: dict[str, Any]  # `APIOperation.Case(...)` arguments
    status: int  # what the app answers to `case` today
    reason: str
    checks: tuple[schemathesis.CheckFunction, ...] = tuple(CONFORMANCE)


FINDINGS = [
    Finding(
        "options-405-allow-omits-get",
        "POST /api/v1/jobs",
        frozenset({("ST205", None)}),
        {"method": "OPTIONS"},
        405,
        "known limitation (Starlette routing): OPTIONS /api/v1/jobs answers 405 with "
        "`Allow: POST`, but GET is served on that path too (RFC 9110: Allow lists every "
        "supported method); no client of this API sends OPTIONS without CORS",
        checks=(allow_header_conformance,),
    ),
    *(
        Finding(
            f"options-405-allow-{name}",
            operation,
            frozenset({("ST205", None)}),
            {"method": "OPTIONS", **case},
            405,
            f"the same Starlette limitation on {operation.split()[1]}: `Allow` names only "
            "the first route's method",
            checks=(allow_header_conformance,),
        )
        for name, operation, case in (
            ("webhooks-get", "GET /api/v1/webhooks", {}),
            ("webhooks-post", "POST /api/v1/webhooks", {}),
            (
                "webhook-get",
                "GET /api/v1/webhooks/{webhook_id}",
                {"path_parameters": {"webhook_id": "0b7c3e0e-6f4e-4a0b-9a53-3f1d2c4e5a6b"}},
            ),
        )
    ),
    Finding(
        "options-405-allow-omits-put",
        "GET /api/v1/limits",
        frozenset({("ST205", None)}),
        {"method": "OPTIONS"},
        405,
        "the same Starlette limitation on /api/v1/limits: `Allow: GET`, but PUT is served too",
        checks=(allow_header_conformance,),
    ),
]


def _is_known(known: frozenset[tuple[str, int | None]], group: FailureGroup, status: int) -> bool:
    return all(
        (failure.code, None) in known
        or (failure.code, getattr(failure, "status_code", status)) in known
        for failure in group.exceptions
    )


def _validate(
    case: schemathesis.Case[Any],
    response: schemathesis.Response,
    api: LiveApi,
    *,
    known: frozenset[tuple[str, int | None]] = frozenset(),
    checks: Sequence[schemathesis.CheckFunction] = (),
    excluded: Sequence[schemathesis.CheckFunction] = (),
) -> None:
    """Run `checks` (default: all) on the response; raise `KnownFinding` if every
    failure is in `known`, the failures themselves if any is not."""
    try:
        case.validate_response(
            response,
            checks=list(checks) or None,
            excluded_checks=list(excluded),
            headers=api.headers,
            transport_kwargs={"base_url": api.base_url, "headers": api.headers},
        )
    except FailureGroup as group:
        if not _is_known(known, group, response.status_code):
            raise
        report = str(group)
    else:
        return
    # Raised outside `except`, so that it is not chained to the group it reports.
    raise KnownFinding(report)


def _fuzz(
    case: schemathesis.Case[Any],
    api: LiveApi,
    excluded: Sequence[schemathesis.CheckFunction] = (),
    response: schemathesis.Response | None = None,
) -> None:
    """Call and check, tolerating the `FINDINGS` of the case's operation."""
    known = frozenset(
        pair for f in FINDINGS if f.operation == case.operation.label for pair in f.failures
    )
    response = response if response is not None else api.call(case)
    with contextlib.suppress(KnownFinding):
        _validate(case, response, api, known=known, excluded=excluded)


# -- The live servers -----------------------------------------------------------------


@dataclass
class LiveApi:
    mode: str
    base_url: str
    headers: dict[str, str]

    def call(self, case: schemathesis.Case[Any], **headers: str) -> schemathesis.Response:
        response = case.call(
            base_url=self.base_url, headers={**self.headers, **headers}, timeout=REQUEST_TIMEOUT
        )
        if case.operation.label == "PUT /api/v1/limits":
            # Fuzzed limits would hold back (or refuse) the jobs later cases submit.
            httpx.put(
                f"{self.base_url}/api/v1/limits",
                json={},
                headers=self.headers,
                timeout=REQUEST_TIMEOUT,
            )
        return response


@dataclass
class Server:
    """`uvicorn main:app` in its own process group, configured by environment variables."""

    mode: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "api.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def env(self) -> dict[str, str]:
        # Nothing of the caller's configuration (variables named after Settings fields)
        # leaks in; the working directory has no `.env`.
        own = {name.upper() for name in Settings.model_fields}
        env = {k: v for k, v in os.environ.items() if k.upper() not in own}
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            DATABASE_URL=f"sqlite:///{self.directory / 'jobs.db'}",
            CELERY_BROKER_URL=f"redis+socket://{self.directory / 'no-broker.sock'}",
            DATA_DIR=str(self.directory / "data"),
            LOG_MAX_BYTES=str(64 * 1024),
        )
        if self.mode == "keyed":
            env.update(API_KEYS=API_KEYS, ADMIN_USERS="fuzzadmin")
        return env

    def start(self) -> None:
        argv = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--no-access-log", "--timeout-graceful-shutdown", "5"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.directory,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_until_up(self) -> LiveApi:
        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                return httpx.get(f"{self.base_url}/api/v1/health/live", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=60, what=f"the {self.mode} API to answer")
        keyed = self.mode == "keyed"
        return LiveApi(
            self.mode, self.base_url, {"Authorization": f"Bearer {ADMIN_KEY}"} if keyed else {}
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process, signal.SIGTERM)
            kill_group(self.process)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Both APIs, started side by side: keys off ("open") and on ("keyed")."""
    started = {
        mode: Server(mode, tmp_path_factory.mktemp(f"schemathesis-{mode}")) for mode in MODES
    }
    try:
        for server in started.values():
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def open_api(servers: dict[str, Server]) -> LiveApi:
    return servers["open"].wait_until_up()


@pytest.fixture(scope="module")
def keyed_api(servers: dict[str, Server]) -> LiveApi:
    """API keys on; requests carry an admin's key, so every operation is reached."""
    return servers["keyed"].wait_until_up()


@pytest.fixture(params=MODES)
def live(request: pytest.FixtureRequest) -> LiveApi:
    api: LiveApi = request.getfixturevalue(f"{request.param}_api")
    return api


def test_live_openapi_is_the_fuzzed_document(live: LiveApi) -> None:
    response = httpx.get(f"{live.base_url}/openapi.json", timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(json.dumps(OPENAPI))


# -- Every operation, fuzzed ----------------------------------------------------------


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_keys_off(case: schemathesis.Case[Any], open_api: LiveApi) -> None:
    """Every check but `ignored_auth`: with no keys the API is open by design."""
    _fuzz(case, open_api, excluded=[ignored_auth])


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_keys_on(case: schemathesis.Case[Any], keyed_api: LiveApi) -> None:
    """Every check, `ignored_auth` included: the case is resent without its key and
    with a wrong one, and must be refused."""
    _fuzz(case, keyed_api)


def test_stateful_job_workflows(live: LiveApi) -> None:
    """Chains of calls on real jobs (links inferred from the schema): submit, then read,
    list, read the logs and events of, and cancel them (again: 409)."""

    # Fuzzed limits (a pending cap of 0, say) would change what every later submit answers,
    # so the same steps would draw different rules: the workflows run on no limits.
    reset = httpx.put(f"{live.base_url}/api/v1/limits", json={}, headers=live.headers)
    assert reset.status_code == 200, reset.text
    workflows = schema.exclude(path="/api/v1/limits", method="PUT")

    class Workflow(workflows.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": live.base_url, "headers": live.headers, "timeout": REQUEST_TIMEOUT}

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case[Any],
            additional_checks: list[schemathesis.CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            _fuzz(case, live, [ignored_auth] if live.mode == "open" else [], response)

    Workflow.run(settings=STATEFUL_SETTINGS)


@pytest.mark.parametrize(
    "finding",
    [
        pytest.param(
            finding,
            id=finding.id,
            marks=pytest.mark.xfail(strict=True, raises=KnownFinding, reason=finding.reason),
        )
        for finding in FINDINGS
    ],
)
def test_known_finding_reproduces(live: LiveApi, finding: Finding) -> None:
    method, path = finding.operation.split(" ", 1)
    case = schema[path][method].Case(**finding.case)
    response = live.call(case)
    assert response.status_code == finding.status, response.text
    _validate(case, response, live, known=finding.failures, checks=finding.checks)


# -- Hand-made requests the fuzzers cannot make --------------------------------------


def _minimal_case(label: str) -> schemathesis.Case[Any]:
    """A request to `label` that would succeed with a key (unknown ids aside)."""
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    path_parameters = {
        "job_id": str(uuid.uuid4()),
        "webhook_id": str(uuid.uuid4()),
        "name": "arithmetic",
    }
    if method == "POST" and path == "/api/v1/jobs":
        return operation.Case(body={"pipeline_name": "arithmetic"}, media_type="application/json")
    return operation.Case(
        path_parameters={k: v for k, v in path_parameters.items() if "{" + k + "}" in path}
    )


NO_KEY_CASES = [
    *(pytest.param(label, {}, id=f"{label}-no-key") for label in PROTECTED),
    pytest.param("GET /api/v1/jobs", {"Authorization": "Bearer not-a-key"}, id="wrong-bearer"),
    pytest.param("GET /api/v1/jobs", {"X-API-Key": "not-a-key"}, id="wrong-x-api-key"),
]


@pytest.mark.parametrize(("label", "credentials"), NO_KEY_CASES)
def test_requests_without_a_valid_key_get_a_documented_401(
    keyed_api: LiveApi, label: str, credentials: dict[str, str]
) -> None:
    case = _minimal_case(label)
    caller = LiveApi("keyed", keyed_api.base_url, credentials)
    response = caller.call(case)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == ["Bearer"]
    assert set(response.json()) == {"detail"}
    _validate(case, response, caller, known=frozenset({("ST103", 401)}), checks=CONFORMANCE)


def test_a_user_key_gets_a_documented_403_on_refresh(keyed_api: LiveApi) -> None:
    case = _minimal_case("POST /api/v1/pipelines/refresh")
    user = LiveApi("keyed", keyed_api.base_url, {"X-API-Key": USER_KEY})
    response = user.call(case)
    assert response.status_code == 403, response.text
    _validate(case, response, user, known=frozenset({("ST103", 403)}), checks=CONFORMANCE)


@pytest.mark.parametrize(
    "ask", [pytest.param({"follow": "true"}, id="follow"), pytest.param({}, id="accept")]
)
def test_logs_stream_as_server_sent_events(live: LiveApi, ask: dict[str, str]) -> None:
    """A job that has ended streams to its end: no `log` events (it never ran), then one
    `end` event whose data is the terminal job; the response conforms to the schema."""
    with httpx.Client(base_url=live.base_url, headers=live.headers, timeout=10) as client:
        job = client.post("/api/v1/jobs", json={"pipeline_name": "arithmetic"}).json()
        assert client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
    operation = schema["/api/v1/jobs/{job_id}/logs"]["GET"]
    case = operation.Case(path_parameters={"job_id": job["id"]}, query=ask)
    accept = {} if ask else {"Accept": "text/event-stream"}
    response = live.call(case, **accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"][0].startswith("text/event-stream")
    _validate(case, response, live, checks=CONFORMANCE)
    events = list(read_events(httpx.Response(200, content=response.content)))
    assert [event.event for event in events] == ["end"]
    end = Job.model_validate_json(events[0].data)
    assert (end.id, end.status) == (job["id"], "cancelled")


def test_an_oversized_body_gets_the_documented_413(live: LiveApi) -> None:
    case = schema["/api/v1/jobs"]["POST"].Case(
        body={"pipeline_name": "arithmetic", "parameters": {"blob": "x" * MAX_BODY_BYTES}},
        media_type="application/json",
    )
    response = live.call(case)
    assert response.status_code == 413, response.text
    _validate(case, response, live, checks=CONFORMANCE)


def test_the_servers_logged_no_unhandled_error(servers: dict[str, Server]) -> None:
    """Last: whatever the requests above did, neither server logged a traceback (an error
    after a response has started, in a stream, or in the background, shows only there)."""
    for server in servers.values():
        log = server.log()
        assert "Traceback" not in log, log
        assert "unhandled error" not in log, log
