"""A warmed Kedro project that forks one child process per run.

Usage (by the gateway's warm runner, never by hand):
    <KEDRO_PYTHON> warm_server.py <socket-fd> <grace-seconds>
with the project as the working directory.

It imports Kedro, bootstraps the project and loads its pipeline registry once,
then serves requests on a SOCK_SEQPACKET socket inherited as <socket-fd>: each
request carries the `kedro` arguments (e.g. `run --pipelines x --config f`) and,
as SCM_RIGHTS, the file descriptor the run's output must go to. It forks a
child in a new session (so the caller can signal the whole process group),
answers {"pid": N}, and once the child exits {"exit": <returncode>}.

If this server is told to stop (SIGTERM, including the PR_SET_PDEATHSIG
signal sent when the worker process that started it dies), it stops its
running child's process group (SIGTERM, grace, SIGKILL) and exits.

Runs in the Kedro project's interpreter: standard library and Kedro only.
"""

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
WATCHED = ("src", "conf", "pyproject.toml", "settings.py")


def project_fingerprint(project: Path) -> str:
    """A digest of the names, sizes and mtimes of the project's code and config."""
    digest = hashlib.sha256()
    for name in WATCHED:
        root = project / name
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in paths:
            if "__pycache__" in path.parts or not path.is_file():
                continue
            stat = path.stat()
            digest.update(
                f"{path.relative_to(project)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop


def _die_with_parent(signum: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


def _warm(project: Path) -> object:
    """Import Kedro, bootstrap the project, load its pipelines; return the CLI to run.

    Everything a run would otherwise do lazily on its first call is done here once:
    a session's context and catalog (config loader, validation, dataset modules) and
    the CLI's exit path (Kedro formats a traceback for every SystemExit, which reads
    source files through linecache).
    """
    from kedro.framework.cli.cli import KedroCLI, _init_plugins
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession

    _init_plugins()
    cli = KedroCLI(project_path=project)
    list(pipelines.keys())  # imports the project's pipelines and nodes
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()  # type: ignore[attr-defined]
        _ = context.catalog, context.params
    import kedro.runner  # noqa: F401

    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        contextlib.suppress(SystemExit),
    ):
        cli.main(args=["run", "--help"], prog_name="kedro")
    return cli


def _run_child(cli: object, args: list[str], output_fd: int, channel: socket.socket) -> None:
    """In the forked child: become a session leader, write to the job's pipe, run Kedro."""
    code = 1
    try:
        channel.close()
        os.setsid()
        _die_with_parent(signal.SIGKILL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        sys.argv = ["kedro", *args]
        try:
            cli.main(args=args, prog_name="kedro")  # type: ignore[attr-defined]
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # anything else must still end this child, never return
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _stop_child(pid: int, grace: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def serve(channel: socket.socket, cli: object, grace: float) -> None:
    """Answer run requests until the caller closes the channel or asks us to stop."""
    child = 0
    try:
        while True:
            message, fds, _flags, _addr = socket.recv_fds(channel, 65536, 1)
            if not message:
                return
            request = json.loads(message)
            sys.stdout.flush()
            sys.stderr.flush()
            child = os.fork()
            if child == 0:
                _run_child(cli, request["args"], fds[0], channel)
            for fd in fds:
                os.close(fd)
            channel.send(json.dumps({"pid": child}).encode())
            _, status = os.waitpid(child, 0)
            child = 0
            channel.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if child:
            _stop_child(child, grace)


def main() -> int:
    channel = socket.socket(fileno=int(sys.argv[1]))
    grace = float(sys.argv[2])
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _raise_stop)
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        return 1
    project = Path.cwd()
    fingerprint = project_fingerprint(project)  # before importing: a later edit re-warms
    try:
        cli = _warm(project)
        import kedro

        hello = {"ready": True, "fingerprint": fingerprint, "kedro_version": kedro.__version__}
    except _Stop:
        return 1
    except BaseException as exc:  # report why warming failed; the caller runs cold
        hello = {"ready": False, "error": f"{type(exc).__name__}: {exc}"}
    channel.send(json.dumps(hello).encode())
    if hello["ready"]:
        serve(channel, cli, grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
