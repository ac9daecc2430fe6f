"""Typed exceptions: one per kind of failure, each with the server's message."""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "ServerUnavailable",
    "Unauthorized",
    "UnsupportedByServer",
    "ValidationFailed",
    "WaitTimeout",
    "error_from_response",
]


class GatewayError(Exception):
    """Base of every error this client raises.

    `status_code` is the HTTP status (None when no response arrived), `detail` the
    server's `detail` field as sent (a string, or FastAPI's list of validation
    errors), `message` a readable one-line form of it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: Any = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail if detail is not None else message
        self.response = response

    def __str__(self) -> str:
        if self.status_code is None:
            return self.message
        return f"{self.status_code}: {self.message}"


class BadRequest(GatewayError):
    """400: a request the server could not read."""


class Unauthorized(GatewayError):
    """401: no API key, or an invalid one."""


class Forbidden(GatewayError):
    """403: the key lacks the right (e.g. an admin-only endpoint)."""


class NotFound(GatewayError):
    """404: unknown job or pipeline, or a job that is not the caller's."""


class Conflict(GatewayError):
    """409: the job is already terminal, or an Idempotency-Key was reused with another body."""


class PayloadTooLarge(GatewayError):
    """413: the body is over the server's limit (1 MiB)."""


class ValidationFailed(GatewayError):
    """422: invalid request, unknown pipeline or queue, or parameters that cannot pass."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """FastAPI's list of validation errors (empty when the server sent a message)."""
        return list(self.detail) if isinstance(self.detail, list) else []


class ServerError(GatewayError):
    """500 and other 5xx answers."""


class ServerUnavailable(ServerError):
    """502, 503, 504: the gateway or its broker is not available now."""


class ConnectionFailed(GatewayError):
    """No answer: the gateway could not be reached, or the request timed out."""


class UnsupportedByServer(GatewayError):
    """The server does not offer what was asked, and the client cannot work around it."""


class WaitTimeout(GatewayError):
    """A wait's deadline passed before the job ended; `job` is its last state seen."""

    def __init__(self, message: str, *, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    502: ServerUnavailable,
    503: ServerUnavailable,
    504: ServerUnavailable,
}


def _describe(detail: Any) -> str:
    """The `detail` field as one readable line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()))
                msg = str(item.get("msg", item))
                parts.append(f"{where}: {msg}" if where else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return json.dumps(detail, default=str)


def error_from_response(response: httpx.Response) -> GatewayError:
    """The typed exception for an error response, with the server's message."""
    status = response.status_code
    detail: Any = None
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
    elif body is not None:
        detail = body
    if detail is None:
        text = response.text.strip() if response.text else ""
        detail = text[:500] or (response.reason_phrase or f"HTTP {status}")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else GatewayError)
    return cls(_describe(detail), status_code=status, detail=detail, response=response)
