"""What each API call sends and how its answer is read, shared by the sync and async clients.

The clients only do the I/O: `Call` says method, path, query, body and how to parse
the response, so both clients speak to the server the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from kedro_gateway_client.errors import (
    ConnectionFailed,
    GatewayError,
    ValidationFailed,
    _describe,
    error_from_response,
)
from kedro_gateway_client.models import (
    Health,
    Job,
    JobCreate,
    JobEventList,
    JobList,
    JobStatus,
    Liveness,
    LogChunk,
    Pipeline,
    PipelineList,
    WorkerList,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
AuthScheme = Literal["bearer", "x-api-key"]
RerunFrom = Literal["start", "failure"]

#: Longest single long-poll the client asks for (the server may cap it lower).
MAX_LONG_POLL_SECONDS = 30.0


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    #: Error statuses whose body is still an answer (readiness's 503).
    accept: frozenset[int] = frozenset()
    timeout: float | None = None


def auth_headers(api_key: str | None, scheme: AuthScheme) -> dict[str, str]:
    if not api_key:
        return {}
    if scheme == "x-api-key":
        return {"X-API-Key": api_key}
    return {"Authorization": f"Bearer {api_key}"}


def base_headers(api_key: str | None, scheme: AuthScheme) -> dict[str, str]:
    from kedro_gateway_client import __version__

    return {
        "Accept": "application/json",
        "User-Agent": f"kedro-gateway-client/{__version__}",
        **auth_headers(api_key, scheme),
    }


def checked(response: httpx.Response, accept: frozenset[int] = frozenset()) -> httpx.Response:
    """The response, or its typed error."""
    if response.status_code >= 400 and response.status_code not in accept:
        raise error_from_response(response)
    return response


def transport_error(exc: httpx.HTTPError, url: str) -> GatewayError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ConnectionFailed(f"request to {url} {kind}: {exc or type(exc).__name__}")


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return cls.model_validate(response.json())
        except ValueError as exc:
            raise GatewayError(
                f"unexpected answer from {response.request.url}: {exc}",
                status_code=response.status_code,
                response=response,
            ) from None

    return parse


def _job_path(job_id: str, suffix: str = "") -> str:
    return f"{API_PREFIX}/jobs/{quote(str(job_id), safe='')}{suffix}"


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def job_create(pipeline: str | JobCreate, parameters: Any, options: dict[str, Any]) -> JobCreate:
    """The submit body; a value the model refuses is `ValidationFailed` before sending."""
    if isinstance(pipeline, JobCreate):
        return pipeline
    fields = dict(options, pipeline_name=pipeline)
    if parameters is not None:
        fields["parameters"] = parameters
    try:
        return JobCreate(**fields)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        detail = [{k: v for k, v in e.items() if k != "input"} for e in errors]
        raise ValidationFailed(_describe(detail), detail=detail) from None


# --- the calls --------------------------------------------------------------------------


def submit(request: JobCreate, idempotency_key: str | None) -> Call[Job]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return Call("POST", f"{API_PREFIX}/jobs", model(Job), json=request.to_body(), headers=headers)


def get_job(job_id: str, wait: float | None = None) -> Call[Job]:
    params = {"wait": _seconds(wait)} if wait else None
    timeout = None if not wait else wait + 30.0
    return Call("GET", _job_path(job_id), model(Job), params=params, timeout=timeout)


def list_jobs(
    *,
    status: JobStatus | str | None,
    pipeline_name: str | None,
    limit: int,
    cursor: str | None,
) -> Call[JobList]:
    params = _drop_none(
        {
            "status": str(status) if status is not None else None,
            "pipeline_name": pipeline_name,
            "limit": limit,
            "cursor": cursor,
        }
    )
    return Call("GET", f"{API_PREFIX}/jobs", model(JobList), params=params)


def cancel(job_id: str) -> Call[Job]:
    return Call("POST", _job_path(job_id, "/cancel"), model(Job))


def rerun_on_server(job_id: str, from_: RerunFrom, style: Literal["query", "body"]) -> Call[Job]:
    if style == "query":
        return Call("POST", _job_path(job_id, "/rerun"), model(Job), params={"from": from_})
    return Call("POST", _job_path(job_id, "/rerun"), model(Job), json={"from": from_})


def logs(job_id: str, offset: int, limit: int | None) -> Call[LogChunk]:
    params = _drop_none({"offset": offset, "limit": limit})
    return Call("GET", _job_path(job_id, "/logs"), model(LogChunk), params=params)


def events(job_id: str) -> Call[JobEventList]:
    return Call("GET", _job_path(job_id, "/events"), model(JobEventList))


def pipelines(queue: str | None) -> Call[PipelineList]:
    params = _drop_none({"queue": queue})
    return Call("GET", f"{API_PREFIX}/pipelines", model(PipelineList), params=params)


def pipeline(name: str, queue: str | None) -> Call[Pipeline]:
    path = f"{API_PREFIX}/pipelines/{quote(name, safe='')}"
    return Call("GET", path, model(Pipeline), params=_drop_none({"queue": queue}))


def workers() -> Call[WorkerList]:
    return Call("GET", f"{API_PREFIX}/workers", model(WorkerList))


def health() -> Call[Health]:
    return Call("GET", f"{API_PREFIX}/health", model(Health), accept=frozenset({503}))


def live() -> Call[Liveness]:
    return Call("GET", f"{API_PREFIX}/health/live", model(Liveness))


def openapi() -> Call[dict[str, Any]]:
    def parse(response: httpx.Response) -> dict[str, Any]:
        try:
            document = response.json()
        except ValueError:
            return {}
        return document if isinstance(document, dict) else {}

    return Call("GET", "/openapi.json", parse)


def _seconds(value: float) -> str:
    return f"{value:g}"


# --- what the server offers -------------------------------------------------------------


@dataclass(frozen=True)
class ServerFeatures:
    """Optional endpoints, read from the server's OpenAPI document.

    `long_poll`: `GET /jobs/{id}` takes `?wait=`; `rerun`: `POST /jobs/{id}/rerun`
    exists (`rerun_style` says whether `from` goes in the query or the body);
    `sse_logs`: `/jobs/{id}/logs` can stream Server-Sent Events.
    """

    long_poll: bool = False
    rerun: bool = False
    rerun_style: Literal["query", "body"] = "body"
    sse_logs: bool = True
    known: bool = False

    @classmethod
    def from_openapi(cls, document: dict[str, Any]) -> ServerFeatures:
        paths = document.get("paths")
        if not isinstance(paths, dict) or not paths:
            return cls()
        job_path = _find_path(paths, "/jobs/{", "}")
        get_job = paths.get(job_path, {}).get("get", {}) if job_path else {}
        rerun_path = _find_path(paths, "/jobs/{", "}/rerun")
        rerun_post = paths.get(rerun_path, {}).get("post") if rerun_path else None
        logs_path = _find_path(paths, "/jobs/{", "}/logs")
        logs_get = paths.get(logs_path, {}).get("get", {}) if logs_path else {}
        rerun_query = isinstance(rerun_post, dict) and "from" in _param_names(rerun_post)
        return cls(
            long_poll="wait" in _param_names(get_job),
            rerun=rerun_post is not None,
            rerun_style="query" if rerun_query else "body",
            sse_logs="follow" in _param_names(logs_get) or "event-stream" in str(logs_get),
            known=True,
        )


def _find_path(paths: dict[str, Any], head: str, tail: str) -> str | None:
    prefix = f"{API_PREFIX}{head}"
    for path in paths:
        if not (path.startswith(prefix) and path.endswith(tail)):
            continue
        if "/" not in path[len(prefix) : len(path) - len(tail)]:
            return path
    return None


def _param_names(operation: Any) -> set[str]:
    if not isinstance(operation, dict):
        return set()
    return {
        str(p.get("name"))
        for p in operation.get("parameters", [])
        if isinstance(p, dict) and p.get("in") == "query"
    }


# --- rerun done by the client -----------------------------------------------------------

_NOTHING_RAN = "No nodes ran."
_RESUME_HINT = re.compile(r'--from-nodes\s+"([^"]*)"')
#: How much of the end of a failed run's output to read for Kedro's resume hint.
RESUME_SCAN_BYTES = 256 * 1024


def resume_nodes(output: str) -> list[str] | None:
    """The nodes Kedro's last resume hint names (`--from-nodes "a,b"`), if it printed one."""
    hints = _RESUME_HINT.findall(output)
    if not hints:
        return None
    names = [name.strip() for name in hints[-1].split(",") if name.strip()]
    return names or None


