"""The hot paths' fast lane: a plain `GET /api/v1/jobs/{id}` or `POST /api/v1/jobs`
answered before routing.

Pollers send the GET more than all other requests together (callers waiting for a
job, its long poll), and submitters the POST. Through FastAPI each costs routing
twice (the router and the HTTP-metrics middleware each match the path), solving the
dependency tree, and the metrics observations: several times the read itself, and
as much as the submit's own work. This outermost middleware answers the plain case
with the same body the endpoint would send, and passes everything else down to the
full application, so every refusal keeps its one implementation:

- GET: no query string but `wait=N` (a long poll, 0 < N ≤ 60 in plain decimals), an
  allowed `Host`, no key needed or a valid key, and the job found and the caller's
  (`read_job`, as the endpoint reads it: with why it waits for admission, if it does;
  with `wait`, the endpoint's `wait_for_job`).
- Following a job's output or transitions (`/logs` or `/events` with `?follow=true`
  or `Accept: text/event-stream`): no other query parameter than `offset` (logs), a
  well-formed `Last-Event-ID` if any, no repeated header, an allowed `Host`, no key
  needed or a valid key, the job found and the caller's, and a follower slot free.
  The stream is the endpoint's (`app.api.streams`); a thousand followers arriving
  at once cost a fraction of what routing each would, and take turns for their
  first reads (`FollowerSlots.arrive`).
- POST: no query string, an allowed `Host`, no key needed or a valid key, a JSON
  body of a declared length within the cap, not cross-site, no `Idempotency-Key`,
  and a body that validates. The submit is the endpoint's, awaited without a thread
  of its own (`Submitter.submit_plain`: its group commit is led on one thread for
  all the submits waiting); an error it raises is answered by the application's own
  exception handlers.

Requests it answers are counted in `gateway_fast_lane_requests_total` rather than
in the per-route HTTP metrics.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.limits import MAX_BODY_BYTES, cross_site, is_json
from app.api.security import KeyRing
from app.api.streams import EventStream, log_stream, status_stream
from app.ops.job_views import MAX_WAIT_SECONDS, read_job, wait_for_job
from app.ops.webhooks import check_notify
from app.schemas.jobs import JobCreate
from app.store import Visibility

SUBMIT_PATH = "/api/v1/jobs"
PREFIX = SUBMIT_PATH + "/"
_UUID = re.compile(  # hyphenated as usual, or 32 digits: both forms FastAPI's UUID takes
    r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_POSITION = re.compile(r"^[0-9]{1,19}$")  # the endpoints' `Last-Event-ID` pattern
MAX_OFFSET = 2**62


class FastLane:
    """Answers plain job reads itself; hands every other request to `app`."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str], counter: Counter) -> None:
        self.app = app
        self._any_host = "*" in allowed_hosts
        self._hosts = {host for host in allowed_hosts if not host.startswith("*")}
        self._suffixes = tuple(host[1:] for host in allowed_hosts if host.startswith("*."))
        self._counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].endswith(_FOLLOWED)
        ):
            stream = await self._follow(scope)
            if stream is not None:
                self._counter.inc()
                await stream(scope, receive, send)
                return
        elif scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            wait = _plain_wait(query) if scope["method"] == "GET" else None
            if wait is not None and scope["path"].startswith(PREFIX):
                try:
                    body = await self._answer(scope, wait)
                except Exception as exc:  # a long poll's read failed after it had waited
                    await _answer_error(scope, receive, send, exc)
                    return
                if body is not None:
                    self._counter.inc()
                    await _send_json(send, 200, body)
                    return
            elif scope["method"] == "POST" and not query and scope["path"] == SUBMIT_PATH:
                passed_on = await self._submit(scope, receive, send)
                if passed_on is None:
                    return
                receive = passed_on
        await self.app(scope, receive, send)

    async def _submit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answers a plain submit and returns None; otherwise the `receive` (replaying the
        body if it was read) with which the full application must answer."""
        headers = dict(scope["headers"])
        state: Any = scope["app"].state
        visibility = self._plain_submitter(headers, state.keyring)
        if visibility is None:
            return receive
        message = await receive()
        if message["type"] != "http.request" or message.get("more_body", False):
            return _replaying(message, receive)
        replay = _replaying(message, receive)
        try:
            request = JobCreate.model_validate(json.loads(message.get("body", b"")))
            check_notify(request.notify, state.settings)
        except Exception:  # the full path answers it: 400 or 422, with its details
            return replay
        try:
            job, created = await state.submitter.submit_plain(
                request=request, user_id=visibility.user_id
            )
        except Exception as exc:
            await _answer_error(scope, replay, send, exc)
            return None
        self._counter.inc()
        location = f"{PREFIX}{job.id}".encode()
        await _send_json(send, 202 if created else 200, job.model_dump_json().encode(), location)
        return None

    def _plain_submitter(self, headers: dict[bytes, bytes], keyring: KeyRing) -> Visibility | None:
        """The caller of a submit the fast lane may answer, or None."""
        length = headers.get(b"content-length", b"")
        if (
            not length.isdigit()
            or int(length) > MAX_BODY_BYTES
            or b"idempotency-key" in headers
            or not is_json(headers.get(b"content-type", b""))
            or cross_site(headers)
            or not self._host_allowed(headers.get(b"host", b"").decode("latin-1"))
        ):
            return None
        return _caller(keyring, headers)

    async def _answer(self, scope: Scope, wait: float) -> bytes | None:
        """The job's JSON (once terminal, or after `wait` seconds if not 0), or None when
        the full application must answer. A failure once the wait has begun is raised:
        the full application would wait all over again."""
        job_id = scope["path"][len(PREFIX) :]
        if not _UUID.fullmatch(job_id):
            return None
        headers = dict(scope["headers"])
        if not self._host_allowed(headers.get(b"host", b"").decode("latin-1")):
            return None
        state: Any = scope["app"].state
        visibility = _caller(state.keyring, headers)
        if visibility is None:
            return None
        try:
            job = await read_job(state.manager, job_id=_canonical(job_id), visibility=visibility)
        except Exception:  # the full path answers it: 404, 503, or a logged 500
            return None
        if wait and not job.status.is_terminal:
            job = await wait_for_job(
                state.manager, state.hub, job_id=job.id, visibility=visibility, seconds=wait
            )
        return job.model_dump_json().encode()

    async def _follow(self, scope: Scope) -> EventStream | None:
        """The stream of a plain follow, or None when the full application must answer."""
        path: str = scope["path"]
        job_id, _, kind = path.removeprefix(PREFIX).partition("/")
        if (
            not path.startswith(PREFIX)
            or kind not in ("logs", "events")
            or not _UUID.fullmatch(job_id)
        ):
            return None
        headers = dict(scope["headers"])
        if len(headers) != len(scope["headers"]):  # a repeated header: Starlette reads the first
            return None
        start = _follow_start(scope["query_string"], headers, offsets=kind == "logs")
        if start is None or not self._host_allowed(headers.get(b"host", b"").decode("latin-1")):
            return None
        state: Any = scope["app"].state
        visibility = _caller(state.keyring, headers)
        if visibility is None:
            return None
        arrived = await state.followers.arrive()  # a burst of followers takes turns
        try:
            job = await read_job(state.manager, job_id=_canonical(job_id), visibility=visibility)
            if kind == "logs":
                return log_stream(
                    state, job_id=job.id, offset=start, visibility=visibility, arrived=arrived
                )
            arrived()
            return status_stream(state, job_id=job.id, after=start, visibility=visibility)
        except Exception:  # the full path answers it: 404, 429, 503, or a logged 500
            arrived()
            return None
        except BaseException:
            arrived()
            raise

    def _host_allowed(self, host_header: str) -> bool:
        # The same rule as Starlette's TrustedHostMiddleware.
        host = host_header.split(":")[0]
        return self._any_host or host in self._hosts or host.endswith(self._suffixes)


_FOLLOWED = ("/logs", "/events")
_WAIT = re.compile(r"^wait=([0-9]{1,2}(?:\.[0-9]{1,6})?)$")


def _plain_wait(query: bytes) -> float | None:
    """0 for no query string, N for `wait=N` as the endpoint takes it (0 < N ≤ 60, in
    plain decimals), None for anything else."""
    if not query:
        return 0.0
    found = _WAIT.fullmatch(query.decode("latin-1"))
    seconds = float(found.group(1)) if found else 0.0
    return seconds if 0 < seconds <= MAX_WAIT_SECONDS else None


def _follow_start(query: bytes, headers: dict[bytes, bytes], *, offsets: bool) -> int | None:
    """Where a plain follow starts (`Last-Event-ID`, else `?offset=` for logs, else 0),
    or None if the request is not a plain follow."""
    params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    values = dict(params)
    if len(values) != len(params) or not values.keys() <= (
        {"follow", "offset"} if offsets else {"follow"}
    ):
        return None
    follow = values.get("follow")
    if follow not in ("true", "1") and not (
        follow is None and b"text/event-stream" in headers.get(b"accept", b"")
    ):
        return None
    offset = values.get("offset", "0")
    if not _POSITION.fullmatch(offset) or int(offset) > MAX_OFFSET:
        return None
    last_event_id = headers.get(b"last-event-id")
    if last_event_id is None:
        return int(offset)
    return int(last_event_id) if _POSITION.fullmatch(last_event_id.decode("latin-1")) else None


def _canonical(job_id: str) -> str:
    hexdigits = job_id.replace("-", "").lower()
    return (
        f"{hexdigits[:8]}-{hexdigits[8:12]}-{hexdigits[12:16]}-{hexdigits[16:20]}-{hexdigits[20:]}"
    )


def _caller(keyring: KeyRing, headers: dict[bytes, bytes]) -> Visibility | None:
    """As `get_visibility` decides, or None where it would refuse."""
    if not keyring.enabled:
        return keyring.open_access()
    scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        presented = credentials
    else:
        presented = headers.get(b"x-api-key", b"").decode("latin-1")
    if not presented:
        return None
    return keyring.identify(presented)


async def _send_json(send: Send, status: int, body: bytes, location: bytes | None = None) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if location is not None:
        headers.append((b"location", location))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replaying(first: Message, receive: Receive) -> Receive:
    """A `receive` that gives `first` again, then what `receive` gives."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _answer_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer `exc` as the application's exception handlers would (every class has one)."""
    handlers: dict[Any, Any] = scope["app"].exception_handlers
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)
