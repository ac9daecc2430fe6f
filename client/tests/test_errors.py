"""Error mapping: each status to its exception, with the server's message.

`httpx.MockTransport` serves the error bodies here (and only here): their shapes are
those of `app/api/errors.py` (`{"detail": str}`, FastAPI's 422 list, the body-size
middleware's 413), plus answers that are not JSON at all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from kedro_gateway_client import (
    AsyncGatewayClient,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayClient,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
    ValidationFailed,
)
from kedro_gateway_client._calls import auth_headers

VALIDATION_LIST = [
    {
        "type": "string_pattern_mismatch",
        "loc": ["body", "pipeline_name"],
        "msg": "String should match pattern '^[A-Za-z0-9_.\\-]+$'",
        "input": "a b",
    },
    {"type": "missing", "loc": ["body", "parameters", "x"], "msg": "Field required"},
]


def answering(status: int, body: Any, *, raw: bool = False) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if raw:
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, {"detail": "the body is not UTF-8 text"}, BadRequest, "the body is not UTF-8 text"),
        (401, {"detail": "invalid API key"}, Unauthorized, "invalid API key"),
        (403, {"detail": "this needs an admin key (ADMIN_USERS)"}, Forbidden, "admin key"),
        (404, {"detail": "job 'x' not found"}, NotFound, "job 'x' not found"),
        (409, {"detail": "job is already completed"}, Conflict, "already completed"),
        (
            413,
            {"detail": "request body is larger than 1048576 bytes"},
            PayloadTooLarge,
            "larger than",
        ),
        (
            422,
            {"detail": "unknown pipeline 'x'; known: arithmetic, fail"},
            ValidationFailed,
            "known: arithmetic",
        ),
        (500, {"detail": "internal server error"}, ServerError, "internal server error"),
        (503, {"detail": "the broker is unavailable"}, ServerUnavailable, "broker"),
        (502, {"detail": "bad gateway"}, ServerUnavailable, "bad gateway"),
        (418, {"detail": "teapot"}, GatewayError, "teapot"),
    ],
)
def test_status_maps_to_its_exception_with_the_servers_message(
    status: int, body: dict[str, Any], error: type[GatewayError], message: str
) -> None:
    with (
        GatewayClient("http://gw", transport=answering(status, body)) as client,
        pytest.raises(error) as raised,
    ):
        client.get("x")
    assert type(raised.value) is error
    assert raised.value.status_code == status
    assert message in raised.value.message
    assert raised.value.detail == body["detail"]
    assert str(raised.value).startswith(f"{status}: ")


def test_fastapi_validation_list_is_kept_and_readable() -> None:
    transport = answering(422, {"detail": VALIDATION_LIST})
    with (
        GatewayClient("http://gw", transport=transport) as client,
        pytest.raises(ValidationFailed) as raised,
    ):
        client.submit("arithmetic")
    assert raised.value.errors == VALIDATION_LIST
    assert raised.value.message == (
        "body.pipeline_name: String should match pattern '^[A-Za-z0-9_.\\-]+$'; "
        "body.parameters.x: Field required"
    )


@pytest.mark.parametrize(
    ("status", "content", "error", "message"),
    [
        (502, b"<html>Bad Gateway</html>", ServerUnavailable, "<html>Bad Gateway</html>"),
        (500, b"", ServerError, "Internal Server Error"),
        (404, b'{"error": "nope"}', NotFound, '{"error": "nope"}'),
    ],
)
def test_bodies_without_detail_still_give_a_message(
    status: int, content: bytes, error: type[GatewayError], message: str
) -> None:
    with (
        GatewayClient("http://gw", transport=answering(status, content, raw=True)) as client,
        pytest.raises(error) as raised,
    ):
        client.workers()
    assert message in raised.value.message


def test_async_client_maps_errors_the_same_way() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"detail": "job is already cancelled"})

    async def scenario() -> None:
        async with AsyncGatewayClient("http://gw", transport=httpx.MockTransport(handler)) as gw:
            with pytest.raises(Conflict, match="already cancelled"):
                await gw.cancel("x")

    asyncio.run(scenario())


def test_degraded_health_is_an_answer_not_an_error() -> None:
    report = {
        "status": "degraded",
        "checks": {"database": {"ok": True}, "workers": {"ok": False, "detail": "no worker"}},
    }
    with GatewayClient("http://gw", transport=answering(503, report)) as client:
        health = client.health()
    assert not health.ok and not health.checks["workers"].ok
    assert health.checks["workers"].model_extra == {"detail": "no worker"}


def test_a_success_that_is_not_the_model_is_a_gateway_error() -> None:
    with (
        GatewayClient("http://gw", transport=answering(200, {"unexpected": 1})) as client,
        pytest.raises(GatewayError, match="unexpected answer"),
    ):
        client.get("x")


def test_api_key_goes_as_bearer_or_x_api_key() -> None:
    assert auth_headers("k", "bearer") == {"Authorization": "Bearer k"}
    assert auth_headers("k", "x-api-key") == {"X-API-Key": "k"}
    assert auth_headers(None, "bearer") == {}
    body = json.dumps({"detail": "an API key is required"})
    assert "required" in body