RUN_OPTION_FIELDS = (
    "env",
    "tags",
    "runner",
    "node_names",
    "from_nodes",
    "to_nodes",
    "from_inputs",
    "to_outputs",
    "namespaces",
    "load_versions",
)


def rerun_request(
    job: Job, from_: RerunFrom, output_tail: str, changes: dict[str, Any]
) -> JobCreate:
    """A new submit that repeats `job`, from its start or from where it failed.

    From a failure: `from_nodes` becomes the nodes of Kedro's resume hint (`--from-nodes
    "a,b"`, the nearest nodes with persisted inputs); when no node had completed
    (Kedro: "No nodes ran."), the whole run is repeated.
    """
    fields: dict[str, Any] = {
        "pipeline_name": job.pipeline_name,
        "parameters": job.parameters,
        "queue": job.queue,
    }
    if job.timeout_seconds is not None:
        fields["timeout_seconds"] = job.timeout_seconds
    for name in RUN_OPTION_FIELDS:
        value = getattr(job, name)
        if value:
            fields[name] = value
    if from_ == "failure":
        if job.status == JobStatus.completed:
            raise GatewayError(f"job {job.id} completed: there is no failure to resume from")
        if not job.is_terminal:
            raise GatewayError(f"job {job.id} is still {job.status}: it has not failed")
        nodes = resume_nodes(output_tail)
        if nodes:
            fields["from_nodes"] = nodes
        elif not (_NOTHING_RAN in output_tail or job.progress.completed_nodes == 0):
            raise GatewayError(
                f"cannot tell where job {job.id} stopped (Kedro printed no resume hint); "
                "rerun it from the start"
            )
        # else: no node had completed, so resuming is running it all again
    fields.update(changes)
    return JobCreate(**fields)


