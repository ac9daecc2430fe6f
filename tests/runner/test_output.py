"""The output parser on Kedro's own lines, as `kedro run` prints them with the gateway's
logging config (copied from real runs of the example project)."""

from __future__ import annotations

from app.runner.output import MAX_LINE_CHARS, TAIL_LINES, OutputParser

SEQUENTIAL_RUN = b"""\
2026-12-03 13:13:32,598 INFO kedro.io.data_catalog: Loading data from params:initial_value (MemoryDataset)...
2026-12-03 13:13:32,603 INFO kedro.pipeline.node: Running node: add_five: add_five([params:initial_value]) -> [plus_five]
2026-12-03 13:13:32,603 INFO demo_project.nodes: add_five: value = 15
2026-12-03 13:13:32,604 INFO kedro.runner.sequential_runner: Completed node: add_five
2026-12-03 13:13:32,604 INFO kedro.runner.sequential_runner: Completed 1 out of 3 tasks
2026-12-03 13:13:32,605 INFO kedro.pipeline.node: Running node: multiply_by_two: multiply_by_two([plus_five]) -> [times_two]
2026-12-03 13:13:32,605 INFO kedro.runner.sequential_runner: Completed node: multiply_by_two
2026-12-03 13:13:32,605 INFO kedro.runner.sequential_runner: Completed 2 out of 3 tasks
2026-12-03 13:13:32,606 INFO kedro.pipeline.node: Running node: subtract_ten: subtract_ten([times_two]) -> [result]
"""  # noqa: E501

FAILED_RUN = b"""\
2026-12-03 13:13:40,100 INFO kedro.pipeline.node: Running node: boom: boom([params:initial_value]) -> None
2026-12-03 13:13:40,101 ERROR kedro.pipeline.node: Node boom: boom([params:initial_value]) -> None failed with error:
intentional failure in node boom (initial_value=10)
Traceback (most recent call last):
  File "nodes.py", line 52, in boom
ValueError: intentional failure in node boom (initial_value=10)
2026-12-03 13:13:40,102 WARNING kedro.runner.sequential_runner: There are 1 nodes that have not run.
You can resume the pipeline run from the nearest nodes with persisted inputs by adding the following argument to your previous command:
  --from-nodes "boom"
"""  # noqa: E501


def test_progress_follows_running_and_completed_nodes() -> None:
    parser = OutputParser()
    assert parser.feed(SEQUENTIAL_RUN)
    progress = parser.progress
    assert progress.completed_nodes == ["add_five", "multiply_by_two"]
    assert progress.running_nodes == ["subtract_ten"]
    assert progress.total_nodes == 3
    assert set(parser.node_seconds) == {"add_five", "multiply_by_two"}
    assert parser.exception_line is None


def test_lines_split_across_reads_are_parsed_once_whole() -> None:
    parser = OutputParser()
    for start in range(0, len(SEQUENTIAL_RUN), 7):  # 7-byte reads cut every line
        parser.feed(SEQUENTIAL_RUN[start : start + 7])
    assert parser.progress.completed_nodes == ["add_five", "multiply_by_two"]
    assert parser.progress.running_nodes == ["subtract_ten"]


def test_a_batch_without_kedro_markers_changes_nothing() -> None:
    parser = OutputParser()
    assert not parser.feed(b"plain output of a node\n" * 100)
    assert parser.progress.completed_nodes == []
    assert parser.last_line() == "plain output of a node"


def test_the_failure_message_is_the_exception_line_not_the_resume_hint() -> None:
    parser = OutputParser()
    parser.feed(FAILED_RUN)
    parser.finish()
    assert (
        parser.exception_line == "ValueError: intentional failure in node boom (initial_value=10)"
    )
    assert parser.last_line() == '--from-nodes "boom"'


def test_an_unterminated_last_line_counts_once_the_run_ends() -> None:
    parser = OutputParser()
    parser.feed(b"x\nRuntimeError: no newline at the end")
    assert parser.exception_line is None
    parser.finish()
    assert parser.exception_line == "RuntimeError: no newline at the end"


def test_the_tail_keeps_the_last_lines_each_cut_to_a_bound() -> None:
    parser = OutputParser()
    parser.feed(b"".join(b"line %d\n" % index for index in range(500)))
    parser.feed(b"y" * (MAX_LINE_CHARS * 3) + b"\n")
    assert len(parser.tail) == TAIL_LINES
    assert parser.tail[0] == f"line {500 - TAIL_LINES + 1}"
    assert parser.tail[-1] == "y" * MAX_LINE_CHARS


