"""Map the gateway's exceptions to HTTP; never leak a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.core.exceptions import GatewayError, TooManyPendingJobs
from app.store.outage import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every error body: a message, or (for request validation) FastAPI's list of errors."""

    detail: str | list[dict[str, Any]] = Field(
        description="A human-readable message; for request validation errors, FastAPI's list"
    )


def error(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error status."""
    return {"model": ErrorBody, "description": description}


NEEDS_KEY: dict[int | str, dict[str, Any]] = {
    401: error("No valid API key (only when API_KEYS is set).")
}


async def _gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, GatewayError):
        return await _unexpected_error(_request, exc)
    headers = (
        {"Retry-After": str(exc.retry_after_seconds)}
        if isinstance(exc, TooManyPendingJobs)
        else None
    )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


DATABASE_RETRY_AFTER_SECONDS = 5


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database is down or locked: nothing was recorded; the client may try again."""
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    logger.warning(
        "database unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        cause[0] if cause else "",
    )
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was recorded, try again"},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


MAX_ERRORS = 20
MAX_ECHO_CHARS = 200


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 list form, bounded: at most `MAX_ERRORS` errors, each echoing at most
    `MAX_ECHO_CHARS` of its input, and no `input` that JSON cannot carry (NaN, surrogates)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [_portable(error) for error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        detail.append({"type": "too_many_errors", "loc": [], "msg": f"{len(errors)} errors in all"})
    return JSONResponse({"detail": detail}, status_code=422)


def _portable(error: Any) -> Any:
    encoded = jsonable_encoder(error)
    try:
        text = json.dumps(encoded.get("input"), allow_nan=False, ensure_ascii=False)
        json.dumps(encoded, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, UnicodeEncodeError):
        encoded.pop("input", None)
        encoded.pop("ctx", None)
        encoded["msg"] = str(encoded.get("msg", "")).encode("utf-8", "replace").decode()
        return encoded
    if len(text) > MAX_ECHO_CHARS:
        encoded["input"] = text[:MAX_ECHO_CHARS] + f"... ({len(text)} characters in all)"
    return encoded


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(GatewayError, _gateway_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
