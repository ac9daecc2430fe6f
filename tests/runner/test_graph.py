"""The pipeline graph: Kedro's run filters and its resume point, on snapshot nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from app.runner.graph import Graph, InvalidRunOptions, plan_resume
from app.schemas.jobs import RunOptions
from app.schemas.pipelines import Pipeline, PipelineNode


def _node(
    name: str, inputs: list[str], outputs: list[str], tags: Sequence[str] = ()
) -> PipelineNode:
    return PipelineNode(name=name, func="f", inputs=inputs, outputs=outputs, tags=list(tags))


# raw -> a -> A (persisted) -> b -> B (memory) -> c -> C (memory) -> d
#                                    \-> e (reads params only, then B@pandas) -> E
NODES = [
    _node("a", ["raw", "params:x"], ["A"], ["first"]),
    _node("b", ["A"], ["B@json"], ["second"]),
    _node("c", ["B@json"], ["C"], ["second"]),
    _node("e", ["B@pandas"], ["E"], ["second"]),
    _node("d", ["C", "E"], [], ["second"]),
]
GRAPH = Graph(NODES)


def _pipeline(persisted: list[str] | None) -> Pipeline:
    return Pipeline(name="p", nodes=NODES, persisted_datasets=persisted)


@pytest.mark.parametrize(
    ("options", "selected"),
    [
        ({}, ["a", "b", "c", "e", "d"]),
        ({"tags": ["first"]}, ["a"]),
        ({"from_nodes": ["b"]}, ["b", "c", "e", "d"]),
        ({"to_nodes": ["c"]}, ["a", "b", "c"]),
        ({"from_nodes": ["b"], "to_nodes": ["c"]}, ["b", "c"]),
        ({"node_names": ["a", "d"]}, ["a", "d"]),
        ({"from_inputs": ["B"]}, ["c", "e", "d"]),
        ({"to_outputs": ["A"]}, ["a"]),
    ],
)
def test_selection_mirrors_kedro_pipeline_filter(
    options: dict[str, Any], selected: list[str]
) -> None:
    assert GRAPH.selected(RunOptions(**options)) == selected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"node_names": ["nope"]}, "node_names: 'nope'"),
        ({"from_nodes": ["a", "zz"]}, "from_nodes: 'zz'"),
        ({"to_nodes": ["x"], "tags": ["t"]}, "to_nodes: 'x'; tags: 't'"),
        ({"from_inputs": ["nothing"]}, "from_inputs: 'nothing'"),
        ({"namespaces": ["ns"]}, "namespaces: 'ns'"),
        ({"tags": ["first"], "node_names": ["d"]}, "select no node"),
    ],
)
def test_unknown_names_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRunOptions, match=message):
        GRAPH.selected(RunOptions(**options))


def test_resume_after_a_persisted_dataset_starts_at_the_failed_node() -> None:
    # a and b done; c failed: B is a memory dataset, so b must run again (Kedro's rule).
    plan = plan_resume(_pipeline(["A"]), RunOptions(), done=["a", "b"])
    assert plan.from_nodes == ["b"]
    assert plan.nodes == ["b", "c", "e", "d"]


def test_resume_reading_only_persisted_inputs_skips_their_producers() -> None:
    plan = plan_resume(_pipeline(["A", "B@json", "B@pandas"]), RunOptions(), done=["a", "b"])
    assert plan.from_nodes == ["c", "e"]
    assert plan.nodes == ["c", "e", "d"]


def test_resume_walks_back_through_memory_datasets_to_the_start() -> None:
    plan = plan_resume(_pipeline([]), RunOptions(), done=["a", "b", "c"])
    assert plan.from_nodes == ["a"]  # nothing persisted: everything again


def test_resume_with_unknown_persistence_is_the_safe_full_rerun() -> None:
    assert plan_resume(_pipeline(None), RunOptions(), done=["a"]).from_nodes == ["a"]


def test_resume_stays_within_the_original_selection() -> None:
    plan = plan_resume(_pipeline(["A"]), RunOptions(to_nodes=["c"]), done=["a"])
    assert plan.from_nodes == ["b"] and plan.nodes == ["b", "c"]


def test_nothing_left_to_resume() -> None:
    assert plan_resume(_pipeline(["A"]), RunOptions(tags=["first"]), done=["a"]).from_nodes == []


def test_unknown_nodes_cannot_be_resumed() -> None:
    with pytest.raises(InvalidRunOptions, match="not known"):
        plan_resume(Pipeline(name="p", nodes=None), RunOptions(), done=[])


class _Persisted:
    """Stands in for a catalog entry that is not ephemeral."""

    _EPHEMERAL = False


@pytest.mark.parametrize("persisted", [[], ["A"], ["A", "B@json", "B@pandas"], ["A", "C", "E"]])
@pytest.mark.parametrize("done", [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "e"]])
def test_resume_point_agrees_with_kedro(persisted: list[str], done: list[str]) -> None:
    """Kedro's own `_find_nodes_to_resume_from` on the same graph gives the same nodes."""
    from kedro.pipeline import Node
    from kedro.pipeline import Pipeline as KedroPipeline
    from kedro.runner.runner import _find_nodes_to_resume_from

    kedro_nodes = {
        n.name: Node(lambda *a: None, n.inputs, n.outputs or None, name=n.name) for n in NODES
    }
    pipeline = KedroPipeline(list(kedro_nodes.values()))
    catalog = type("Catalog", (), {"_datasets": {name: _Persisted() for name in persisted}})()
    unfinished = [node for name, node in kedro_nodes.items() if name not in done]
    expected = _find_nodes_to_resume_from(pipeline, unfinished, catalog)
    ours = plan_resume(_pipeline(persisted), RunOptions(), done=done).from_nodes
    assert set(ours) == expected
