"""The runner: owns the `kedro run` subprocess, its output, progress, timeout and kill.

`kedro run` is started as an argv list (never a shell string) in its own process
group under `process_guard.py`, so a cancel, a timeout or the death of this
worker takes the whole tree with it. Output is read incrementally and stored in
batches; the run is waited on through a pidfd, not on pipe EOF, because
ParallelRunner's children may hold the pipe open after Kedro exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from app.core.config import Settings
from app.core.job_manager import Claim, JobManager, RunOutcome, RunProgress, utcnow
from app.core.kedro_params import dump_run_config, escape_parameters
from app.core.process_groups import signal_group, stop_group
from app.core.warm_runner import WarmUnavailable, warm_pool
from app.schemas.jobs import Job, JobStatus

logger = logging.getLogger(__name__)

LOGGING_CONFIG = Path(__file__).with_name("kedro_logging.yml")
PROCESS_GUARD = Path(__file__).with_name("process_guard.py")
FLUSH_SECONDS = 0.25
FLUSH_BYTES = 1024 * 1024  # store output in batches of up to 1 MiB (or every 0.25 s)
READ_BYTES = 1024 * 1024
PIPE_BYTES = 1024 * 1024  # the default cap of /proc/sys/fs/pipe-max-size
KILL_GRACE_SECONDS = 3.0
TAIL_LINES = 30
MAX_LINE_CHARS = 1000
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV")

_RUNNING_NODE = re.compile(r"Running node: (.+?): ")
_COMPLETED_NODE = re.compile(r"Completed node: (.+?)\s*$")
_COMPLETED_TASKS = re.compile(r"Completed (\d+) out of (\d+) tasks")
_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception)\b")
# A line can matter to the parser only if it holds one of these.
_MARKERS = (b"Running node: ", b"Completed ", b"Error", b"Exception")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


def build_run_config(job: Job) -> dict[str, Any]:
    """The `--config` file's content: parameters and run options, types intact."""
    run: dict[str, Any] = {"params": escape_parameters(job.parameters)}
    for option in (
        "node_names",
        "from_nodes",
        "to_nodes",
        "from_inputs",
        "to_outputs",
        "namespaces",
    ):
        names = getattr(job, option)
        if names:
            run[option] = ",".join(names)
    if job.runner:
        run["runner"] = job.runner
    if job.load_versions:
        run["load_versions"] = ",".join(f"{k}:{v}" for k, v in job.load_versions.items())
    return {"run": run}


def build_argv(job: Job, *, config_path: Path, kedro_python: str) -> list[str]:
    """`<KEDRO_PYTHON> -m kedro run --pipelines <name> --config <file> [--env] [--tags]`."""
    argv = [
        kedro_python,
        "-m",
        "kedro",
        "run",
        "--pipelines",
        job.pipeline_name,
        "--config",
        str(config_path),
    ]
    if job.env:
        argv += ["--env", job.env]
    if job.tags:
        argv += ["--tags", ",".join(job.tags)]
    return argv


def kedro_environment(settings: Settings, inherited: Mapping[str, str]) -> dict[str, str]:
    """An allowlisted environment: no gateway secrets, no PYTHONPATH, no telemetry."""
    names = set(INHERITED_ENV) | set(settings.kedro_env_passthrough)
    env = {
        name: value for name, value in inherited.items() if name in names or name.startswith("LC_")
    }
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="ignore",
        KEDRO_LOGGING_CONFIG=inherited.get("KEDRO_LOGGING_CONFIG", str(LOGGING_CONFIG)),
    )
    return env


class OutputParser:
    """Follows Kedro's log lines for progress, node timing and the failure message."""

    def __init__(self) -> None:
        self.progress = RunProgress()
        self.node_seconds: dict[str, float] = {}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.exception_line: str | None = None
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
            self._started[match.group(1)] = time.monotonic()
            self.progress.running_nodes = list(self._started)
            return True
        if match := _COMPLETED_NODE.search(line):
            name = match.group(1)
            self.progress.completed_nodes.append(name)
            if name in self._started:
                self.node_seconds[name] = round(time.monotonic() - self._started.pop(name), 3)
            self.progress.running_nodes = list(self._started)
            return True
        if match := _COMPLETED_TASKS.search(line):
            self.progress.total_nodes = int(match.group(2))
            return True
        return False

    def last_line(self) -> str | None:
        return self.tail[-1].strip() if self.tail else None


