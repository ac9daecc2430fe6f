"""`kedro-gateway`: the gateway from the command line.

Exit status: 0 completed (or the command succeeded), 1 failed, 2 cancelled, 3 the
`--wait-timeout` deadline passed first, 4 usage, configuration, connection or API error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from kedro_gateway_client import __version__
from kedro_gateway_client._calls import Backoff
from kedro_gateway_client.client import GatewayClient
from kedro_gateway_client.config import resolve_settings
from kedro_gateway_client.errors import GatewayError, WaitTimeout
from kedro_gateway_client.models import Job, JobCreate, JobList, JobStatus, LogChunk
from kedro_gateway_client.params import (
    ParameterError,
    build_parameters,
    load_params_file,
    parse_assignment,
    parse_load_versions,
    split_names,
)

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4

EXIT_BY_STATUS = {
    JobStatus.completed: EXIT_COMPLETED,
    JobStatus.failed: EXIT_FAILED,
    JobStatus.cancelled: EXIT_CANCELLED,
}

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(job: Job) -> int:
    """0 completed (or not yet ended), 1 failed, 2 cancelled."""
    return EXIT_BY_STATUS.get(job.status, EXIT_COMPLETED)


@dataclass
class State:
    """Options gathered from the group and the subcommand; the client is made on first use."""

    options: dict[str, Any] = field(default_factory=dict)
    _client: GatewayClient | None = None

    @property
    def output(self) -> str:
        return str(self.options.get("output") or "text")

    @property
    def json(self) -> bool:
        return self.output == "json"

    def client(self) -> GatewayClient:
        if self._client is None:
            settings = resolve_settings(
                url=self.options.get("url"),
                api_key=self.options.get("api_key"),
                profile=self.options.get("profile"),
                config_file=self.options.get("config_file"),
            )
            self._client = GatewayClient(
                settings.url,
                api_key=settings.api_key,
                auth_scheme=settings.auth_scheme,
                timeout=settings.timeout,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and param.name:
        ctx.ensure_object(State).options[param.name] = value
    return value


def common_options(func: F) -> F:
    """Connection and output options, accepted before or after the subcommand."""
    decorators = [
        click.option(
            "--url",
            help="Gateway URL [env KEDRO_GATEWAY_URL].",
            callback=_store,
            expose_value=False,
        ),
        click.option(
            "--api-key",
            help="API key [env KEDRO_GATEWAY_API_KEY].",
            callback=_store,
            expose_value=False,
        ),
        click.option(
            "--profile",
            help="Config file table to use (default: [default]).",
            callback=_store,
            expose_value=False,
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="Config file (default ~/.config/kedro-gateway/config.toml).",
            callback=_store,
            expose_value=False,
        ),
        click.option(
            "--output",
            type=click.Choice(["text", "json"]),
            callback=_store,
            expose_value=False,
            help="Output format (default text).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def out(*, err: bool = False) -> Console:
    """Rich output; piped output is not cut to 80 columns."""
    stream = sys.stderr if err else sys.stdout
    width = None if stream.isatty() else 200
    return Console(stderr=err, highlight=False, width=width)


def echo_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    click.echo(message, err=True)


# --- the group ----------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@common_options
@click.version_option(__version__, prog_name="kedro-gateway")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Submit and follow Kedro pipeline runs on a Kedro job gateway.

    \b
    Exit status: 0 completed, 1 failed, 2 cancelled, 3 --wait-timeout passed,
    4 usage, configuration, connection or API error.
    """
    state = ctx.ensure_object(State)
    ctx.call_on_close(state.close)


def _state() -> State:
    return click.get_current_context().ensure_object(State)


# --- submit, rerun, wait -------------------------------------------------------------------


