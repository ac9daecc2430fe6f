"""`OneSendTransport`: a response's head leaves with the body that follows it at once."""

from __future__ import annotations

import asyncio
from typing import Any

from app.api.server import OneSendTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class _Recorded:
    """The socket's side: what was written, in order, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else None


async def _turn() -> None:
    await asyncio.sleep(0)


def test_a_head_and_the_body_written_after_it_leave_in_one_write() -> None:
    async def respond() -> list[bytes]:
        recorded = _Recorded()
        transport = OneSendTransport(recorded, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(HEAD)
        transport.write(b"{}")
        await _turn()
        return recorded.writes

    assert asyncio.run(respond()) == [HEAD + b"{}"]


def test_a_head_whose_body_is_not_ready_leaves_when_the_loop_turns() -> None:
    async def stream() -> list[list[bytes]]:
        recorded = _Recorded()
        transport = OneSendTransport(recorded, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(HEAD)
        seen = [list(recorded.writes)]
        await _turn()
        seen.append(list(recorded.writes))
        transport.write(b"data: 1\n\n")
        seen.append(list(recorded.writes))
        return seen

    assert asyncio.run(stream()) == [[], [HEAD], [HEAD, b"data: 1\n\n"]]


def test_closing_sends_a_held_head_first_and_a_closed_socket_gets_nothing() -> None:
    async def close_at_once() -> tuple[_Recorded, _Recorded]:
        loop = asyncio.get_running_loop()
        closed_by_us, closed_by_peer = _Recorded(), _Recorded()
        ours = OneSendTransport(closed_by_us, loop)  # type: ignore[arg-type]
        ours.write(HEAD)
        ours.close()
        theirs = OneSendTransport(closed_by_peer, loop)  # type: ignore[arg-type]
        theirs.write(HEAD)
        closed_by_peer.closed = True
        await _turn()
        return closed_by_us, closed_by_peer

    closed_by_us, closed_by_peer = asyncio.run(close_at_once())
    assert closed_by_us.writes == [HEAD] and closed_by_us.closed
    assert closed_by_peer.writes == []


def test_what_it_does_not_hold_is_the_socket_s_own() -> None:
    async def ask() -> Any:
        transport = OneSendTransport(_Recorded(), asyncio.get_running_loop())  # type: ignore[arg-type]
        return transport.get_extra_info("peername"), transport.is_closing()

    assert asyncio.run(ask()) == (("127.0.0.1", 1234), False)