def output_of_results(job: Job) -> str:
    tail = (job.results or {}).get("output_tail")
    if isinstance(tail, list):
        return "\n".join(str(line) for line in tail)
    return str(tail) if tail else ""


# --- Server-Sent Events -----------------------------------------------------------------


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None


@dataclass
class SseDecoder:
    """The Server-Sent Events wire format, fed one line at a time."""

    _event: str = "message"
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data and self._event == "message":
                return None
            event = SseEvent(self._event, "\n".join(self._data), self._id)
            self._event, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


def log_stream_request(job_id: str, offset: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    params = {"follow": "true", "offset": offset}
    headers = {"Accept": "text/event-stream", "Last-Event-ID": str(offset)}
    return _job_path(job_id, "/logs"), params, headers


def chunk_of_event(event: SseEvent, offset: int) -> LogChunk | None:
    """A `log` event as the chunk it carries (its `id` is the next offset)."""
    if event.event != "log":
        return None
    next_offset = int(event.id) if event.id and event.id.isdigit() else offset
    start = max(offset, next_offset - len(event.data.encode()))
    return LogChunk(offset=start, next_offset=next_offset, data=event.data, complete=False)


@dataclass
class Backoff:
    """Poll delays: `initial`, growing by `factor` up to `maximum`."""

    initial: float = 0.2
    factor: float = 1.5
    maximum: float = 2.0
    _next: float = 0.0

    def __post_init__(self) -> None:
        self._next = self.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.initial
