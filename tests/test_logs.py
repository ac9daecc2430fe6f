"""The API's log handler: lines in batches, warnings at once, nothing lost or reordered."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import weakref
from collections.abc import Iterator

import pytest

from app.core.logs import BatchingStreamHandler
from tests.utils.stack import wait_until


class _Stream(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


Logged = tuple[logging.Logger, BatchingStreamHandler, _Stream]


@contextlib.contextmanager
def _batching_logger(delay: float) -> Iterator[Logged]:
    """A logger of its own whose one handler batches into a `_Stream`."""
    stream = _Stream()
    handler = BatchingStreamHandler(delay=delay)
    handler.setStream(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-batching-{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield logger, handler, stream
    finally:
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture
def logged() -> Iterator[Logged]:
    with _batching_logger(delay=0.05) as found:
        yield found


def test_lines_logged_together_are_written_in_one_write_and_in_order(
    logged: Logged,
) -> None:
    logger, _, stream = logged
    for index in range(100):
        logger.info("line %d", index)
    expected = "".join(f"INFO line {index}\n" for index in range(100))
    wait_until(lambda: stream.getvalue() == expected, timeout=10, what="the batch")
    assert stream.writes < 10


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    logged: Logged,
) -> None:
    logger, _, stream = logged
    logger.info("before")
    logger.warning("trouble")
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"


def test_flush_and_close_write_what_is_pending(
    logged: Logged,
) -> None:
    logger, handler, stream = logged
    logger.info("pending")
    handler.flush()
    assert stream.getvalue() == "INFO pending\n"
    logger.info("at the end")
    logging.shutdown([weakref.ref(handler)])  # as at exit: flush, then close
    assert stream.getvalue() == "INFO pending\nINFO at the end\n"


def test_a_handler_replaced_writes_its_pending_lines_as_it_closes(
    logged: Logged,
) -> None:
    logger, handler, stream = logged
    logger.info("last words")
    handler.close()
    assert stream.getvalue() == "INFO last words\n"


def test_lines_from_many_threads_are_each_written_once() -> None:
    """Four threads log while the writer writes without a pause; every tenth line is a
    warning, written at once by the thread that logs it. Neither may wait on the other
    for good, and no line is lost, doubled or reordered."""
    count = 3000
    with _batching_logger(delay=0) as (logger, handler, stream):

        def log_many(name: str) -> None:
            for index in range(count):
                (logger.warning if index % 10 == 0 else logger.info)("%s %d", name, index)

        threads = [threading.Thread(target=log_many, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive(), "a logging thread is stuck"
        handler.flush()
    messages = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert len(messages) == len(set(messages)) == 4 * count
    for n in range(4):
        mine = [message for message in messages if message.startswith(f"t{n} ")]
        assert mine == [f"t{n} {index}" for index in range(count)]
