"""A warmed Kedro project that forks one child process per run.

Usage (by the gateway's warm runner, never by hand):
    <KEDRO_PYTHON> warm_server.py <socket-fd> <grace-seconds> [<shortcuts>]
with the project as the working directory. <shortcuts> is a comma list of the
per-run work this process does once instead of in every child (default: all):

- `hooks`: the session's hook manager (the project's `HOOKS` and the plugins'
  entry-point hooks) is built here once; every child's session uses its copy.
- `git`: `git rev-parse`/`git status` for the session store run once here.
- `config`: the project's config files (under `conf/`, not credentials) are
  read and parsed here once, for the default environment; each child gets a
  deep copy, still merged and resolved per run with the job's parameters.
- `imports`: a top-level module that failed to import here (Kedro tries
  `pandas`, `numpy` and `ibis` for every dataset it copies) fails at once in a
  child instead of searching `sys.path` again.
- `pipelines`: the registry stays loaded for every pipeline; a run asking for
  one does not call `register_pipelines()` again (as `kedro server` does).
- `prefork`: the next child is forked ahead and waits for its request, so a
  run does not wait for a fork. It is forked once no request has come for
  `SPARE_AFTER_SECONDS` after the last run, so its fork does not take CPU from
  the worker storing that run's end (a request that comes sooner is forked for).
- `prefault` (with `prefork`): the waiting child copies, before its request
  comes, the memory pages earlier runs wrote (learned from the first runs and
  one in `LEARN_EVERY` after), so the run does not stop on a copy-on-write
  fault for each (they were a third of a short run). It costs the waiting
  child that much private memory, about what one run writes.

A child is a fork: whatever a hook or a plugin changes during one run stays in
that child, and the next run starts from this process's state. What a shortcut
can miss (a plugin installed or a commit made after warming) is what the
fingerprint watches for (`sys.path` entries and the project's files).

It imports Kedro, bootstraps the project and loads its pipeline registry once,
then serves requests on a SOCK_SEQPACKET socket inherited as <socket-fd>: each
request carries the `kedro` arguments (e.g. `run --pipelines x --config f`) and,
as SCM_RIGHTS, the file descriptor the run's output must go to. It hands the
request to a forked child in a new session (so the caller can signal the whole
process group), answers {"pid": N}, and once the child has run
{"exit": <returncode>}: as the child reports it after closing its output, so
the caller does not wait for the child's memory to be torn down, or else from
the child's exit status.

If this server is told to stop (SIGTERM, including the PR_SET_PDEATHSIG
signal sent when the worker process that started it dies), it stops its
running child's process group (SIGTERM, grace, SIGKILL) and exits.

Runs in the Kedro project's interpreter: standard library and Kedro only.
"""

import array
import contextlib
import ctypes
import gc
import hashlib
import importlib
import json
import os
import re
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
WATCHED = ("src", "conf", "pyproject.toml", "settings.py")
SHORTCUTS = ("hooks", "git", "config", "imports", "pipelines", "prefork", "prefault")
MADV_POPULATE_WRITE = 23
PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_MESSAGE = 128 * 1024  # a longer learned page list is not sent (the socket's buffer)
LEARN_FIRST = 3
SPARE_AFTER_SECONDS = 0.05
LEARN_EVERY = 8


def project_fingerprint(project: Path, extra: "list[str] | tuple[str, ...]" = ()) -> str:
    """A digest of the names, sizes and mtimes of the project's code, config and git
    state, and of the mtimes of the `extra` directories (the warm interpreter's
    `sys.path`: installing or removing a package there changes its directory).

    Taken before every warm run, so it walks with `os.scandir` (a few times faster than
    `Path.rglob` and a `stat` each)."""
    digest = hashlib.sha256()
    for name in extra:
        try:
            digest.update(f"{name}\0{os.stat(name).st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{name}\0-\n".encode())
    for name in WATCHED:
        for path, stat in sorted(_files(str(project / name), name)):
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files(root: str, relative: str) -> "list[tuple[str, os.stat_result]]":
    """(path relative to the project, stat) of each file under `root` (or `root` itself),
    `__pycache__` directories left out."""
    try:
        if not os.path.isdir(root):
            return [(relative, os.stat(root))] if os.path.isfile(root) else []
        entries = list(os.scandir(root))
    except OSError:
        return []
    found = []
    for entry in entries:
        path = f"{relative}/{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):  # as `rglob`: not into linked ones
                if entry.name != "__pycache__":
                    found += _files(entry.path, path)
            elif entry.is_file():
                found.append((path, entry.stat()))
        except OSError:  # removed while walking: the next fingerprint sees the change
            continue
    return found


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop


