"""The runner: owns the `kedro run` subprocess, its output, progress, timeout and kill.

`kedro run` is started as an argv list (never a shell string) in its own process
group by the worker's process guard (`scripts/guard.py`, one per worker process),
so a cancel, a timeout or the death of this worker takes the whole tree with it.
Output is read incrementally and stored in batches; the run's exit is waited on
through the process that started it (the guard's or warm server's exit message, or
a pidfd), not on pipe EOF, because ParallelRunner's children may hold the pipe open
after Kedro exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import selectors
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.exceptions import InvalidJobRequest, JobNotFound
from app.runner.buffered import BufferedWrites, DatabaseStillDown
from app.runner.cold import start_cold
from app.runner.command import build_argv, build_run_config, check_for_kedro, kedro_environment
from app.runner.graph import InvalidRunOptions, done_nodes, plan_resume, selected_nodes
from app.runner.groups import RunProcess, signal_group, stop_group
from app.runner.inspector import ProjectReport
from app.runner.output import OutputParser
from app.runner.params import dump_run_config
from app.runner.warm import WarmUnavailable, warm_pool
from app.schemas.jobs import JobStatus
from app.store import Claim, JobManager, RunOutcome, utcnow

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25
FLUSH_BYTES = 1024 * 1024  # store output in batches of up to 1 MiB (or every 0.25 s)
READ_BYTES = 1024 * 1024
PIPE_BYTES = 1024 * 1024  # the default cap of /proc/sys/fs/pipe-max-size
KILL_GRACE_SECONDS = 3.0
UNKNOWN_RUN_DAYS = 7
RUN_DIR_PREFIX = "kedro-job-"  # then the job id: a run's private directory (its run config)


class _Run:
    """One attempt of one job: the process, its output relay and its stop conditions."""

    def __init__(
        self,
        claim: Claim,
        manager: JobManager,
        settings: Settings,
        project: ProjectReport | None,
    ) -> None:
        self.job = claim.job
        self.attempt = claim.attempt
        self.manager = manager
        self.settings = settings
        self.kedro_version = project.kedro_version if project else None
        self.parser = OutputParser(project.node_names(self.job.pipeline_name) if project else None)
        self.pipelines = project.pipelines if project else None
        self.buffer = bytearray()
        self.offset = self.job.output_bytes  # a retry's output follows the earlier attempts'
        self.writes = BufferedWrites(
            manager, job_id=self.job.id, attempt=self.attempt, offset=self.offset
        )
        self.stop_reason: tuple[JobStatus, str] | None = None
        self.timed_out = False
        self.timeout = self.job.timeout_seconds or settings.job_timeout_seconds
        self.process_started_at = self.process_exited_at = utcnow()
        self.runner = "cold"

    def execute(self, workdir: Path) -> RunOutcome:
        try:  # submitted before the queue's project (and so its Kedro version) was known
            check_for_kedro(self.job, self.job.parameters, kedro_version=self.kedro_version)
        except InvalidJobRequest as exc:
            return _outcome(JobStatus.failed, None, None, exc.detail, {})
        resumed = self._resume()
        self.parser.plan(selected_nodes(self.pipelines, self.job))
        if self.attempt > 1 or self.job.retry.max_attempts > 1:
            self._take(self._separator(resumed).encode())
        config = build_run_config(self.job, kedro_version=self.kedro_version)
        config_path = workdir / f"run-config-{self.job.id}.json"
        _write_private(config_path, dump_run_config(config))
        argv = build_argv(
            self.job,
            config_path=config_path,
            kedro_python=self.settings.kedro_python,
            kedro_version=self.kedro_version,
        )
        logger.info("job %s starting: %s", self.job.id, argv)
        started = time.monotonic()
        self.process_started_at = utcnow()
        output, output_end = os.pipe()
        with contextlib.suppress(OSError):  # a bigger pipe: fewer stalls for chatty runs
            fcntl.fcntl(output, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            with self._heartbeats_meanwhile():  # warming a project can take seconds
                process = self._start(argv, output_end)
        except OSError as exc:
            os.close(output)
            self._flush()
            outcome = _outcome(JobStatus.failed, None, None, f"could not start kedro: {exc}", {})
            return dataclasses.replace(outcome, failure="failed")
        finally:
            os.close(output_end)
        returncode, exited = self._supervise(process, output)
        execution_time = round(exited - started, 3)
        self.process_exited_at = self.process_started_at + timedelta(seconds=exited - started)
        self.parser.finish()
        self._flush(store=False)  # stored with the outcome, in one transaction
        return self._outcome(returncode, execution_time)

    @contextlib.contextmanager
    def _heartbeats_meanwhile(self) -> Iterator[None]:
        """Keep the job's heartbeat fresh from a thread while the caller blocks."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.heartbeat_interval_seconds):
                self._check_heartbeat()

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.job.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _start(self, argv: list[str], output: int) -> RunProcess:
        """Fork the run from the warm server if asked and able, else start it cold."""
        env = kedro_environment(self.settings, os.environ)
        if self.settings.runner_mode == "warm":
            try:
                # The arguments after `-m kedro`: the warm server runs Kedro's CLI itself.
                child = warm_pool().spawn(self.settings, env, KILL_GRACE_SECONDS, argv[3:], output)
            except WarmUnavailable as exc:
                logger.warning("job %s: running cold: %s", self.job.id, exc)
            else:
                self.runner = "warm"
                return child
        return start_cold(
            argv,
            cwd=self.settings.kedro_project_path,
            env=env,
            output=output,
            grace=KILL_GRACE_SECONDS,
        )

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
                    self.timed_out = True
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

    def _flush(self, *, store: bool = True) -> None:
        if not self.buffer:
            return
        data = bytes(self.buffer)
        self.buffer.clear()
        self.parser.feed(data)
        # kept while the database is down
        self.writes.append(data, self.parser.progress, store=store)
        self.offset += len(data)

    def _check_heartbeat(self) -> None:
        reason = self.writes.heartbeat()
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
            "node_times": self.parser.timings(),
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
        outcome = _outcome(status, returncode, execution_time, message, results)
        if status == JobStatus.failed:
            return dataclasses.replace(outcome, failure="timeout" if self.timed_out else "failed")
        return outcome

    def _resume(self) -> list[str] | None:
        """A `from_failure` retry resumes where the earlier attempts stopped: returns the
        `from_nodes` this attempt starts from, or None to run the job's whole selection."""
        if self.attempt < 2 or self.job.retry.strategy != "from_failure":
            return None
        project = self.manager.get_project(queue=self.job.queue)
        pipeline = (
            next((p for p in project.items if p.name == self.job.pipeline_name), None)
            if project
            else None
        )
        try:
            if pipeline is None:
                raise InvalidRunOptions("the project's pipelines are not known")
            plan = plan_resume(pipeline, self.job, done_nodes(self.job))
        except InvalidRunOptions as exc:
            logger.warning("job %s: cannot resume, running it all: %s", self.job.id, exc)
            return None
        if not plan.from_nodes:
            return None
        self.job = self.job.model_copy(update={"from_nodes": plan.from_nodes})
        self.manager.note_resume(
            job_id=self.job.id,
            attempt=self.attempt,
            resume_from=plan.from_nodes,
            planned_nodes=plan.nodes,
        )
        return plan.from_nodes

    def _separator(self, resumed: list[str] | None) -> str:
        """The line that opens each attempt's part of the log."""
        where = f", resuming from {', '.join(resumed)}" if resumed else ""
        return (
            f"===== kedro-gateway: attempt {self.attempt} of {self.job.retry.max_attempts} "
            f"on {self.job.worker}{where} =====\n"
        )

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
    """Runs claimed jobs as `kedro run` subprocesses and records how they end.

    `project` is what the inspector found when the worker started: its Kedro version
    picks the command's words, its nodes name the running ones. Without it the
    command is Kedro 1.x's.
    """

    def __init__(
        self, *, manager: JobManager, settings: Settings, project: ProjectReport | None = None
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._project = project

    def run(self, claim: Claim) -> RunOutcome:
        """Run the claimed attempt to its end and store the outcome."""
        # The run's directory is removed once the outcome is stored: off the way to it.
        with tempfile.TemporaryDirectory(prefix=f"{RUN_DIR_PREFIX}{claim.job.id}-") as workdir:
            run = _Run(claim, self._manager, self._settings, self._project)
            outcome = run.execute(Path(workdir))
            try:  # the database may be restarting: the output and outcome wait for it
                wait = 2 * self._settings.worker_lost_after_seconds
                run.writes.finish(outcome, wait_seconds=wait)
            except DatabaseStillDown as exc:  # the reaper fails the job once it is back
                logger.error("%s", exc)
        return outcome


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (a run config holds the job's parameters)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def sweep_run_dirs(manager: JobManager, *, root: Path | None = None) -> list[Path]:
    """Remove the run directories that killed workers left behind: those of this store's
    jobs that no longer run. A directory of a job this store does not know may belong to
    another gateway on the machine: it goes only once untouched for `UNKNOWN_RUN_DAYS`."""
    root = root or Path(tempfile.gettempdir())
    abandoned_before = time.time() - UNKNOWN_RUN_DAYS * 86400
    swept = []
    for path in root.glob(f"{RUN_DIR_PREFIX}*"):
        job_id = path.name[len(RUN_DIR_PREFIX) :][:36]
        try:
            stale = manager.get_job(job_id=job_id).status != JobStatus.running
        except JobNotFound:
            stale = path.stat().st_mtime < abandoned_before
        if stale and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path)
    return swept