def wait_options(func: F) -> F:
    decorators = [
        click.option("--wait", "-w", "wait", is_flag=True, help="Wait for the job to end."),
        click.option(
            "--wait-timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Give up waiting after this long (exit 3); implies --wait.",
        ),
        click.option("--follow", "-f", is_flag=True, help="Stream the job's log; implies --wait."),
        click.option("--no-progress", is_flag=True, help="No progress bar while waiting."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _names(values: tuple[str, ...]) -> list[str] | None:
    names = split_names(values)
    return names or None


@cli.command()
@click.argument("pipeline")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter; dotted keys nest (model.lr=0.1); values are read as JSON "
    '(10, 0.5, true, null, [1,2], {"a":1}) else as text. Repeatable.',
)
@click.option(
    "--params-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Parameters from a YAML or JSON file (-p overrides).",
)
@click.option("--env", help="Kedro configuration environment.")
@click.option(
    "--tags", "-t", multiple=True, help="Run only nodes with these tags (comma-separated)."
)
@click.option("--runner", type=click.Choice(["SequentialRunner", "ThreadRunner", "ParallelRunner"]))
@click.option("--nodes", "node_names", multiple=True, help="Run only these nodes.")
@click.option("--from-nodes", multiple=True, help="Run from these nodes on.")
@click.option("--to-nodes", multiple=True, help="Run up to these nodes.")
@click.option("--from-inputs", multiple=True, help="Run from these datasets on.")
@click.option("--to-outputs", multiple=True, help="Run up to these datasets.")
@click.option(
    "--namespaces", "--namespace", "namespaces", multiple=True, help="Run only these namespaces."
)
@click.option(
    "--load-versions",
    multiple=True,
    metavar="DATASET:VERSION",
    help="Load this version of a dataset.",
)
@click.option("--queue", "-q", help="Queue (and so Kedro project) to run on (default: default).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="The job's own time limit on the server (a run past it fails).",
)
@click.option("--idempotency-key", help="Repeat-safe submit: the same key returns the first job.")
@click.option(
    "--option",
    "extra",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Any other JobCreate field the server accepts (value read as JSON).",
)
@wait_options
@common_options
def submit(
    pipeline: str,
    params: tuple[str, ...],
    params_file: str | None,
    env: str | None,
    tags: tuple[str, ...],
    runner: str | None,
    node_names: tuple[str, ...],
    from_nodes: tuple[str, ...],
    to_nodes: tuple[str, ...],
    from_inputs: tuple[str, ...],
    to_outputs: tuple[str, ...],
    namespaces: tuple[str, ...],
    load_versions: tuple[str, ...],
    queue: str | None,
    timeout: float | None,
    idempotency_key: str | None,
    extra: tuple[str, ...],
    wait: bool,
    wait_timeout: float | None,
    follow: bool,
    no_progress: bool,
) -> int:
    """Submit a run of PIPELINE."""
    try:
        request = build_job_create(
            pipeline,
            params=params,
            params_file=params_file,
            env=env,
            tags=tags,
            runner=runner,
            node_names=node_names,
            from_nodes=from_nodes,
            to_nodes=to_nodes,
            from_inputs=from_inputs,
            to_outputs=to_outputs,
            namespaces=namespaces,
            load_versions=load_versions,
            queue=queue,
            timeout=timeout,
            extra=extra,
        )
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    state = _state()
    job = state.client().submit(request, idempotency_key=idempotency_key)
    return _after_start(
        state, job, wait=wait, wait_timeout=wait_timeout, follow=follow, progress=not no_progress
    )


def build_job_create(
    pipeline: str,
    *,
    params: Iterable[str] = (),
    params_file: str | Path | None = None,
    env: str | None = None,
    tags: tuple[str, ...] = (),
    runner: str | None = None,
    node_names: tuple[str, ...] = (),
    from_nodes: tuple[str, ...] = (),
    to_nodes: tuple[str, ...] = (),
    from_inputs: tuple[str, ...] = (),
    to_outputs: tuple[str, ...] = (),
    namespaces: tuple[str, ...] = (),
    load_versions: tuple[str, ...] = (),
    queue: str | None = None,
    timeout: float | None = None,
    extra: Iterable[str] = (),
) -> JobCreate:
    """The submit body for the options given (only those set are sent)."""
    base = load_params_file(params_file) if params_file else None
    fields: dict[str, Any] = {"pipeline_name": pipeline}
    parameters = build_parameters(params, base)
    if parameters or params_file:
        fields["parameters"] = parameters
    lists = {
        "tags": tags,
        "node_names": node_names,
        "from_nodes": from_nodes,
        "to_nodes": to_nodes,
        "from_inputs": from_inputs,
        "to_outputs": to_outputs,
        "namespaces": namespaces,
    }
    for name, values in lists.items():
        names = _names(values)
        if names:
            fields[name] = names
    versions = parse_load_versions(load_versions)
    if versions:
        fields["load_versions"] = versions
    scalars = {"env": env, "runner": runner, "queue": queue, "timeout_seconds": timeout}
    fields.update({k: v for k, v in scalars.items() if v is not None})
    for item in extra:
        path, value = parse_assignment(item)
        if len(path) != 1:
            raise ParameterError(f"--option takes a top-level field name, not {'.'.join(path)!r}")
        fields[path[0]] = value
    try:
        return JobCreate(**fields)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


@cli.command()
@click.argument("job_id")
@click.option(
    "--from",
    "from_",
    type=click.Choice(["start", "failure"]),
    default="start",
    show_default=True,
    help="Run again from the start, or from where it failed.",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a parameter of the original run (as in submit).",
)
@wait_options
@common_options
def rerun(
    job_id: str,
    from_: str,
    params: tuple[str, ...],
    wait: bool,
    wait_timeout: float | None,
    follow: bool,
    no_progress: bool,
) -> int:
    """Run job JOB_ID again, as a new job."""
    state = _state()
    client = state.client()
    changes: dict[str, Any] = {}
    if params:
        original = client.get(job_id)
        try:
            changes["parameters"] = build_parameters(params, original.parameters)
        except ParameterError as exc:
            raise click.UsageError(str(exc)) from None
    job = client.rerun(job_id, from_="failure" if from_ == "failure" else "start", **changes)
    return _after_start(
        state, job, wait=wait, wait_timeout=wait_timeout, follow=follow, progress=not no_progress
    )


@cli.command(name="wait")
@click.argument("job_id")
@click.option(
    "--timeout",
    "wait_timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up after this long (exit 3).",
)
@click.option("--follow", "-f", is_flag=True, help="Stream the job's log while waiting.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@common_options
def wait_command(job_id: str, wait_timeout: float | None, follow: bool, no_progress: bool) -> int:
    """Wait for job JOB_ID to end; the exit status says how it ended."""
    state = _state()
    return _await_job(state, job_id, wait_timeout, follow=follow, progress=not no_progress)


def _after_start(
    state: State, job: Job, *, wait: bool, wait_timeout: float | None, follow: bool, progress: bool
) -> int:
    note(f"job {job.id} {job.status}: {job.pipeline_name} on queue {job.queue}")
    if not (wait or follow or wait_timeout is not None):
        if state.json:
            echo_json(job)
        else:
            click.echo(job.id)
        return EXIT_COMPLETED
    return _await_job(state, job.id, wait_timeout, follow=follow, progress=progress)


def _await_job(
    state: State, job_id: str, wait_timeout: float | None, *, follow: bool, progress: bool
) -> int:
    client = state.client()
    try:
        if follow:
            _print_log(client.follow_logs(job_id, timeout=wait_timeout), to_stderr=state.json)
            job = client.get(job_id)
        else:
            job = _wait_with_progress(client, job_id, wait_timeout, progress=progress)
    except WaitTimeout as exc:
        last = exc.job if isinstance(exc.job, Job) else client.get(job_id)
        note(f"gave up waiting: {exc.message}")
        _show_job(state, last)
        return EXIT_TIMEOUT
    _show_job(state, job)
    return exit_code_for(job)


def _wait_with_progress(
    client: GatewayClient, job_id: str, timeout: float | None, *, progress: bool
) -> Job:
    backoff = Backoff(initial=0.2, maximum=1.0)
    if not progress:
        return client.wait(job_id, timeout=timeout, backoff=backoff)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("nodes"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out(err=True), transient=False) as bar:
        task = bar.add_task(job_id[:8], total=None)

        known_total: dict[str, int | None] = {}

        def update(job: Job) -> None:
            running = ", ".join(job.progress.running_node_names)
            label = f"{job.pipeline_name} {job.status}" + (f": {running}" if running else "")
            total = job.progress.total_nodes
            if total is None and not job.is_terminal:
                if "total" not in known_total:
                    known_total["total"] = _planned_nodes(client, job)
                total = known_total["total"]
            bar.update(task, description=label, total=total, completed=job.progress.completed_nodes)

        return client.wait(job_id, timeout=timeout, on_update=update, backoff=backoff)


def _planned_nodes(client: GatewayClient, job: Job) -> int | None:
    """The pipeline's node count, while the server does not know the run's total yet.

    Only for runs of the whole pipeline: any node filter makes the count unknowable here.
    """
    filters = (
        job.tags,
        job.node_names,
        job.from_nodes,
        job.to_nodes,
        job.from_inputs,
        job.to_outputs,
        job.namespaces,
    )
    if any(filters):
        return None
    try:
        nodes = client.pipeline(job.pipeline_name, queue=job.queue).nodes
    except GatewayError:
        return None
    return len(nodes) if nodes else None


def _print_log(chunks: Iterable[LogChunk], *, to_stderr: bool) -> None:
    stream = sys.stderr if to_stderr else sys.stdout
    for chunk in chunks:
        if chunk.data:
            stream.write(chunk.data)
            stream.flush()


# --- reading ------------------------------------------------------------------------------


@cli.command()
@click.argument("job_id")
@common_options
def status(job_id: str) -> int:
    """Show job JOB_ID; exit 1 if it failed, 2 if cancelled, else 0."""
    state = _state()
    job = state.client().get(job_id)
    _show_job(state, job)
    return exit_code_for(job)


def _show_job(state: State, job: Job) -> None:
    if state.json:
        echo_json(job)
        return
    progress = f"{job.progress.completed_nodes}/{job.progress.total_nodes or '?'} nodes"
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("pipeline", job.pipeline_name),
        ("status", job.status.value),
        ("progress", progress),
        ("running", ", ".join(job.progress.running_node_names) or None),
        ("queue", job.queue),
        ("parameters", json.dumps(job.parameters, ensure_ascii=False) if job.parameters else None),
        ("created", job.created_at.isoformat()),
        ("started", job.started_at.isoformat() if job.started_at else None),
        ("completed", job.completed_at.isoformat() if job.completed_at else None),
        ("time", f"{job.execution_time:.2f} s" if job.execution_time is not None else None),
        ("exit code", job.exit_code),
        ("error", job.error_message),
        ("worker", job.worker),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        if value is not None:
            table.add_row(name, str(value))
    out().print(table)


@cli.command(name="list")
@click.option("--status", "job_status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--pipeline", "pipeline_name", help="Only runs of this pipeline.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many jobs to show.",
)
@click.option("--all", "show_all", is_flag=True, help="Every job (follows all pages).")
@click.option("--cursor", help="Start from this page cursor (a previous next_cursor).")
@common_options
def list_command(
    job_status: str | None,
    pipeline_name: str | None,
    limit: int,
    show_all: bool,
    cursor: str | None,
) -> int:
    """List jobs, newest first."""
    state = _state()
    client = state.client()
    items: list[Job] = []
    next_cursor = cursor
    page_size = 100 if show_all else min(limit, 100)
    for page in client.iter_pages(
        status=job_status, pipeline_name=pipeline_name, page_size=page_size, cursor=cursor
    ):
        room = len(page.items) if show_all else limit - len(items)
        items.extend(page.items[:room])
        next_cursor = page.next_cursor
        if not show_all and len(items) >= limit:
            break
    if state.json:
        echo_json(JobList(items=items, next_cursor=next_cursor))
        return EXIT_COMPLETED
    table = Table(
        Column("id", no_wrap=True), "pipeline", "status", "nodes", "created", "time", box=None
    )
    for job in items:
        total = job.progress.total_nodes
        table.add_row(
            job.id,
            job.pipeline_name,
            job.status.value,
            f"{job.progress.completed_nodes}/{total if total is not None else '?'}",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{job.execution_time:.1f}s" if job.execution_time is not None else "",
        )
    out().print(table)
    if next_cursor and not show_all:
        note(f"more: --cursor {next_cursor}")
    return EXIT_COMPLETED


@cli.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the job ends.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Start at this byte.")
@common_options
def logs(job_id: str, follow: bool, offset: int) -> int:
    """Print the output of job JOB_ID (with -f: exit status as for wait)."""
    state = _state()
    client = state.client()
    if follow:
        chunks = client.follow_logs(job_id, offset=offset)
        if state.json:
            for chunk in chunks:
                click.echo(chunk.model_dump_json())
        else:
            _print_log(chunks, to_stderr=False)
        return exit_code_for(client.get(job_id))
    first = chunk = client.logs(job_id, offset=offset)
    data = [chunk.data]
    while chunk.data and not chunk.complete and chunk.next_offset != chunk.offset:
        chunk = client.logs(job_id, offset=chunk.next_offset)
        data.append(chunk.data)
    text = "".join(data)
    if state.json:
        echo_json(
            LogChunk(
                offset=first.offset,
                next_offset=chunk.next_offset,
                data=text,
                complete=chunk.complete,
            )
        )
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_COMPLETED


@cli.command()
@click.argument("job_id")
@common_options
def events(job_id: str) -> int:
    """The state transitions of job JOB_ID."""
    state = _state()
    found = state.client().events(job_id)
    if state.json:
        echo_json(found)
        return EXIT_COMPLETED
    table = Table("at", "status", "attempt", "worker", "reason", box=None)
    for event in found.items:
        table.add_row(
            event.at.isoformat(),
            event.status.value,
            str(event.attempt),
            event.worker or "",
            event.reason or "",
        )
    out().print(table)
    return EXIT_COMPLETED


@cli.command()
@click.argument("job_id")
@click.option("--wait", "-w", is_flag=True, help="Wait until the job has ended.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up waiting after this long (exit 3); implies --wait.",
)
@common_options
def cancel(job_id: str, wait: bool, wait_timeout: float | None) -> int:
    """Cancel job JOB_ID (with --wait: exit 2 once it is cancelled)."""
    state = _state()
    job = state.client().cancel(job_id)
    if wait or wait_timeout is not None:
        note(f"cancel requested for job {job.id}")
        return _await_job(state, job.id, wait_timeout, follow=False, progress=False)
    _show_job(state, job)
    return EXIT_COMPLETED


# --- project, workers, health -------------------------------------------------------------


@cli.command()
@click.argument("name", required=False)
@click.option("--queue", "-q", help="The queue whose project to read.")
@common_options
def pipelines(name: str | None, queue: str | None) -> int:
    """The pipelines of the project behind a queue (with NAME: its nodes)."""
    state = _state()
    client = state.client()
    if name:
        found = client.pipeline(name, queue=queue)
        if state.json:
            echo_json(found)
            return EXIT_COMPLETED
        table = Table("node", "func", "inputs", "outputs", "tags", box=None)
        for node in found.nodes or []:
            table.add_row(
                node.name,
                node.func,
                ", ".join(node.inputs),
                ", ".join(node.outputs),
                ", ".join(node.tags),
            )
        out().print(table)
        return EXIT_COMPLETED
    listed = client.pipelines(queue=queue)
    if state.json:
        echo_json(listed)
        return EXIT_COMPLETED
    if listed.refreshed_at is None:
        note(f"no worker of queue {listed.queue!r} has reported its project yet")
    table = Table("pipeline", "nodes", box=None)
    for item in listed.items:
        table.add_row(item.name, str(len(item.nodes)) if item.nodes is not None else "?")
    out().print(table)
    return EXIT_COMPLETED


@cli.command()
@common_options
def workers() -> int:
    """The workers the gateway has seen."""
    state = _state()
    found = state.client().workers()
    if state.json:
        echo_json(found)
        return EXIT_COMPLETED
    table = Table("name", "alive", "queues", "running", "kedro", "mode", "last seen", box=None)
    for w in found.items:
        table.add_row(
            w.name,
            "yes" if w.alive else "no",
            ",".join(w.queues),
            str(w.running_jobs),
            w.kedro_version or "",
            w.runner_mode or "",
            w.last_seen_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    out().print(table)
    return EXIT_COMPLETED


@cli.command()
@common_options
def health() -> int:
    """Readiness of the gateway; exit 1 when degraded."""
    state = _state()
    report = state.client().health()
    if state.json:
        echo_json(report)
    else:
        table = Table("check", "ok", "details", box=None)
        for name, check in report.checks.items():
            details = {k: v for k, v in (check.model_extra or {}).items()}
            table.add_row(
                name,
                "yes" if check.ok else "NO",
                json.dumps(details, ensure_ascii=False, default=str) if details else "",
            )
        out().print(f"status: {report.status}")
        out().print(table)
    return EXIT_COMPLETED if report.ok else EXIT_FAILED


# --- entry point --------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    """Run the command line on `argv`; returns the exit status instead of exiting."""
    try:
        result = cli.main(args=argv, prog_name="kedro-gateway", standalone_mode=False)
    except click.exceptions.Abort:
        note("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except WaitTimeout as exc:
        note(f"error: {exc}")
        return EXIT_TIMEOUT
    except GatewayError as exc:
        note(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        note("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    return result if isinstance(result, int) else EXIT_COMPLETED


def main() -> None:
    sys.exit(run())