def _die_with_parent(signum: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


def _share_hooks() -> None:
    """Build the session's hook manager once; each session (in a child) takes it as is."""
    from kedro.framework.project import settings

    session_module: Any = importlib.import_module("kedro.framework.session.session")
    names = ("_create_hook_manager", "_register_hooks", "_register_hooks_entry_points")
    if not all(hasattr(session_module, name) for name in names):
        return
    manager = session_module._create_hook_manager()
    session_module._register_hooks(manager, settings.HOOKS)
    session_module._register_hooks_entry_points(manager, settings.DISABLE_HOOKS_FOR_PLUGINS)
    session_module._create_hook_manager = lambda: manager
    session_module._register_hooks = lambda *_args, **_kwargs: None
    session_module._register_hooks_entry_points = lambda *_args, **_kwargs: None


def _share_pipelines() -> None:
    """Keep the whole registry loaded: a run that asks for some pipelines (Kedro 1.x's
    `set_requested`) would otherwise call `register_pipelines()` again."""
    from kedro.framework.project import pipelines

    if hasattr(pipelines, "set_requested"):
        list(pipelines.keys())
        pipelines.set_requested = lambda _names: None  # type: ignore[method-assign,assignment]


def _share_git(project: Path) -> None:
    """Describe the project's git state once (the fingerprint watches HEAD and its ref)."""
    session_module: Any = importlib.import_module("kedro.framework.session.session")

    describe = getattr(session_module, "_describe_git", None)
    if describe is None:
        return
    described = describe(project)
    session_module._describe_git = lambda _path: {k: dict(v) for k, v in described.items()}


def _share_config(conf: Path) -> None:
    """Keep each parsed config file of `conf` (not credentials); runs get deep copies."""
    import copy

    from kedro.config import OmegaConfigLoader

    original = getattr(OmegaConfigLoader, "_read_dir_configs", None)
    if original is None:  # Kedro 0.19 reads and merges in one step: nothing to share
        return
    cache: dict[tuple[object, ...], tuple[dict[object, object], set[object]]] = {}
    root = str(conf.resolve())

    def read_dir_configs(
        self: object,
        conf_path: str,
        patterns: "list[str]",
        key: str,
        processed_files: set[object],
        read_environment_variables: "bool | None" = False,
    ) -> dict[object, object]:
        shareable = (
            not read_environment_variables
            and getattr(self, "_protocol", None) == "file"
            and os.path.realpath(conf_path).startswith(root + os.sep)
        )
        if not shareable:
            configs: dict[object, object] = original(
                self, conf_path, patterns, key, processed_files, read_environment_variables
            )
            return configs
        hidden = getattr(self, "ignore_hidden", None)
        entry: tuple[object, ...] = (conf_path, tuple(patterns), key, hidden)
        if entry not in cache:
            files: set[object] = set()
            configs = original(self, conf_path, patterns, key, files, False)
            cache[entry] = (configs, files)
        configs, files = cache[entry]
        processed_files.update(files)
        return {path: copy.deepcopy(config) for path, config in configs.items()}

    OmegaConfigLoader._read_dir_configs = read_dir_configs  # type: ignore[method-assign]


class _MissingModules:
    """Remembers the top-level modules no finder found, and refuses them at once after.

    `record` sits last in `sys.meta_path` (asked only when every finder has failed,
    it notes the name) and `refuse` first (it raises for a noted name). A package
    installed later changes a `sys.path` directory, which the fingerprint watches,
    so the process is re-warmed.
    """

    def __init__(self) -> None:
        self.missing: set[str] = set()
        self.record = _Finder(self.missing, refuse=False)
        self.refuse = _Finder(self.missing, refuse=True)


class _Finder:
    def __init__(self, missing: "set[str]", *, refuse: bool) -> None:
        self.missing = missing
        self.refuse = refuse

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if path is not None or "." in name:
            return None
        if not self.refuse:
            self.missing.add(name)
        elif name in self.missing:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _share_missing_imports() -> None:
    modules = _MissingModules()
    sys.meta_path.insert(0, modules.refuse)
    sys.meta_path.append(modules.record)
    with contextlib.suppress(Exception):  # what Kedro tries for every dataset it copies
        from kedro.io.memory_dataset import _infer_copy_mode

        _infer_copy_mode(None)


def _warm(project: Path, shortcuts: "set[str] | frozenset[str]" = frozenset(SHORTCUTS)) -> object:
    """Import Kedro, bootstrap the project, load its pipelines; return the CLI to run.

    Everything a run would otherwise do lazily on its first call is done here once:
    a session's context and catalog (config loader, validation, dataset modules) and
    the CLI's exit path (Kedro formats a traceback for every SystemExit, which reads
    source files through linecache). Then the `shortcuts` (see the module's doc).
    """
    from kedro.framework.cli.cli import KedroCLI, _init_plugins
    from kedro.framework.project import pipelines, settings
    from kedro.framework.session import KedroSession

    _init_plugins()
    cli = KedroCLI(project_path=project)
    list(pipelines.keys())  # imports the project's pipelines and nodes
    if "hooks" in shortcuts:
        _share_hooks()
    if "git" in shortcuts:
        _share_git(project)
    if "imports" in shortcuts:
        _share_missing_imports()
    if "pipelines" in shortcuts:
        _share_pipelines()
    if "config" in shortcuts:
        _share_config(project / str(getattr(settings, "CONF_SOURCE", "conf")))
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()  # type: ignore[attr-defined]
        _ = context.catalog, context.params  # with `config`: parsed for the default env
    import kedro.runner  # noqa: F401

    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        contextlib.suppress(SystemExit),
    ):
        cli.main(args=["run", "--help"], prog_name="kedro")
    gc.collect()
    gc.freeze()  # children share these pages instead of copying them for the collector
    return cli


