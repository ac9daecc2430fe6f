"""A real webhook receiver: an HTTP server on 127.0.0.1 in a thread, recording every request."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that timed out has hung up: writing the answer fails, as it should."""


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.monotonic() when it arrived


class Receiver:
    """Answers `status` (with `location`, after `delay` seconds) and keeps what it got.

    With `outage_seconds`, it answers 500 from its first request until that many seconds
    (of its own monotonic clock) after it, and `status` from then on. It always answers
    400 to a payload whose `webhook-id` is in `refused`."""

    def __init__(self) -> None:
        self.status = 200
        self.location: str | None = None
        self.delay = 0.0
        self.outage_seconds: float | None = None
        self.outage_began: float | None = None
        self.refused: set[str] = set()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook?token=abc"

    def received(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def verified(self, secret: str) -> list[tuple[str, dict[str, Any]]]:
        """(webhook-id, payload) of every request, each verified with `standardwebhooks`."""
        checker = Webhook(secret)
        return [
            (request.headers["webhook-id"], checker.verify(request.body, request.headers))
            for request in self.received()
        ]

    def _answer(self, at: float, webhook_id: str | None) -> int:
        if webhook_id in self.refused:
            return 400
        if self.outage_seconds is None:
            return self.status
        if self.outage_began is None:
            self.outage_began = at
        return 500 if at - self.outage_began < self.outage_seconds else self.status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                at = time.monotonic()
                with receiver._lock:
                    status = receiver._answer(at, self.headers.get("webhook-id"))
                    receiver.requests.append(
                        Request(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            at,
                        )
                    )
                    location, delay = receiver.location, receiver.delay
                time.sleep(delay)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def event_types(payloads: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [payload["type"] for _, payload in payloads]
