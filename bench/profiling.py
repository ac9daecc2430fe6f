"""Optional py-spy sampling of a stack process while a benchmark runs (`--profile DIR`)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.core.config import REPO_ROOT


def py_spy_binary() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampled(
    pid: int, directory: Path | None, name: str, *, subprocesses: bool = False, gil: bool = False
) -> Iterator[dict[str, Any]]:
    """Record `pid` with py-spy (collapsed stacks) while the block runs.

    Yields a dict that, after the block, holds the profile's path and its top
    frames per process; without a directory (or without py-spy) it does nothing.
    """
    found: dict[str, Any] = {}
    binary = py_spy_binary()
    if directory is None or binary is None:
        yield found
        return
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / f"{name}.txt"
    argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--output", str(output)]
    argv += ["--rate", "200", "--nonblocking"]
    if subprocesses:
        argv.append("--subprocesses")
    if gil:  # only the thread holding the GIL: what bounds one Python process's throughput
        argv.append("--gil")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield found
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    if output.exists():
        found.update(path=str(output), processes=top_frames(output))
    else:
        found.update(error=stderr.decode(errors="replace")[-500:])


def top_frames(path: Path, count: int = 12) -> dict[str, Any]:
    """Per sampled process, in % of its samples: where the top of the stack was
    (self) by package and by frame, and the gateway's own frames (`app/`) most
    often anywhere on it (inclusive)."""
    by_process: dict[str, tuple[Counter[str], Counter[str], Counter[str]]] = {}
    totals: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        frames = stack.split(";")
        processes = [i for i, frame in enumerate(frames) if frame.startswith("process ")]
        name = _process_name(frames[processes[-1]]) if processes else "sampled process"
        frames = frames[processes[-1] + 1 :] if processes else frames
        if not frames:
            continue
        own, ours, packages = by_process.setdefault(name, (Counter(), Counter(), Counter()))
        samples = int(weight)
        totals[name] += samples
        own[_short(frames[-1])] += samples
        packages[_package(frames[-1])] += samples
        for frame in {_short(frame) for frame in frames if " (app/" in _short(frame)}:
            ours[frame] += samples
    return {
        name: {
            "samples": total,
            "self_by_package_pct": _shares(by_process[name][2], total, count),
            "self_pct": _shares(by_process[name][0], total, count),
            "app_inclusive_pct": _shares(by_process[name][1], total, count),
        }
        for name, total in totals.most_common()
    }


# Where a frame's path stops being machine-specific: installed packages, the repository,
# the standard library of whichever interpreter ran.
_PATH_MARKERS = (
    "site-packages/",
    f"{REPO_ROOT}/",
    f"lib/python{sys.version_info.major}.{sys.version_info.minor}/",
)


def _package(frame: str) -> str:
    """The top-level package (or stdlib module) of a frame's file, as py-spy names it."""
    where = frame.partition(" (")[2].rstrip(")")
    for marker in _PATH_MARKERS:
        where = where.split(marker, 1)[-1]
    if where.startswith("<"):
        return "sqlalchemy" if "sqlalchemy" in where else where.split(">", 1)[0] + ">"
    top = where.split("/", 1)[0] if "/" in where else where.split(":", 1)[0]
    return "app (the gateway)" if top == "app" else top.removesuffix(".py")


def _shares(counter: Counter[str], total: int, count: int) -> dict[str, float]:
    return {frame: round(100 * n / total, 1) for frame, n in counter.most_common(count)}


def _process_name(frame: str) -> str:
    command = frame.split(":", 1)[-1].strip('"')
    for marker, name in (
        ("guard.py", "process guard"),
        ("kedro run", "kedro run"),
        ("celery", "celery worker"),
        ("uvicorn", "uvicorn API"),
    ):
        if marker in command:
            return f"{name} (pid {frame.split()[1].split(':')[0]})"
    return command[:80]


def _short(frame: str) -> str:
    """`func (path/to/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py:12)`."""
    function, _, where = frame.partition(" (")
    for marker in _PATH_MARKERS:
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{function} ({where}" if where else function
