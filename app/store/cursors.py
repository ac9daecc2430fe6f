"""Opaque keyset cursors for listing jobs newest first."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

from app.core.exceptions import InvalidCursor
from app.schemas.jobs import Job


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises `InvalidCursor` for anything that is not a cursor this API handed out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(job_id, str):
            raise TypeError("cursor fields are not strings")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise TypeError("cursor time has no offset")
        return moment.astimezone(UTC), str(uuid.UUID(job_id))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursor("invalid cursor") from exc
