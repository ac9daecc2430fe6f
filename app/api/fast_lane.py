"""The hot path's fast lane: a plain `GET /api/v1/jobs/{id}` answered before routing.

Pollers send this request more than all others together. Through FastAPI it
costs routing twice (the router and the HTTP-metrics middleware each match the
path), solving the dependency tree, and the metrics observations: several times
the read itself. This outermost middleware answers the plain case (no query
string, an allowed `Host`, no key needed or a valid key, the job found and the
caller's) with the same body the endpoint would send, and passes everything else
(`?wait=`, errors of any kind) down to the full application, so every refusal
keeps its one implementation. Requests it answers are counted in
`gateway_fast_lane_requests_total` rather than in the per-route HTTP metrics.
"""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.security import KeyRing
from app.ops.job_views import read_job
from app.schemas.jobs import JobStatus
from app.store import Visibility

PREFIX = "/api/v1/jobs/"
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


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
            and not scope.get("query_string")
            and scope["path"].startswith(PREFIX)
        ):
            body = await self._answer(scope)
            if body is not None:
                self._counter.inc()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> bytes | None:
        """The job's JSON, or None when the full application must answer."""
        job_id = scope["path"][len(PREFIX) :]
        if not _UUID.match(job_id):
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
        if job.status == JobStatus.pending:
            return None  # the full path says why it waits (admission) and its place in line
        return job.model_dump_json().encode()

    def _host_allowed(self, host_header: str) -> bool:
        # The same rule as Starlette's TrustedHostMiddleware.
        host = host_header.split(":")[0]
        return self._any_host or host in self._hosts or host.endswith(self._suffixes)


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
