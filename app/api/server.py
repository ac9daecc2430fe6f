"""uvicorn with limits that hold without a reverse proxy in front.

httptools, uvicorn's fast parser, buffers a header of any size and waits for a
slow client forever: one connection sending an 80 MB header stalled the event
loop for seconds, and a byte every few seconds kept a connection open for good.
This protocol cuts a request head off past `MAX_HEADER_BYTES` or
`MAX_HEADER_COUNT` (431) and a request whose head or body is not in within
`HEADER_TIMEOUT_SECONDS` / `BODY_TIMEOUT_SECONDS` (408), and uvicorn's own
`limit_concurrency` answers 503 past `MAX_CONNECTIONS`. It also sends a response's
head and the body that follows it in one write (`OneSendTransport`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.core.config import Settings


@dataclass(frozen=True)
class RequestLimits:
    max_header_bytes: int
    max_header_count: int
    header_timeout: float
    body_timeout: float


class LimitedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that bounds the size and the time of each request's head and body."""

    limits = RequestLimits(
        max_header_bytes=32 * 1024, max_header_count=100, header_timeout=10.0, body_timeout=30.0
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._timer is None:
                self._start_timer(self.limits.header_timeout)
        super().data_received(data)
        if self._in_head and not self._refused and self._head_too_large():
            self._refuse(431, "request header fields too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = self._header_count = 0
        self._start_timer(self.limits.body_timeout)
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:
            self.cycle.transport = OneSendTransport(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._in_head = True
        self._cancel_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _head_too_large(self) -> bool:
        limits = self.limits
        return self._head_bytes > limits.max_header_bytes or (
            self._header_count > limits.max_header_count
        )

    def _start_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        what = "request header" if self._in_head else "request body"
        self._refuse(408, f"{what} not received in time")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` (unless a response is under way) and close the connection."""
        self._refused = True
        self._cancel_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            body = message.encode()
            self.transport.write(
                STATUS_LINE[status]
                + b"content-type: text/plain; charset=utf-8\r\n"
                + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                + body
            )
        self.logger.warning("refused a request from %s: %s", self.client, message)
        self.transport.close()


class OneSendTransport:
    """A response's transport that holds its head until its body is written.

    uvicorn writes a response's head and its body with a send each; a body that
    follows at once (every JSON answer) now leaves with its head in one send, a
    system call less per request. A head whose body is not written in the same turn
    of the event loop (a stream) leaves at the end of that turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._first = True
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        if self._held is not None:
            data, self._held = self._held + data, None
        self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def limited_protocol(settings: Settings) -> type[LimitedHttpProtocol]:
    """The protocol class with the settings' limits (uvicorn instantiates it per connection)."""
    limits = RequestLimits(
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
    )
    return type("ConfiguredHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


def serve(app: Any, settings: Settings, *, app_path: str = "main:app") -> None:
    """Run the API on the settings' address, with the request limits, until stopped.

    With `API_WORKERS` above 1, uvicorn runs that many processes on one socket, each
    importing `app_path` and reading its settings from the environment."""
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": 5,
        # Requests still open this long after SIGTERM are cancelled (a `?wait=` long poll
        # would otherwise hold the stop for up to its 60 s).
        "timeout_graceful_shutdown": settings.api_stop_grace_seconds,
        "log_config": None,
    }
    if settings.api_workers > 1:
        http = "app.api.worker_protocol:EnvironmentLimitedProtocol"
        uvicorn.run(app_path, workers=settings.api_workers, http=http, **common)
        return
    uvicorn.run(app, http=limited_protocol(settings), **common)
