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
