"""Reading Kedro's own log lines: progress, node timing, the tail and the failure message.

The lines read here are the same on Kedro 0.19 and 1.x. `Running node: <text>`
prints `str(node)`: `<name>: <func>(<inputs>) -> <outputs>` with the name
short (no namespace) and only if one was given, while `Completed node: <name>`
prints the full name. The text is mapped to the name with the project's own
nodes (from the inspector); lacking them, the short name is a fair guess and a
completion closes the pending entry it names, or is a namespace of.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.store import RunProgress

TAIL_LINES = 30
MAX_LINE_CHARS = 1000

_RUNNING_NODE = re.compile(r"Running node: (.+?)\s*$")
_COMPLETED_NODE = re.compile(r"Completed node: (.+?)\s*$")
_COMPLETED_TASKS = re.compile(r"Completed (\d+) out of (\d+) tasks")
_FAILED_NODE = re.compile(r"Node (.+?) failed with error:")
_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception)\b")
# The gateway's logging config starts each record with `%(asctime)s`, the local time.
_ASCTIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
# A line can matter to the parser only if it holds one of these.
_MARKERS = (b"Running node: ", b"Completed ", b"Error", b"Exception", b"failed with error")


def _logged_at(line: str) -> datetime:
    """When Kedro logged the line (its asctime, the worker's local time), else now."""
    if match := _ASCTIME.match(line):
        try:
            local = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
        else:
            local = local.replace(microsecond=int(match.group(2)) * 1000)
            return local.astimezone(UTC)
    return datetime.now(UTC)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


class OutputParser:
    """Follows Kedro's log lines for progress, node timing and the failure message."""

    def __init__(self, node_names: Mapping[str, str] | None = None) -> None:
        self._node_names = dict(node_names or {})
        self.progress = RunProgress()
        self.node_seconds: dict[str, float] = {}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.exception_line: str | None = None
        # Per node: `started_at` and `ended_at` (ISO, UTC, as Kedro logged them), and
        # for a failed node `failed_at` and `error` (its `Node ... failed with error` line).
        self.node_times: dict[str, dict[str, str]] = {}
        self._started: dict[str, float] = {}
        self._partial = b""

    def feed(self, data: bytes) -> bool:
        """Parse complete lines; returns True when progress changed.

        Only lines holding one of Kedro's markers are decoded and matched, and only the
        last lines are kept for the tail: a pipeline printing megabytes costs a few
        byte scans per batch, not a decode and three regexes per line.
        """
        complete, newline, partial = (self._partial + data).rpartition(b"\n")
        self._partial = partial[-4 * MAX_LINE_CHARS :]
        if not newline:
            return False
        changed = False
        if any(marker in complete for marker in _MARKERS):
            for raw in complete.split(b"\n"):
                if any(marker in raw for marker in _MARKERS):
                    changed |= self._parse_line(_decode(raw))
        for raw in complete.rsplit(b"\n", TAIL_LINES)[-TAIL_LINES:]:
            self._keep_in_tail(_decode(raw))
        return changed

    def finish(self) -> None:
        if self._partial:
            line = _decode(self._partial)
            self._parse_line(line)
            self._keep_in_tail(line)
            self._partial = b""

    def _keep_in_tail(self, line: str) -> None:
        if line.strip():
            self.tail.append(line[:MAX_LINE_CHARS])

    def _parse_line(self, line: str) -> bool:
        if _EXCEPTION_LINE.match(line):
            self.exception_line = line.strip()[:MAX_LINE_CHARS]
        if match := _RUNNING_NODE.search(line):
            name = self._running_name(match.group(1))
            self._started[name] = time.monotonic()
            self.node_times[name] = {"started_at": _logged_at(line).isoformat()}
            self.progress.running_nodes = list(self._started)
            return True
        if match := _COMPLETED_NODE.search(line):
            name = match.group(1)
            self.progress.completed_nodes.append(name)
            started = self._pending_entry(name)
            if started is not None:
                self.node_seconds[name] = round(time.monotonic() - self._started.pop(started), 3)
                times = self.node_times.pop(started, {})
                self.node_times[name] = {**times, "ended_at": _logged_at(line).isoformat()}
            self.progress.running_nodes = list(self._started)
            return True
        if match := _FAILED_NODE.search(line):
            name = self._running_name(match.group(1))
            times = self.node_times.setdefault(name, {})
            times["failed_at"] = _logged_at(line).isoformat()
            times["error"] = line[line.index("Node ") :].strip()[:MAX_LINE_CHARS]
            return False
        if match := _COMPLETED_TASKS.search(line):
            self.progress.total_nodes = int(match.group(2))
            return True
        return False

    def _running_name(self, text: str) -> str:
        """The node's name for the text Kedro logged on starting it."""
        if text in self._node_names:
            return self._node_names[text]
        short, separator, _ = text.partition(": ")
        return short if separator and "(" not in short else text

    def _pending_entry(self, name: str) -> str | None:
        """The running entry `Completed node: <name>` closes: by name, else by short name."""
        if name in self._started:
            return name
        return next((key for key in self._started if name.endswith(f".{key}")), None)

    def timings(self) -> dict[str, dict[str, Any]]:
        """`node_times` for the results, a failed node's error with its exception line."""
        timings: dict[str, dict[str, Any]] = {name: dict(t) for name, t in self.node_times.items()}
        for times in timings.values():
            if "failed_at" in times and self.exception_line:
                times["exception"] = self.exception_line
        return timings

    def plan(self, nodes: list[str] | None) -> None:
        """The nodes the run will execute, when known before Kedro counts them."""
        if nodes and self.progress.total_nodes is None:
            self.progress.total_nodes = len(nodes)

    def last_line(self) -> str | None:
        return self.tail[-1].strip() if self.tail else None
