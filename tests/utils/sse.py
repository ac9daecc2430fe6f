"""A minimal Server-Sent Events reader for tests (the wire format, parsed by hand)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass
class Event:
    event: str
    data: str
    id: str | None


def read_events(response: httpx.Response) -> Iterator[Event]:
    """Yield events as they arrive on a streaming response."""
    name, event_id = "message", None
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield Event(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
