"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp dir, trust auth.

`initdb`, `pg_ctl` and `postgres` refuse to run as root, so when the tests run as
root the server runs as the `postgres` user in a temp dir chowned to it. It
listens on a unix socket in that dir and on one TCP address and port, trusts
every local connection (and the networks a test names), and is stopped at the
end with nothing left running. Each stack gets a database of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql

from tests.utils.stack import free_port, wait_until

PREFERRED_VERSION = "15"
SUPERUSER = "postgres"
_PR_SET_PDEATHSIG = 1


def postgres_bin_dir() -> Path | None:
    """Debian's PostgreSQL binaries (version 15 if there, else the newest installed)."""
    preferred = Path(f"/usr/lib/postgresql/{PREFERRED_VERSION}/bin")
    if (preferred / "initdb").exists():
        return preferred
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _die_with_parent() -> None:
    """In the child before exec: SIGQUIT (immediate shutdown) if the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


@dataclass
class PostgresServer:
    """One postmaster in a temp dir of its own; `start()`, `create_database()`, `stop()`."""

    host: str = "127.0.0.1"
    port: int = 0
    trusted_networks: Sequence[str] = ()
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _argv: list[str] = field(default_factory=list, repr=False)
    _names: Iterator[int] = field(default_factory=itertools.count, repr=False)

    @property
    def data_dir(self) -> Path:
        assert self.directory is not None, "the server is not started"
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.directory is not None, "the server is not started"
        return self.directory

    @property
    def log_path(self) -> Path:
        assert self.directory is not None, "the server is not started"
        return self.directory / "postgres.log"

    def log(self) -> str:
        if self.directory is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL for the app (TCP, psycopg 3)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def _run_as_owner(self) -> dict[str, Any]:
        """Popen arguments that drop root to the `postgres` user (nothing when not root)."""
        if os.geteuid() != 0:
            return {}
        return {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        home = pwd.getpwnam(SUPERUSER).pw_dir if os.geteuid() == 0 else os.environ.get("HOME", "/")
        return {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C", "LC_ALL": "C", "TZ": "UTC"}

    def start(self) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        # Not under pytest's tmp dir: that is mode 0700 for root, and postgres must get in.
        self.directory = Path(tempfile.mkdtemp(prefix="kjg-pg-"))
        try:
            self._start(bin_dir)
        except BaseException:
            self.stop()
            raise

    def _start(self, bin_dir: Path) -> None:
        assert self.directory is not None
        if os.geteuid() == 0:
            os.chown(self.directory, pwd.getpwnam(SUPERUSER).pw_uid, grp.getgrnam(SUPERUSER).gr_gid)
        self.port = self.port or free_port()
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=self.directory,
            env=self._env(),
            capture_output=True,
            check=False,
            **self._run_as_owner(),
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout.decode()}{initdb.stderr.decode()}")
        hba = ["local all all trust", "host all all 127.0.0.1/32 trust"]
        hba += [f"host all all {network} trust" for network in self.trusted_networks]
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "300",
            "shared_buffers": "64MB",
            # A throwaway server: no fsync, as the tests crash PostgreSQL, never the machine.
            # Commits are still written out before they are acknowledged: an immediate
            # shutdown (a crash) must not lose what a client was told was committed.
            "fsync": "off",
            "synchronous_commit": "on",
            "full_page_writes": "off",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self._argv = argv
        self._launch()

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._argv,
                cwd=self.directory,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **self._run_as_owner(),
            )
        wait_until(self._accepts_connections, timeout=60, what="PostgreSQL to accept connections")

    def halt(self, mode: signal.Signals = signal.SIGINT) -> None:
        """Stop the server and keep its data (SIGINT: fast shutdown; SIGQUIT: immediate, so
        the next start recovers as after a crash); `resume()` starts it on the same port."""
        process, self.process = self.process, None
        assert process is not None, "the server is not running"
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children()]
        process.send_signal(mode)
        process.wait(timeout=60)
        psutil.wait_procs(family, timeout=10)

    def resume(self) -> None:
        """Start a halted server again (crash recovery included) and wait until it answers."""
        assert self.process is None, "the server is running"
        self._launch()

    def _accepts_connections(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log()}")
        try:
            with psycopg.connect(self._dsn("postgres"), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def _dsn(self, database: str) -> str:
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A psycopg connection over the unix socket, autocommit."""
        return psycopg.connect(self._dsn(database), autocommit=True)

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns the app's URL for it."""
        name = f"{prefix}_{next(self._names)}"
        with self.connect() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown, then immediate, then SIGKILL; wait for every server process."""
        process, self.process = self.process, None
        if process is not None:
            try:
                family = [psutil.Process(process.pid)]
                family += family[0].children(recursive=True)
            except psutil.NoSuchProcess:
                family = []
            for sig, grace in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # Backends are group leaders of their own; they exit once the postmaster is gone.
            _, alive = psutil.wait_procs(family, timeout=10)
            for leftover in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    leftover.kill()
            psutil.wait_procs(alive, timeout=10)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


@contextlib.contextmanager
def running_postgres(
    host: str = "127.0.0.1", trusted_networks: Sequence[str] = ()
) -> Iterator[PostgresServer]:
    server = PostgresServer(host=host, trusted_networks=trusted_networks)
    try:
        server.start()
        yield server
    finally:
        server.stop()


DATABASES = ("sqlite", "postgresql")


def selected_databases(config: pytest.Config) -> list[str]:
    """The backends `--databases` names, in a fixed order."""
    raw = str(config.getoption("--databases"))
    chosen = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = chosen - set(DATABASES)
    if unknown or not chosen:
        raise pytest.UsageError(
            f"--databases {raw!r}: name one or more of {', '.join(DATABASES)}, comma-separated"
        )
    return [name for name in DATABASES if name in chosen]


def database_url(request: pytest.FixtureRequest, backend: str, directory: Path, name: str) -> str:
    """A fresh, empty job store on `backend` for one stack."""
    if backend == "sqlite":
        return f"sqlite:///{directory / f'{name}.db'}"
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database(name)
    raise ValueError(f"unknown database backend {backend!r}")