def _become_run(channel: socket.socket) -> None:
    """In a forked child: leave the server's channel, lead a session, die with the server."""
    channel.close()
    os.setsid()
    _die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _private_ranges() -> "list[tuple[int, int]]":
    """This process's private writable anonymous memory: the heap and the allocators' arenas."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1] == "rw-p" and (len(fields) < 6 or fields[5] == "[heap]"):
                start, end = (int(address, 16) for address in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


_EXCLUSIVE = bytes(value & 1 for value in range(256))  # bit 56 of a pagemap entry


def _written_pages() -> bytes:
    """The pages of private memory this process has its own copy of (those it wrote
    since the fork), as `array("Q")` bytes of (start, length) pairs."""
    found = array.array("Q")
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        for start, end in _private_ranges():
            pagemap.seek(start // PAGE * 8)
            entries = pagemap.read((end - start) // PAGE * 8)
            for run in re.finditer(b"\x01+", entries[7::8].translate(_EXCLUSIVE)):
                found.extend((start + run.start() * PAGE, (run.end() - run.start()) * PAGE))
    return found.tobytes()


def _prefault(pages: bytes) -> None:
    """Copy now the pages earlier runs wrote, while this child waits for its request: a
    run would otherwise stop on each of them (a copy-on-write fault, ~5 us in a VM)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    learned = array.array("Q", pages)
    mapped = _private_ranges()
    for index in range(0, len(learned), 2):
        start, length = learned[index], learned[index + 1]
        for low, high in mapped:  # only what is still mapped here
            begin, end = max(start, low), min(start + length, high)
            if begin < end and libc.madvise(begin, end - begin, MADV_POPULATE_WRITE) != 0:
                return  # a kernel before 5.14: nothing to gain here


def _run_child(
    cli: object, request: "dict[str, Any]", output_fd: int, report: socket.socket
) -> None:
    """In the forked child: run Kedro's CLI writing to the job's pipe, never return.

    The exit code is reported on `report` once the output is closed, so the worker
    does not wait for this process's teardown (its pages are unmapped after that)."""
    code = 1
    try:
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        sys.argv = ["kedro", *request["args"]]
        try:
            cli.main(args=request["args"], prog_name="kedro")  # type: ignore[attr-defined]
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # anything else must still end this child, never return
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(BaseException):
            pages = _written_pages() if request.get("learn") else b""
            if 0 < len(pages) <= MAX_MESSAGE:
                report.send(b"pages:" + pages)
        with contextlib.suppress(BaseException):
            os.close(1)
            os.close(2)
            report.send(b"exit:%d" % code)
        os._exit(code)


