"""Node functions of the demo pipelines.

Output goes to stdout on purpose: the gateway captures a run's stdout and
stderr, so each node prints or logs what a test needs to check.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)

_LINE_BYTES = 100
_CHUNK_LINES = 1000


def _write(line: str) -> None:
    """Write one line to stdout and flush it at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def add_five(value: int) -> int:
    """Return ``value + 5``."""
    result = value + 5
    logger.info("add_five: value = %s", result)
    return result


def multiply_by_two(value: int) -> int:
    """Return ``value * 2``."""
    result = value * 2
    logger.info("multiply_by_two: value = %s", result)
    return result


def subtract_ten(value: int) -> int:
    """Return ``value - 10``."""
    result = value - 10
    logger.info("subtract_ten: value = %s", result)
    return result


def boom(value: int) -> None:
    """Fail on purpose."""
    raise ValueError(f"intentional failure in node boom (initial_value={value})")


def sleep_with_progress(seconds: float, interval: float) -> None:
    """Sleep ``seconds`` in total, printing a progress line every ``interval``."""
    start = time.monotonic()
    deadline = start + seconds
    while (now := time.monotonic()) < deadline:
        _write(f"slow: {now - start:.1f}/{seconds:g} s")
        time.sleep(min(interval, deadline - now))
    _write(f"slow done after {time.monotonic() - start:.1f} s")


def echo_parameters(parameters: dict[str, Any]) -> None:
    """Print every top-level parameter with its Python type on one line."""
    typed = {
        name: {"type": type(value).__name__, "value": value} for name, value in parameters.items()
    }
    _write("ECHO " + json.dumps(typed, ensure_ascii=False, default=repr))


def print_megabytes(mb: float) -> None:
    """Print ``mb`` MiB of numbered 100-byte lines, then ``chatty done``."""
    total_lines = int(mb * 1024 * 1024) // _LINE_BYTES
    filler = "x" * (_LINE_BYTES - len("chatty 000000000 ") - 1)
    for first in range(0, total_lines, _CHUNK_LINES):
        last = min(first + _CHUNK_LINES, total_lines)
        sys.stdout.write("".join(f"chatty {n:09d} {filler}\n" for n in range(first, last)))
    _write("chatty done")


def spawn_children(seconds: float) -> None:
    """Start two sleeping child processes, print their pids and wait for them."""
    code = "import sys, time; time.sleep(float(sys.argv[1]))"
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(seconds)])  # noqa: S603
        for _ in range(2)
    ]
    _write("children pids: " + " ".join(str(child.pid) for child in children))
    for child in children:
        child.wait()
    _write("children done")


def print_environment(_value: int) -> None:
    """Print the process environment as one JSON line (to check what reaches a run).

    Kedro needs every node to have an input; this one ignores it.
    """
    _write("ENVIRON " + json.dumps(dict(sorted(os.environ.items())), ensure_ascii=False))


def resume_start(value: int) -> list[int]:
    """Start a list of numbers at ``value``."""
    return [value]


def resume_extend(values: list[int]) -> list[int]:
    """Append the next number."""
    return [*values, values[-1] + 1]


def resume_extend_or_fail(values: list[int], fail: bool) -> list[int]:
    """Fail on purpose while ``fail`` is true; else append the next number."""
    if fail:
        raise RuntimeError("intentional failure: resume.fail is true")
    return resume_extend(values)


def resume_report(values: list[int]) -> None:
    """Print the numbers on one line."""
    _write("RESUME RESULT " + json.dumps(values))
