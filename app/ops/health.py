"""Readiness: can the gateway run jobs right now? Answers within 2 s whatever hangs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.broker.publisher import Broker
from app.core.config import DEFAULT_QUEUE, Settings
from app.schemas.workers import Worker
from app.store import JobManager

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 1.5
# Checks run on threads of their own, so a hung database or Redis cannot starve
# the request thread pool; a hung check is abandoned after the timeout.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


async def _run(check: Callable[[], Any]) -> tuple[bool, Any]:
    loop = asyncio.get_running_loop()
    try:
        value = await asyncio.wait_for(
            loop.run_in_executor(_executor, check), CHECK_TIMEOUT_SECONDS
        )
    except TimeoutError:
        return False, f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        # /health is open even with API keys on: name the failure, keep paths and hosts
        # (which exception messages carry) in the server's log.
        logger.warning(
            "health check %s failed: %s: %s",
            getattr(check, "__name__", check),
            type(exc).__name__,
            exc,
        )
        return False, f"{type(exc).__name__} (details in the server log)"
    return True, value


async def check_health(
    manager: JobManager, broker: Broker, settings: Settings, *, details: bool = True
) -> dict[str, Any]:
    """The contract's readiness body; `status` is `ok` only if every check is.

    Without `details`, each check says only `ok` (and whether it failed): no worker,
    host, queue or project names, paths or versions."""
    (db_ok, db_error), (broker_ok, broker_error), (listed, workers) = await asyncio.gather(
        _run(manager.ping),
        _run(broker.ping),
        _run(lambda: manager.list_workers(lost_after=settings.worker_lost_after)),
    )
    checks = {
        "database": {"ok": db_ok} | ({} if db_ok else {"error": db_error}),
        "broker": {"ok": broker_ok} | ({} if broker_ok else {"error": broker_error}),
    }
    if listed:
        checks["workers"] = _workers_check(workers)
        checks["kedro_project"] = _project_check(workers)
    else:
        unknown = {"ok": False, "error": f"cannot list workers: {workers}"}
        checks["workers"] = checks["kedro_project"] = unknown
    status = "ok" if all(check["ok"] for check in checks.values()) else "degraded"
    if not details:
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return {"status": status, "checks": checks}


def _workers_check(workers: list[Worker]) -> dict[str, Any]:
    """At least one live worker for every queue any worker has served."""
    queues = {DEFAULT_QUEUE} | {queue for worker in workers for queue in worker.queues}
    live = {
        queue: sorted(w.name for w in workers if w.alive and queue in w.queues)
        for queue in sorted(queues)
    }
    missing = [queue for queue, names in live.items() if not names]
    check: dict[str, Any] = {"ok": not missing, "live": live}
    if missing:
        check["error"] = f"no live worker for queue(s): {', '.join(missing)}"
    return check


def _project_check(workers: list[Worker]) -> dict[str, Any]:
    """Every live worker can see its Kedro project and import Kedro."""
    live = [worker for worker in workers if worker.alive]
    projects = {
        w.name: {
            "path": w.project_path,
            "kedro_version": w.kedro_version,
            "ok": w.project_ok,
            "runner": w.runner_mode,
        }
        | ({"error": w.project_error} if w.project_error else {})
        | ({"warm_error": f"running cold: {w.warm_error}"} if w.warm_error else {})
        for w in live
    }
    failing = [name for name, project in projects.items() if not project["ok"]]
    check: dict[str, Any] = {"ok": bool(live) and not failing, "workers": projects}
    if not live:
        check["error"] = "no live worker to report on its Kedro project"
    elif failing:
        check["error"] = f"Kedro project unusable on: {', '.join(failing)}"
    return check
