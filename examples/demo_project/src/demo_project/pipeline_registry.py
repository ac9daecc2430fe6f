"""Project pipelines."""

from __future__ import annotations

from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node

from demo_project import nodes


def _arithmetic() -> Pipeline:
    """``initial_value`` -> add 5 -> multiply by 2 -> subtract 10."""
    return Pipeline(
        [
            Node(
                nodes.add_five,
                "params:initial_value",
                "plus_five",
                name="add_five",
                tags="first",
            ),
            Node(
                nodes.multiply_by_two,
                "plus_five",
                "times_two",
                name="multiply_by_two",
                tags="rest",
            ),
            Node(
                nodes.subtract_ten,
                "times_two",
                "result",
                name="subtract_ten",
                tags="rest",
            ),
        ]
    )


def _resumable() -> Pipeline:
    """Two halves with a persisted dataset between them; the second can fail."""
    return Pipeline(
        [
            Node(nodes.resume_start, "params:initial_value", "resume_numbers", name="first_step"),
            Node(nodes.resume_extend, "resume_numbers", "resume_prepared", name="second_step"),
            Node(
                nodes.resume_extend_or_fail,
                ["resume_prepared", "params:resume.fail"],
                "resume_checked",
                name="third_step",
            ),
            Node(nodes.resume_report, "resume_checked", None, name="fourth_step"),
        ]
    )


def _memory_resume() -> Pipeline:
    """The failing node reads a memory dataset, so a resume starts at its producer."""
    return Pipeline(
        [
            Node(nodes.resume_start, "params:initial_value", "resume_loaded", name="load_step"),
            Node(nodes.resume_extend, "resume_loaded", "resume_produced", name="produce_step"),
            Node(
                nodes.resume_extend_or_fail,
                ["resume_produced", "params:resume.fail"],
                "resume_consumed",
                name="consume_step",
            ),
            Node(nodes.resume_report, "resume_consumed", None, name="report_step"),
        ]
    )


def _chain(length: int) -> Pipeline:
    """``initial_value`` -> add 5, ``length`` times: ``step_01`` ... ``step_<length>``."""
    names = [f"step_{index:02d}" for index in range(1, length + 1)]
    inputs = ["params:initial_value", *names[:-1]]
    return Pipeline(
        [
            Node(nodes.add_five, source, name, name=name)
            for source, name in zip(inputs, names, strict=True)
        ]
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines by name."""
    arithmetic = _arithmetic()
    return {
        "__default__": arithmetic,
        "arithmetic": arithmetic,
        "chain": _chain(20),
        "fail": Pipeline([Node(nodes.boom, "params:initial_value", None, name="boom")]),
        "slow": Pipeline(
            [
                Node(
                    nodes.sleep_with_progress,
                    ["params:slow.seconds", "params:slow.interval"],
                    None,
                    name="sleep_with_progress",
                )
            ]
        ),
        "echo": Pipeline([Node(nodes.echo_parameters, "parameters", None, name="echo_parameters")]),
        "chatty": Pipeline([Node(nodes.print_megabytes, "params:chatty.mb", None, name="chatty")]),
        "environ": Pipeline(
            [Node(nodes.print_environment, "params:initial_value", None, name="environ")]
        ),
        "resumable": _resumable(),
        "memory_resume": _memory_resume(),
        "children": Pipeline(
            [
                Node(
                    nodes.spawn_children,
                    "params:children.seconds",
                    None,
                    name="spawn_children",
                )
            ]
        ),
    }
