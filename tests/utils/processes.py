"""Run a function in several real processes released at the same instant."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import Any


def run_at_once(
    target: Callable[..., None],
    count: int,
    *args: Any,
    start_method: str = "spawn",
    timeout: float = 120,
) -> list[Any]:
    """Run `target(index, barrier, results, *args)` in `count` processes; their reports, sorted.

    Each process waits on the barrier before racing and puts one report on `results`.
    """
    context: Any = multiprocessing.get_context(start_method)
    barrier = context.Barrier(count)
    results: Queue[Any] = context.Queue()
    processes = [
        context.Process(target=target, args=(index, barrier, results, *args))
        for index in range(count)
    ]
    for process in processes:
        process.start()
    try:
        reports = sorted(results.get(timeout=timeout) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
    assert [process.exitcode for process in processes] == [0] * count
    return reports