class RunProcess(Protocol):
    """A started run, cold (under the process guard) or forked by the warm server."""

    pid: int

    def exit_fileno(self) -> int: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def close(self) -> None: ...


class ColdProcess:
    """`kedro run` under the process guard, watched through a pidfd."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._pidfd = os.pidfd_open(popen.pid)

    def exit_fileno(self) -> int:
        return self._pidfd

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout)

    def close(self) -> None:
        os.close(self._pidfd)


class _Run:
    """One attempt of one job: the process, its output relay and its stop conditions."""

    def __init__(self, claim: Claim, manager: JobManager, settings: Settings) -> None:
        self.job = claim.job
        self.attempt = claim.attempt
        self.manager = manager
        self.settings = settings
        self.parser = OutputParser()
        self.buffer = bytearray()
        self.offset = 0
        self.stop_reason: tuple[JobStatus, str] | None = None
        self.timeout = self.job.timeout_seconds or settings.job_timeout_seconds
        self.process_started_at = self.process_exited_at = utcnow()
        self.runner = "cold"

    def execute(self, workdir: Path) -> RunOutcome:
        config_path = workdir / f"run-config-{self.job.id}.json"
        config_path.write_text(dump_run_config(build_run_config(self.job)), encoding="utf-8")
        argv = build_argv(
            self.job, config_path=config_path, kedro_python=self.settings.kedro_python
        )
        logger.info("job %s starting: %s", self.job.id, argv)
        started = time.monotonic()
        self.process_started_at = utcnow()
        output, output_end = os.pipe()
        with contextlib.suppress(OSError):  # a bigger pipe: fewer stalls for chatty runs
            fcntl.fcntl(output, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            process = self._start(argv, output_end)
        except OSError as exc:
            os.close(output)
            return _outcome(JobStatus.failed, None, None, f"could not start kedro: {exc}", {})
        finally:
            os.close(output_end)
        returncode, exited = self._supervise(process, output)
        execution_time = round(exited - started, 3)
        self.process_exited_at = self.process_started_at + timedelta(seconds=exited - started)
        self.parser.finish()
        self._flush()
        return self._outcome(returncode, execution_time)

    def _start(self, argv: list[str], output: int) -> RunProcess:
        """Fork the run from the warm server if asked and able, else start it cold."""
        env = kedro_environment(self.settings, os.environ)
        if self.settings.runner_mode == "warm":
            pool = warm_pool()
            try:
                # The arguments after `-m kedro`: the warm server runs Kedro's CLI itself.
                child = pool.spawn(self.settings, env, KILL_GRACE_SECONDS, argv[3:], output)
            except WarmUnavailable as exc:
                logger.warning("job %s: running cold: %s", self.job.id, exc)
                child = None
            if pool.error_changed() and self.job.worker:
                self.manager.note_warm_error(name=self.job.worker, error=pool.last_error)
            if child is not None:
                self.runner = "warm"
                return child
        guard = [sys.executable, "-I", "-S", str(PROCESS_GUARD), str(KILL_GRACE_SECONDS), "--"]
        # The argv is a list built from allowlisted names; no shell is involved.
        popen = subprocess.Popen(  # noqa: S603
            guard + argv,
            cwd=self.settings.kedro_project_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        return ColdProcess(popen)

    def _supervise(self, process: RunProcess, pipe: int) -> tuple[int, float]:
        """Relay output until the process exits; returns its exit status and exit time."""
        os.set_blocking(pipe, False)
        selector = selectors.DefaultSelector()
        selector.register(pipe, selectors.EVENT_READ, "output")
        selector.register(process.exit_fileno(), selectors.EVENT_READ, "exit")
        started = last_flush = last_beat = time.monotonic()
        try:
            while process.poll() is None:
                for key, _ in selector.select(timeout=FLUSH_SECONDS):
                    if key.data == "output" and not self._read(pipe):
                        selector.unregister(pipe)
                now = time.monotonic()
                if now - last_flush >= FLUSH_SECONDS or len(self.buffer) >= FLUSH_BYTES:
                    self._flush()
                    last_flush = now
                if now - last_beat >= self.settings.heartbeat_interval_seconds:
                    self._check_heartbeat()
                    last_beat = now
                if self.timeout and self.stop_reason is None and now - started > self.timeout:
                    self.stop_reason = (JobStatus.failed, f"timed out after {self.timeout:g} s")
                if self.stop_reason is not None:
                    self._kill(process)
            exited = time.monotonic()
            self._drain(pipe)
        finally:
            signal_group(process.pid, signal.SIGKILL)  # children that outlived kedro
            selector.close()
            process.close()
            os.close(pipe)
        return process.wait(), exited

    def _read(self, pipe: int) -> bool:
        try:
            data = os.read(pipe, READ_BYTES)
        except BlockingIOError:
            return True
        self._take(data)
        return bool(data)

    def _drain(self, pipe: int) -> None:
        """Read what Kedro wrote before it exited; children holding the pipe get 0.5 s."""
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                data = os.read(pipe, READ_BYTES)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not data:
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        data = bytes(self.buffer)
        self.buffer.clear()
        self.parser.feed(data)
        self.manager.append_output(
            job_id=self.job.id,
            attempt=self.attempt,
            offset=self.offset,
            data=data,
            progress=self.parser.progress,
        )
        self.offset += len(data)

    def _check_heartbeat(self) -> None:
        reason = self.manager.heartbeat(job_id=self.job.id, attempt=self.attempt)
        if reason is not None and self.stop_reason is None:
            self.stop_reason = (JobStatus.cancelled, reason)

    def _kill(self, process: RunProcess) -> None:
        logger.info("job %s stopping: %s", self.job.id, self.stop_reason)
        stop_group(process, wait=KILL_GRACE_SECONDS + 1)

    def _outcome(self, returncode: int, execution_time: float) -> RunOutcome:
        results = {
            "exit_code": returncode,
            "execution_time": execution_time,
            "completed_nodes": list(self.parser.progress.completed_nodes),
            "node_seconds": dict(self.parser.node_seconds),
            "output_tail": list(self.parser.tail),
            "output_bytes": self.offset,
            "runner": self.runner,
            "process_started_at": self.process_started_at.isoformat(),
            "process_exited_at": self.process_exited_at.isoformat(),
        }
        if self.stop_reason is not None:
            status, message = self.stop_reason
        elif returncode == 0:
            status, message = JobStatus.completed, None
        else:
            status, message = JobStatus.failed, self._failure_message(returncode)
        return _outcome(status, returncode, execution_time, message, results)

    def _failure_message(self, returncode: int) -> str:
        if returncode < 0:
            return f"kedro run was killed by {signal.Signals(-returncode).name}"
        if self.parser.exception_line:
            return self.parser.exception_line
        last = self.parser.last_line()
        return f"kedro run exited with code {returncode}" + (f": {last}" if last else "")


def _outcome(
    status: JobStatus,
    exit_code: int | None,
    execution_time: float | None,
    message: str | None,
    results: dict[str, Any],
) -> RunOutcome:
    return RunOutcome(
        status=status,
        exit_code=exit_code,
        execution_time=execution_time,
        error_message=message,
        results=results,
    )


class KedroRunner:
    """Runs claimed jobs as `kedro run` subprocesses and records how they end."""

    def __init__(self, *, manager: JobManager, settings: Settings) -> None:
        self._manager = manager
        self._settings = settings

    def run(self, claim: Claim) -> RunOutcome:
        """Run the claimed attempt to its end and store the outcome."""
        with tempfile.TemporaryDirectory(prefix=f"kedro-job-{claim.job.id}-") as workdir:
            outcome = _Run(claim, self._manager, self._settings).execute(Path(workdir))
        self._manager.finish_job(job_id=claim.job.id, attempt=claim.attempt, outcome=outcome)
        return outcome
