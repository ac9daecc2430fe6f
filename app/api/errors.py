"""Map the gateway's exceptions to HTTP; never leak a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.core.exceptions import GatewayError

logger = logging.getLogger(__name__)


async def _gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, GatewayError):
        return await _unexpected_error(_request, exc)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(Exception, _unexpected_error)
