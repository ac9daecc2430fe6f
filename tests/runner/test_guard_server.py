"""The worker's process guard: one interpreter per worker process starts every cold run."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from app.runner.cold import guard_server, start_cold
from app.runner.groups import ChannelChild
from app.runner.scripts.warm_server import _MissingModules, project_fingerprint


def _run(argv: list[str], tmp_path: Path) -> tuple[int, bytes, int]:
    output, output_end = os.pipe()
    try:
        process = start_cold(
            argv, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, output=output_end, grace=1
        )
    finally:
        os.close(output_end)
    returncode = process.wait(timeout=30)
    chunks = []
    while chunk := os.read(output, 65536):
        chunks.append(chunk)
    os.close(output)
    return returncode, b"".join(chunks), process.pid


def test_runs_share_one_guard_and_report_output_and_exit(tmp_path: Path) -> None:
    returncode, output, pid = _run(["sh", "-c", "pwd; echo $$; exit 3"], tmp_path)
    guard = guard_server(1.0).process.pid
    assert returncode == 3
    lines = output.decode().split()
    assert lines == [str(tmp_path), str(pid)]
    assert (
        _run([sys.executable, "-c", "import os; print(os.getpgid(0) == os.getpid())"], tmp_path)[1]
        == b"True\n"
    )
    assert guard_server(1.0).process.pid == guard  # the same guard served both runs


def test_a_run_killed_by_a_signal_reports_it(tmp_path: Path) -> None:
    assert _run(["sh", "-c", "kill -TERM $$"], tmp_path)[0] == -signal.SIGTERM


def test_a_missing_program_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="nonexistent"):
        _run(["/nonexistent/python"], tmp_path)
    assert _run(["true"], tmp_path)[0] == 0  # the guard still serves


def test_a_dead_guard_is_replaced(tmp_path: Path) -> None:
    first = guard_server(1.0).process
    first.kill()
    first.wait()
    assert _run(["true"], tmp_path)[0] == 0
    assert guard_server(1.0).process.pid != first.pid


def test_stopping_the_guard_stops_the_run_group(tmp_path: Path) -> None:
    output, output_end = os.pipe()
    process = start_cold(
        ["sleep", "60"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, output=output_end, grace=1
    )
    os.close(output_end)
    assert isinstance(process, ChannelChild)
    guard_server(1.0).process.send_signal(signal.SIGTERM)  # as PR_SET_PDEATHSIG would
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the run's group outlived its guard")
    os.close(output)


def test_missing_modules_are_refused_once_known() -> None:
    modules = _MissingModules()
    sys.meta_path.insert(0, modules.refuse)
    sys.meta_path.append(modules.record)
    try:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("no_such_module_for_the_gateway")
        assert modules.missing == {"no_such_module_for_the_gateway"}
        sys.meta_path.remove(modules.record)  # the next refusal is the first finder's alone
        with pytest.raises(ModuleNotFoundError, match="no_such_module_for_the_gateway"):
            importlib.import_module("no_such_module_for_the_gateway")
        assert importlib.import_module("json")  # found modules are never refused
    finally:
        sys.meta_path.remove(modules.refuse)
        if modules.record in sys.meta_path:
            sys.meta_path.remove(modules.record)


def test_the_fingerprint_follows_watched_directories(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    before = project_fingerprint(tmp_path / "project", [str(site)])
    assert project_fingerprint(tmp_path / "project", [str(site)]) == before
    time.sleep(0.01)
    (site / "plugin-1.0.dist-info").mkdir()  # a package installed
    assert project_fingerprint(tmp_path / "project", [str(site)]) != before


def test_the_fingerprint_follows_the_projects_files_but_not_its_bytecode(tmp_path: Path) -> None:
    nodes = tmp_path / "src" / "demo" / "pipelines" / "nodes.py"
    nodes.parent.mkdir(parents=True)
    nodes.write_text("def f(): return 1\n")
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "base" / "catalog.yml").write_text("{}\n")
    (tmp_path / "src" / "loop").symlink_to(tmp_path / "src", target_is_directory=True)
    before = project_fingerprint(tmp_path)

    cache = nodes.parent / "__pycache__"
    cache.mkdir()
    (cache / "nodes.cpython-311.pyc").write_bytes(b"compiled")
    assert project_fingerprint(tmp_path) == before

    nodes.write_text("def f(): return 20\n")  # an edit deep in the tree
    assert project_fingerprint(tmp_path) != before
    edited = project_fingerprint(tmp_path)
    (tmp_path / "conf" / "base" / "catalog.yml").unlink()
    assert project_fingerprint(tmp_path) != edited
