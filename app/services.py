"""Per-process construction of the core services from one `Settings`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from app.broker.changes import ChangePublisher
from app.core.config import Settings
from app.store import JobManager
from app.store.database import create_db_engine, upgrade_database


@dataclass(frozen=True)
class Core:
    settings: Settings
    manager: JobManager


_core_by_pid: dict[int, Core] = {}


def build_core(settings: Settings, *, migrate: bool = True) -> Core:
    """An engine and job manager for this process (after a fork, build anew)."""
    engine = create_db_engine(settings.database_url)
    if migrate:
        upgrade_database(engine)
    manager = JobManager(engine, log_max_bytes=settings.log_max_bytes)
    if settings.celery_broker_url:  # waiters in the API hear of each change through Redis
        manager.announce_to(ChangePublisher(settings.celery_broker_url))
    return Core(settings=settings, manager=manager)


def core_for_this_process(settings: Settings) -> Core:
    """The process's core, built once per pid so forked pool children never share a pool."""
    pid = os.getpid()
    if pid not in _core_by_pid:
        _core_by_pid[pid] = build_core(settings, migrate=False)
    return _core_by_pid[pid]