def test_undecodable_bytes_do_not_stop_parsing() -> None:
    parser = OutputParser()
    parser.feed(b"\xff\xfe INFO kedro.runner: Completed node: caf\xc3\xa9\n")
    assert parser.progress.completed_nodes == ["café"]


# Measured on Kedro 0.19.14 and 1.7.0 (the same lines on both, except the unnamed nodes'
# `Completed node:` names): `Running node:` prints `str(node)`, without the namespace,
# and without a name for an unnamed node.
NAMESPACED_RUN = b"""\
2026-12-03 13:10:21,438 INFO kedro.pipeline.node: Running node: add_five: add_five([params:initial_value]) -> [ns1.plus_five]
2026-12-03 13:10:21,440 INFO kedro.runner.sequential_runner: Completed node: ns1.add_five
2026-12-03 13:10:21,441 INFO kedro.pipeline.node: Running node: add_five: add_five([params:initial_value]) -> [ns2.plus_five]
"""  # noqa: E501
UNNAMED_RUN_0_19 = b"""\
2026-12-03 13:11:46,105 INFO kedro.pipeline.node: Running node: add_five([params:initial_value]) -> [plus_five]
2026-12-03 13:11:46,107 INFO kedro.runner.sequential_runner: Completed node: add_five([params:initial_value]) -> [plus_five]
2026-12-03 13:11:46,108 INFO kedro.pipeline.node: Running node: multiply_by_two([plus_five]) -> [times_two]
2026-12-03 13:11:46,109 INFO kedro.runner.sequential_runner: Completed node: nsx.multiply_by_two([plus_five]) -> [times_two]
"""  # noqa: E501
UNNAMED_RUN_1_7 = b"""\
2026-12-03 13:11:47,111 INFO kedro.pipeline.node: Running node: add_five([params:initial_value]) -> [plus_five]
2026-12-03 13:11:47,112 INFO kedro.runner.sequential_runner: Completed node: add_five__0bde4d38
2026-12-03 13:11:47,112 INFO kedro.pipeline.node: Running node: multiply_by_two([plus_five]) -> [times_two]
"""  # noqa: E501
# What the inspector reports for these nodes: `str(node)` -> `node.name`.
NODE_NAMES = {
    "add_five: add_five([params:initial_value]) -> [ns1.plus_five]": "ns1.add_five",
    "add_five: add_five([params:initial_value]) -> [ns2.plus_five]": "ns2.add_five",
    "add_five([params:initial_value]) -> [plus_five]": "add_five__0bde4d38",
    "multiply_by_two([plus_five]) -> [times_two]": "nsx.multiply_by_two__d283c424",
}


def test_namespaced_nodes_are_named_in_full_and_closed_when_they_complete() -> None:
    parser = OutputParser(NODE_NAMES)
    parser.feed(NAMESPACED_RUN)
    assert parser.progress.completed_nodes == ["ns1.add_five"]
    assert parser.progress.running_nodes == ["ns2.add_five"]
    assert set(parser.node_seconds) == {"ns1.add_five"}


def test_unnamed_nodes_are_named_as_kedro_1_names_them() -> None:
    parser = OutputParser(NODE_NAMES)
    parser.feed(UNNAMED_RUN_1_7)
    assert parser.progress.completed_nodes == ["add_five__0bde4d38"]
    assert parser.progress.running_nodes == ["nsx.multiply_by_two__d283c424"]
    assert set(parser.node_seconds) == {"add_five__0bde4d38"}


def test_without_the_projects_nodes_completions_still_close_what_they_name() -> None:
    """A short name is closed by its namespaced completion; 0.19's unnamed ones by text."""
    parser = OutputParser()
    parser.feed(NAMESPACED_RUN)
    assert parser.progress.running_nodes == ["add_five"]  # ns2's, still running
    assert set(parser.node_seconds) == {"ns1.add_five"}
    parser = OutputParser()
    parser.feed(UNNAMED_RUN_0_19)
    assert parser.progress.running_nodes == []
    assert set(parser.node_seconds) == {
        "add_five([params:initial_value]) -> [plus_five]",
        "nsx.multiply_by_two([plus_five]) -> [times_two]",
    }


def test_kedro_0_19s_namespace_notice_is_not_a_failure_message() -> None:
    parser = OutputParser()
    parser.feed(
        b"DeprecationWarning: 'kedro run' flag '--namespace' is deprecated and will be replaced"
        b" with '--namespaces' from Kedro 1.0.0 to allow running multiple namespaces. \n"
    )
    parser.finish()
    assert parser.exception_line is None