class _Child:
    """A forked run that waits, on its own socket, for its one request.

    Forked ahead of time (`prefork`), it first copies the pages `pages` lists."""

    def __init__(self, cli: object, channel: socket.socket, pages: bytes = b"") -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # A stop signal sent to the server's group while forking must not run the
        # server's handler in the child: it stays pending until the child's is default.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            code = 1
            try:
                _become_run(channel)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                if pages:
                    _prefault(pages)
                message, fds, _flags, _addr = socket.recv_fds(theirs, 65536, 1)
                if message and fds:
                    _run_child(cli, json.loads(message), fds[0], theirs)
                code = 0  # the server closed the socket: no run for this one
            finally:
                os._exit(code)
        theirs.close()
        self.socket = ours
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def start(self, request: "dict[str, Any]", fds: "list[int]") -> int:
        socket.send_fds(self.socket, [json.dumps(request).encode()], fds[:1])
        return self.pid

    def wait(self) -> "tuple[int, bytes | None]":
        """The run's exit code (as reported, else its exit status) and the pages it wrote
        (None unless it was asked to learn them)."""
        pages = None
        try:
            exited: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # before Python 3.9 or Linux 5.3: the status only
            exited = None
        try:
            while True:
                watched = [self.socket.fileno()] + ([] if exited is None else [exited])
                ready = select.select(watched, [], [])[0]
                message = self.socket.recv(MAX_MESSAGE + 64) if watched[0] in ready else b""
                if message.startswith(b"pages:"):
                    pages = message[len(b"pages:") :]
                elif message.startswith(b"exit:"):
                    return int(message[len(b"exit:") :]), pages
                else:  # it died without reporting, or closed its socket: its status says
                    break
        finally:
            if exited is not None:
                os.close(exited)
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return os.waitstatus_to_exitcode(status), pages

    def close(self) -> None:
        """Close the socket (an unused child then exits on its own) and reap the child."""
        self.socket.close()
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


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


def _learns(runs: int) -> bool:
    """Whether run number `runs` (from 0) reports the pages it wrote: the first few, then
    one in `LEARN_EVERY` (learning costs the run about a millisecond)."""
    return runs < LEARN_FIRST or runs % LEARN_EVERY == 0


def serve(channel: socket.socket, cli: object, grace: float, shortcuts: "set[str]") -> None:
    """Answer run requests until the caller closes the channel or asks us to stop."""
    prefork = "prefork" in shortcuts
    prefault = prefork and "prefault" in shortcuts
    spare: _Child | None = None
    running: _Child | None = None
    learned = b""
    runs = 0
    try:
        while True:
            if (
                prefork
                and spare is None
                and not select.select([channel], [], [], SPARE_AFTER_SECONDS)[0]
            ):
                spare = _Child(cli, channel, learned)
            message, fds, _flags, _addr = socket.recv_fds(channel, 65536, 1)
            if not message:
                return
            running, spare = spare or _Child(cli, channel), None
            request = {**json.loads(message), "learn": prefault and _learns(runs)}
            pid = running.start(request, fds)
            for fd in fds:
                os.close(fd)
            channel.send(json.dumps({"pid": pid}).encode())
            code, pages = running.wait()
            channel.send(json.dumps({"exit": code}).encode())
            running.close()
            running = None
            learned = learned if pages is None else pages
            runs += 1
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if running is not None and running.pid:
            _stop_child(running.pid, grace)
    finally:
        if spare is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(spare.pid, signal.SIGKILL)
            spare.close()


def _git_paths(project: Path) -> list[str]:
    """The files that change with a commit or a checkout: HEAD and the ref it names."""
    for directory in (project, *project.parents):
        git = directory / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text().strip()
            git = (directory / text.split(":", 1)[1].strip()) if text.startswith("gitdir:") else git
        if git.is_dir():
            paths = [git / "HEAD"]
            with contextlib.suppress(OSError):
                head = (git / "HEAD").read_text().strip()
                if head.startswith("ref:"):
                    ref = head.split(":", 1)[1].strip()
                    common = git / "commondir"
                    base = (git / common.read_text().strip()) if common.is_file() else git
                    paths += [git / ref, base / ref, base / "packed-refs"]
            return [str(path) for path in paths]
    return []


def main() -> int:
    channel = socket.socket(fileno=int(sys.argv[1]))
    grace = float(sys.argv[2])
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _raise_stop)
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        return 1
    shortcuts = set(SHORTCUTS if len(sys.argv) < 4 else sys.argv[3].split(",")) & set(SHORTCUTS)
    project = Path.cwd()
    # Installing a plugin changes a sys.path directory; a commit, a git file.
    watch = [path for path in sys.path if path and os.path.isdir(path)]
    watch += _git_paths(project) if "git" in shortcuts else []
    fingerprint = project_fingerprint(project, watch)  # before importing: edits re-warm
    try:
        cli = _warm(project, shortcuts)
        import kedro

        hello = {
            "ready": True,
            "fingerprint": fingerprint,
            "watch": watch,
            "kedro_version": kedro.__version__,
            "shortcuts": sorted(shortcuts),
        }
    except _Stop:
        return 1
    except BaseException as exc:  # report why warming failed; the caller runs cold
        hello = {"ready": False, "error": f"{type(exc).__name__}: {exc}"}
    channel.send(json.dumps(hello).encode())
    if hello["ready"]:
        serve(channel, cli, grace, shortcuts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
