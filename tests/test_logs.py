"""The API's log handler: lines in batches, warnings at once, nothing lost or reordered."""

from __future__ import annotations

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


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, BatchingStreamHandler, _Stream]]:
    stream = _Stream()
    handler = BatchingStreamHandler(delay=0.05)
    handler.setStream(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-batching-{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, handler, stream
    logger.removeHandler(handler)
    handler.close()


def test_lines_logged_together_are_written_in_one_write_and_in_order(
    logged: tuple[logging.Logger, BatchingStreamHandler, _Stream],
) -> None:
    logger, _, stream = logged
    for index in range(100):
        logger.info("line %d", index)
    expected = "".join(f"INFO line {index}\n" for index in range(100))
    wait_until(lambda: stream.getvalue() == expected, timeout=10, what="the batch")
    assert stream.writes < 10


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    logged: tuple[logging.Logger, BatchingStreamHandler, _Stream],
) -> None:
    logger, _, stream = logged
    logger.info("before")
    logger.warning("trouble")
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"


def test_flush_and_close_write_what_is_pending(
    logged: tuple[logging.Logger, BatchingStreamHandler, _Stream],
) -> None:
    logger, handler, stream = logged
    logger.info("pending")
    handler.flush()
    assert stream.getvalue() == "INFO pending\n"
    logger.info("at the end")
    logging.shutdown([weakref.ref(handler)])  # as at exit: flush, then close
    assert stream.getvalue() == "INFO pending\nINFO at the end\n"


def test_a_handler_replaced_writes_its_pending_lines_as_it_closes(
    logged: tuple[logging.Logger, BatchingStreamHandler, _Stream],
) -> None:
    logger, handler, stream = logged
    logger.info("last words")
    handler.close()
    assert stream.getvalue() == "INFO last words\n"


def test_lines_from_many_threads_are_each_written_once(
    logged: tuple[logging.Logger, BatchingStreamHandler, _Stream],
) -> None:
    logger, _, stream = logged

    def log_many(name: str) -> None:
        for index in range(500):
            logger.info("%s %d", name, index)

    threads = [threading.Thread(target=log_many, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: stream.getvalue().count("\n") == 2000, timeout=10, what="every line")
    lines = stream.getvalue().splitlines()
    assert len(set(lines)) == 2000
    for n in range(4):
        mine = [line for line in lines if line.startswith(f"INFO t{n} ")]
        assert mine == [f"INFO t{n} {index}" for index in range(500)]
