"""`kedro gateway run`: a Kedro plugin that runs `kedro run` on a Kedro job gateway.

Registered in the `kedro.project_commands` entry point group, so inside a Kedro project
`kedro gateway run --pipeline NAME --params a=1,b=2` takes `kedro run`'s flags, submits
the run to the gateway and follows it (log, then the final state). Settings and exit
status are the `kedro-gateway` command line's: the flags are turned into a
`kedro-gateway submit` command line and run by it.

Only click is imported here: Kedro loads every plugin's entry point on each `kedro`
command, so the client (httpx, pydantic, rich) is imported when `gateway run` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

EXIT_ERROR = 4  # as `kedro-gateway`: usage, configuration, connection or API error
DEFAULT_PIPELINE = "__default__"
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def split_params(value: str) -> list[str]:
    """`kedro run --params` items: `a=1,b.c=x` → ["a=1", "b.c=x"] (empty items dropped).

    As in Kedro, each item is split at the commas, so a value cannot hold one; the items
    are then read as `kedro-gateway submit -p` reads them (JSON-typed values, dotted keys
    nest).
    """
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(
                f"invalid --params item {item!r}: expected KEY=VALUE (items separated by commas)"
            )
    return items


def _pipeline_name(pipeline: str | None, pipelines: str | None) -> str:
    if pipeline and pipelines:
        raise click.UsageError("options '--pipeline' and '--pipelines' cannot be used together")
    names = [name.strip() for name in (pipelines or "").split(",") if name.strip()]
    if len(set(names)) > 1:
        raise click.UsageError(
            f"the gateway runs one pipeline per job; got {', '.join(names)} "
            "(run them one at a time)"
        )
    return pipeline or (names[0] if names else DEFAULT_PIPELINE)


def _repeat(flag: str, values: Iterable[str | None]) -> list[str]:
    return [f"{flag}={value}" for value in values if value]


@click.command(name="run", context_settings=CONTEXT_SETTINGS)
@click.option("--pipeline", "-p", help="Name of the registered pipeline to run.")
@click.option(
    "--pipelines", help="Pipeline to run (Kedro's comma-separated form; one name only here)."
)
@click.option(
    "--params",
    default="",
    metavar="KEY=VALUE,...",
    help="Run-time parameters, comma-separated; dotted keys nest (model.lr=0.1); values are "
    'read as JSON (10, 0.5, true, null, "10") else as text.',
)
@click.option("--env", "-e", help="Kedro configuration environment.")
@click.option("--tags", "-t", multiple=True, help="Run only nodes with these tags.")
@click.option("--nodes", "-n", "node_names", multiple=True, help="Run only these nodes.")
@click.option("--from-nodes", multiple=True, help="Run from these nodes on.")
@click.option("--to-nodes", multiple=True, help="Run up to these nodes.")
@click.option("--from-inputs", multiple=True, help="Run from these datasets on.")
@click.option("--to-outputs", multiple=True, help="Run up to these datasets.")
@click.option(
    "--runner",
    "-r",
    help="SequentialRunner, ThreadRunner or ParallelRunner (the gateway's default if unset).",
)
@click.option(
    "--namespaces", "--namespace", "-ns", "namespaces", multiple=True, help="Run these namespaces."
)
@click.option(
    "--load-versions",
    "-lv",
    multiple=True,
    metavar="DATASET:VERSION",
    help="Load this version of a dataset.",
)
@click.option("--queue", "-q", help="Gateway queue (and so Kedro project) to run on.")
@click.option("--url", help="Gateway URL [env KEDRO_GATEWAY_URL].")
@click.option("--api-key", help="API key [env KEDRO_GATEWAY_API_KEY].")
@click.option("--profile", help="Table of the client's config file to use.")
@click.option(
    "--no-follow",
    is_flag=True,
    help="Do not stream the log: print the job id once submitted (with --wait-timeout: "
    "wait for the end with a progress bar).",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop waiting after this long (exit 3); the job keeps running.",
)
def gateway_run(
    pipeline: str | None,
    pipelines: str | None,
    params: str,
    env: str | None,
    tags: tuple[str, ...],
    node_names: tuple[str, ...],
    from_nodes: tuple[str, ...],
    to_nodes: tuple[str, ...],
    from_inputs: tuple[str, ...],
    to_outputs: tuple[str, ...],
    runner: str | None,
    namespaces: tuple[str, ...],
    load_versions: tuple[str, ...],
    queue: str | None,
    url: str | None,
    api_key: str | None,
    profile: str | None,
    no_follow: bool,
    wait_timeout: float | None,
) -> int:
    """Run a pipeline on the Kedro job gateway, with `kedro run`'s flags.

    \b
    Exit status: 0 completed, 1 failed, 2 cancelled, 3 --wait-timeout passed,
    4 usage, configuration, connection or API error.
    """
    argv = submit_argv(
        _pipeline_name(pipeline, pipelines),
        params=split_params(params),
        env=env,
        tags=tags,
        node_names=node_names,
        from_nodes=from_nodes,
        to_nodes=to_nodes,
        from_inputs=from_inputs,
        to_outputs=to_outputs,
        runner=runner,
        namespaces=namespaces,
        load_versions=load_versions,
        queue=queue,
        url=url,
        api_key=api_key,
        profile=profile,
        follow=not no_follow,
        wait_timeout=wait_timeout,
    )
    from kedro_gateway_client.cli import run

    return run(argv)


def submit_argv(
    pipeline: str,
    *,
    params: Iterable[str] = (),
    env: str | None = None,
    tags: Iterable[str] = (),
    node_names: Iterable[str] = (),
    from_nodes: Iterable[str] = (),
    to_nodes: Iterable[str] = (),
    from_inputs: Iterable[str] = (),
    to_outputs: Iterable[str] = (),
    runner: str | None = None,
    namespaces: Iterable[str] = (),
    load_versions: Iterable[str] = (),
    queue: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    follow: bool = True,
    wait_timeout: float | None = None,
) -> list[str]:
    """The `kedro-gateway submit` arguments for a `kedro gateway run` (`--flag=value` forms,
    so a value starting with `-` stays a value)."""
    argv = ["submit", pipeline]
    argv += _repeat("--param", params)
    argv += _repeat("--env", [env])
    argv += _repeat("--tags", tags)
    argv += _repeat("--nodes", node_names)
    argv += _repeat("--from-nodes", from_nodes)
    argv += _repeat("--to-nodes", to_nodes)
    argv += _repeat("--from-inputs", from_inputs)
    argv += _repeat("--to-outputs", to_outputs)
    argv += _repeat("--runner", [runner])
    argv += _repeat("--namespaces", namespaces)
    argv += _repeat("--load-versions", load_versions)
    argv += _repeat("--queue", [queue])
    argv += _repeat("--url", [url])
    argv += _repeat("--api-key", [api_key])
    argv += _repeat("--profile", [profile])
    if wait_timeout is not None:
        argv.append(f"--wait-timeout={wait_timeout}")
    if follow:
        argv.append("--follow")
    return argv


def invoke_run(args: list[str]) -> int:
    """Parse and run `kedro gateway run ARGS`; a usage error is exit 4, as in `kedro-gateway`."""
    try:
        result = gateway_run.main(args=args, prog_name="kedro gateway run", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


# --- what Kedro loads ----------------------------------------------------------------------


@click.group(name="Kedro gateway")
def commands() -> None:
    """Kedro job gateway commands (the `kedro.project_commands` entry point)."""


@commands.group(name="gateway", context_settings=CONTEXT_SETTINGS)
def gateway() -> None:
    """Run pipelines on a Kedro job gateway (see also the `kedro-gateway` command)."""


@gateway.command(
    name="run",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(args: tuple[str, ...]) -> None:
    """Run a pipeline on the gateway, with `kedro run`'s flags (see --help)."""
    sys.exit(invoke_run(list(args)))
