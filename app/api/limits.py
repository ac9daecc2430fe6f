"""Request bodies: refuse those over a size cap, and unsafe requests from other sites."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024


class BodySizeLimit:
    """413 for bodies over `max_bytes`, by Content-Length or by counting a streamed body."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = f"request body is larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await _refuse(send, 400, "invalid Content-Length header")
            return
        if declared is not None and int(declared) > self.max_bytes:
            await _refuse(send, 413, self.too_large)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading; others become 400.
                    raise HTTPException(413, self.too_large)
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_SAME_ORIGIN = {b"same-origin", b"none"}


class SameOriginJson:
    """Unsafe requests carry JSON and come from this origin, or from no browser at all.

    A page on another site can send a "simple" request (a form or text/plain body)
    with no CORS preflight, so in open mode any page the operator visits could start
    jobs. Browsers label such requests (`Origin`, `Sec-Fetch-Site`); other clients send
    neither. A body sent with no type is read as JSON, for `curl -d` users.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = dict(scope["headers"])
            if cross_site(headers):
                await _refuse(send, 403, "cross-site requests are refused")
                return
            stated = headers.get(b"content-type")
            if not stated:
                kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope = dict(scope, headers=[*kept, (b"content-type", _JSON)])
            elif not is_json(stated):
                await _refuse(send, 415, "send the request body as application/json")
                return
        await self.app(scope, receive, send)


_JSON = b"application/json"


def is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


def cross_site(headers: dict[bytes, bytes]) -> bool:
    fetch_site = headers.get(b"sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in _SAME_ORIGIN:
        return True
    origin = headers.get(b"origin")
    if origin is None:
        return False
    host = headers.get(b"host", b"")
    return origin.partition(b"://")[2].lower() != host.lower()
