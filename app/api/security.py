"""API keys: who is calling, and whose jobs they may see.

Keys come from `API_KEYS` as `user:key` or `user:sha256:<hex digest>` pairs.
Only digests are kept in memory; a presented key is hashed and compared with
every stored digest in constant time, so neither timing nor logs reveal keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from app.store import EVERYONE, Visibility

_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_USER = re.compile(r"^[A-Za-z0-9_.@\-]{1,200}$")


class InvalidKeyConfig(ValueError):
    """`API_KEYS` is malformed (the message never contains a key)."""


@dataclass(frozen=True)
class KeyRing:
    """User names by the SHA-256 digest of their keys, and who is an admin."""

    digests: tuple[tuple[bytes, str], ...]
    admins: frozenset[str]

    @classmethod
    def parse(cls, api_keys: str | None, admin_users: list[str]) -> KeyRing:
        entries = []
        for position, pair in enumerate(filter(None, (api_keys or "").split(",")), start=1):
            user, sep, key = pair.strip().partition(":")
            if not sep or not key or not _USER.fullmatch(user):
                raise InvalidKeyConfig(f"API_KEYS entry {position} is not 'user:key'")
            match = _DIGEST.fullmatch(key)
            digest = bytes.fromhex(match.group(1)) if match else _sha256(key)
            entries.append((digest, user))
        return cls(digests=tuple(entries), admins=frozenset(admin_users))

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def identify(self, presented: str) -> Visibility | None:
        """The caller's visibility for a presented key, or None if no key matches."""
        digest = _sha256(presented)
        user = None
        for stored, name in self.digests:  # no early exit: timing does not tell which
            if hmac.compare_digest(stored, digest):
                user = name
        if user is None:
            return None
        return Visibility(user_id=user, sees_all=user in self.admins)

    def open_access(self) -> Visibility:
        """Without keys the API is open and everyone sees every job."""
        return EVERYONE


def _sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
