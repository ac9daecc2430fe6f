"""A Kedro pipeline's graph as the inspector reported it: run filters and resume points.

The gateway never imports Kedro, so it mirrors the two pieces of Kedro it needs on
the snapshot's nodes (names, inputs, outputs, tags): `Pipeline.filter` (which nodes a
`kedro run` with these options runs, and which option names something unknown) and
the runner's `_find_nodes_to_resume_from` (where a failed run can resume). Dataset
names are compared with their transcoding (`name@format`) stripped, as Kedro does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from app.schemas.jobs import Job, RunOptions
from app.schemas.pipelines import Pipeline, PipelineNode


class InvalidRunOptions(ValueError):
    """Run options that name nodes, tags, datasets or namespaces the pipeline lacks."""


def _strip(dataset: str) -> str:
    return dataset.split("@", 1)[0]


def _namespace(node: PipelineNode) -> str | None:
    namespace, dot, _ = node.name.rpartition(".")
    return namespace if dot else None


@dataclass(frozen=True)
class Graph:
    """The nodes of one pipeline, in the topological order the snapshot lists them."""

    nodes: Sequence[PipelineNode]

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def _only(self, names: Collection[str]) -> list[PipelineNode]:
        return [node for node in self.nodes if node.name in names]

    def _consumers_closure(self, datasets: set[str]) -> set[str]:
        """Nodes depending directly or transitively on `datasets` (Kedro's `from_inputs`)."""
        found: set[str] = set()
        frontier = {_strip(d) for d in datasets}
        while frontier:
            step = {
                node.name
                for node in self.nodes
                if node.name not in found and frontier & {_strip(i) for i in node.inputs}
            }
            found |= step
            frontier = {_strip(o) for node in self._only(step) for o in node.outputs}
        return found

    def _producers_closure(self, datasets: set[str]) -> set[str]:
        """Nodes needed directly or transitively for `datasets` (Kedro's `to_outputs`)."""
        found: set[str] = set()
        frontier = {_strip(d) for d in datasets}
        while frontier:
            step = {
                node.name
                for node in self.nodes
                if node.name not in found and frontier & {_strip(o) for o in node.outputs}
            }
            found |= step
            frontier = {_strip(i) for node in self._only(step) for i in node.inputs}
        return found

    def from_nodes(self, names: Iterable[str]) -> set[str]:
        chosen = set(names)
        outputs = {o for node in self._only(chosen) for o in node.outputs}
        return chosen | self._consumers_closure(outputs)

    def to_nodes(self, names: Iterable[str]) -> set[str]:
        chosen = set(names)
        inputs = {i for node in self._only(chosen) for i in node.inputs}
        return chosen | self._producers_closure(inputs)

    def selected(self, options: RunOptions) -> list[str]:
        """The nodes `kedro run` runs with these options, in order (`Pipeline.filter`).

        Raises `InvalidRunOptions` naming whatever the options refer to that the
        pipeline does not have, or when together they select no node at all."""
        self.check(options)
        chosen = set(self.names)
        if options.tags:
            chosen &= {node.name for node in self.nodes if set(options.tags) & set(node.tags)}
        if options.from_nodes:
            chosen &= self.from_nodes(options.from_nodes)
        if options.to_nodes:
            chosen &= self.to_nodes(options.to_nodes)
        if options.node_names:
            chosen &= set(options.node_names)
        if options.from_inputs:
            chosen &= self._consumers_closure(set(options.from_inputs))
        if options.to_outputs:
            chosen &= self._producers_closure(set(options.to_outputs))
        if options.namespaces:
            chosen &= {
                node.name
                for node in self.nodes
                if any(_in_namespace(node, namespace) for namespace in options.namespaces)
            }
        if not chosen:
            raise InvalidRunOptions("the run options together select no node of the pipeline")
        return [name for name in self.names if name in chosen]

    def check(self, options: RunOptions) -> None:
        """Raise `InvalidRunOptions` for names the pipeline does not have."""
        names = set(self.names)
        tags = {tag for node in self.nodes for tag in node.tags}
        datasets = {_strip(d) for node in self.nodes for d in [*node.inputs, *node.outputs]}
        unknown = {
            "node_names": [n for n in options.node_names if n not in names],
            "from_nodes": [n for n in options.from_nodes if n not in names],
            "to_nodes": [n for n in options.to_nodes if n not in names],
            "tags": [t for t in options.tags if t not in tags],
            "from_inputs": [d for d in options.from_inputs if _strip(d) not in datasets],
            "to_outputs": [d for d in options.to_outputs if _strip(d) not in datasets],
            "namespaces": [
                ns
                for ns in options.namespaces
                if not any(_in_namespace(node, ns) for node in self.nodes)
            ],
        }
        problems = [
            f"{option}: {', '.join(map(repr, values))}"
            for option, values in unknown.items()
            if values
        ]
        if problems:
            raise InvalidRunOptions("not in the pipeline: " + "; ".join(problems))

    def resume_from(
        self, *, scope: Collection[str], done: Collection[str], persisted: Collection[str]
    ) -> list[str]:
        """The `from_nodes` that finish a run of `scope` whose `done` nodes completed.

        A port of Kedro's `_find_nodes_to_resume_from` (kedro/runner/runner.py, 1.7):
        start from the unfinished nodes, walk back through every input that is not
        persisted (memory datasets died with the failed run) to the nodes producing
        it, add everything downstream, and return the first topological group of
        that set. Empty when nothing is left to run."""
        run = Graph(self._only(set(scope)))
        unfinished = [node for node in run.nodes if node.name not in set(done)]
        if not unfinished:
            return []
        to_run = {node.name for node in unfinished}
        produced_inside = {_strip(o) for node in unfinished for o in node.outputs}
        initial = [  # `_nodes_with_external_inputs`
            node
            for node in unfinished
            if any(_strip(i) not in produced_inside for i in node.inputs)
        ]
        kept = set(persisted)
        queue, visited = deque(initial), {node.name for node in initial}
        while queue:
            current = queue.popleft()
            to_run.add(current.name)
            ephemeral = {  # `_enumerate_non_persistent_inputs`
                i for i in current.inputs if not i.startswith("params:") and i not in kept
            }
            for node in run.nodes:  # `_enumerate_nodes_with_outputs`
                if node.name not in visited and any(_produces(node, i) for i in ephemeral):
                    visited.add(node.name)
                    queue.append(node)
        to_run = run.from_nodes(to_run)
        return run._first_group(to_run)

    def _first_group(self, names: set[str]) -> list[str]:
        """`_find_initial_node_group`: the nodes of `names` that no other node of it feeds."""
        members = self._only(names)
        produced = {_strip(o) for node in members for o in node.outputs}
        return [
            node.name for node in members if not any(_strip(i) in produced for i in node.inputs)
        ]


def _produces(node: PipelineNode, dataset: str) -> bool:
    """Kedro's `only_nodes_with_outputs`: a transcoded name matches exactly, a bare one
    matches every transcoding of it."""
    if "@" in dataset:
        return dataset in node.outputs
    return dataset in {_strip(output) for output in node.outputs}


def _in_namespace(node: PipelineNode, namespace: str) -> bool:
    own = _namespace(node)
    return own is not None and (own == namespace or own.startswith(f"{namespace}."))


@dataclass(frozen=True)
class ResumePlan:
    """Where a resumed run starts (`from_nodes`) and the nodes it runs, in order."""

    from_nodes: list[str]
    nodes: list[str]


def plan_resume(pipeline: Pipeline, options: RunOptions, done: Collection[str]) -> ResumePlan:
    """Finish a run of `pipeline` with `options` whose `done` nodes completed.

    Empty when nothing is left; raises `InvalidRunOptions` when the nodes are unknown
    or the options no longer fit the pipeline."""
    if pipeline.nodes is None:
        raise InvalidRunOptions(f"the nodes of pipeline {pipeline.name!r} are not known")
    graph = Graph(pipeline.nodes)
    scope = graph.selected(options)
    start = graph.resume_from(scope=scope, done=done, persisted=pipeline.persisted_datasets or [])
    if not start:
        return ResumePlan(from_nodes=[], nodes=[])
    resumed = RunOptions.model_validate(
        {**options.model_dump(include=set(RunOptions.model_fields)), "from_nodes": start}
    )
    return ResumePlan(from_nodes=start, nodes=graph.selected(resumed))


def done_nodes(job: Job) -> set[str]:
    """Nodes that completed in any attempt of `job` (their outputs were saved)."""
    done = set(job.progress.completed_node_names)
    for attempt in (job.results or {}).get("attempts", []):
        done.update(attempt.get("completed_nodes") or [])
    return done


def selected_nodes(pipelines: Sequence[Pipeline] | None, job: Job) -> list[str] | None:
    """The nodes `job`'s run executes, from the discovered pipeline; None when unknown."""
    if job.planned_nodes:
        return list(job.planned_nodes)
    pipeline = next((p for p in pipelines or [] if p.name == job.pipeline_name), None)
    if pipeline is None or pipeline.nodes is None:
        return None
    try:
        return Graph(pipeline.nodes).selected(job)
    except InvalidRunOptions:
        return None
