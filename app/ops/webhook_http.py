"""Where a webhook may go, how it is signed, and one POST to it.

Signing follows the Standard Webhooks specification: the secret is `whsec_`
and base64 key bytes; `webhook-signature` is `v1,` and the base64 HMAC-SHA256 of
`<webhook-id>.<webhook-timestamp>.<body>`.

A URL is refused unless it is https (or http with `WEBHOOK_ALLOW_HTTP`) and every
address its host resolves to is public, or the host is named in
`WEBHOOK_ALLOWED_HOSTS`. The check runs at registration and again before every
attempt, and the request goes to the address that was checked (no second lookup
a rebinding DNS server could answer differently). Redirects are not followed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.core.config import Settings
from app.core.exceptions import InvalidWebhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
USER_AGENT = "kedro-job-gateway-webhooks/1.0"
MAX_RESPONSE_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]


# --- signing ---------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret; ValueError (never naming it) if malformed."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith(SECRET_PREFIX) or len(key) < 16:
        raise ValueError("a webhook secret is 'whsec_' and at least 16 bytes in base64")
    return key


def signed_headers(secret: str, message_id: str, body: str, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def notify_secret(settings: Settings) -> str:
    """`WEBHOOK_SECRET`, checked; InvalidWebhook if it is unset or malformed."""
    if settings.webhook_secret is None:
        raise InvalidWebhook("notify needs the gateway's WEBHOOK_SECRET, which is not set")
    secret = settings.webhook_secret.get_secret_value()
    try:
        signing_key(secret)
    except ValueError:
        raise InvalidWebhook("WEBHOOK_SECRET is not a valid 'whsec_' secret") from None
    return secret


# --- where a webhook may go ------------------------------------------------------------


@dataclass(frozen=True)
class UrlPolicy:
    """Schemes and hosts the gateway may call."""

    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    resolve: Resolver = socket.getaddrinfo

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls(
            allow_http=settings.webhook_allow_http,
            allowed_hosts=frozenset(host.lower() for host in settings.webhook_allowed_hosts),
        )

    def addresses(self, url: str) -> list[IPAddress]:
        """The addresses to call for `url`, all checked; InvalidWebhook says why not."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and self.allow_http):
            allowed = "https" if not self.allow_http else "http or https"
            raise InvalidWebhook(f"webhook URLs must use {allowed}")
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = self.resolve(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise InvalidWebhook(f"the webhook host {host!r} does not resolve") from None
        found = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
        if not found:
            raise InvalidWebhook(f"the webhook host {host!r} does not resolve")
        if host not in self.allowed_hosts:
            for address in found:
                kind = _non_public(address)
                if kind:
                    raise InvalidWebhook(
                        f"the webhook host {host!r} resolves to a non-public address ({kind}); "
                        "name it in WEBHOOK_ALLOWED_HOSTS to allow it"
                    )
        return found


_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def _non_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return "cloud metadata"
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    return None if address.is_global else "not globally routable"


# --- one POST --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the status code if the receiver answered, else an error."""

    status_code: int | None
    error: str | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to one checked address, with the URL's host in the `Host` header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to one checked address; the certificate is checked against the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(
    url: str, addresses: Sequence[IPAddress], body: str, headers: dict[str, str], timeout: float
) -> Answer:
    """POST `body` to the first checked address that accepts a connection; never redirects."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    started = time.monotonic()
    error = "no address to connect to"
    for address in addresses:
        kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        connection = kind(host, port, str(address), timeout)
        try:
            connection.request("POST", target, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            error = _describe(exc)
            if isinstance(exc, ConnectionRefusedError):
                continue  # the next address may listen
            break
        finally:
            connection.close()
        latency = (time.monotonic() - started) * 1000
        if 300 <= status < 400:
            return Answer(status, f"redirect (HTTP {status}) not followed", latency)
        return Answer(status, None if 200 <= status < 300 else f"HTTP {status}", latency)
    return Answer(None, error, (time.monotonic() - started) * 1000)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc.__class__.__name__}"
    return f"{exc.__class__.__name__}: {exc}"[:300]
