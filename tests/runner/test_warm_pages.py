"""The warm server's page learning: what a forked child wrote, and copying it ahead."""

from __future__ import annotations

import array
import ctypes
import json
import os
from collections.abc import Callable

from app.runner.scripts.warm_server import PAGE, _prefault, _written_pages

PAGES = 64


def _in_child(work: Callable[[], object]) -> object:
    """Run `work` in a forked child and return what it returned (JSON)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _covered(pages: bytes, address: int) -> bool:
    learned = array.array("Q", pages)
    return any(
        start <= address < start + length
        for start, length in zip(learned[::2], learned[1::2], strict=True)
    )


def _buffer() -> tuple[bytearray, int]:
    """A page-aligned span of memory the parent has written (so it is mapped and shared)."""
    buffer = bytearray(b"x" * ((PAGES + 1) * PAGE))
    base = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    return buffer, base + (-base % PAGE)


def test_a_child_learns_the_pages_it_wrote_and_not_the_others() -> None:
    buffer, aligned = _buffer()
    offset = aligned - ctypes.addressof(ctypes.c_char.from_buffer(buffer))

    def write_three_pages() -> list[bool]:
        for page in (3, 4, 5):
            buffer[offset + page * PAGE] = ord("y")
        pages = _written_pages()
        return [_covered(pages, aligned + page * PAGE) for page in range(PAGES)]

    covered = _in_child(write_three_pages)

    assert isinstance(covered, list)
    assert covered[3:6] == [True, True, True]
    assert not any(covered[10:]), "pages the child only shares were taken for written"


def test_prefaulting_copies_the_learned_pages_and_leaves_their_content() -> None:
    buffer, aligned = _buffer()
    learned = array.array("Q", (aligned + 8 * PAGE, 4 * PAGE)).tobytes()

    def prefault_then_look() -> list[object]:
        _prefault(learned)
        pages = _written_pages()
        copied = [_covered(pages, aligned + page * PAGE) for page in range(PAGES)]
        return [copied, bytes(buffer) == b"x" * len(buffer)]

    answer = _in_child(prefault_then_look)

    assert isinstance(answer, list)
    copied, unchanged = answer
    assert copied[8:12] == [True, True, True, True]
    assert not any(copied[20:])
    assert unchanged is True
