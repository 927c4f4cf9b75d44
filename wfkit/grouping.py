"""Groups of tasks, so that a workflow of any size draws as a graph one can read.

A large workflow is mostly many tasks of a few kinds (WfCommons' Montage: 1,890 ``mDiffFit``
of 2,122 tasks). :func:`group_tasks` maps each task to a group, coarser step by step until
the graph of groups has at most ``max_nodes`` nodes: the task's own ``group`` (else the task
itself), then its name's stem (``mDiffFit_ID0000007`` -> ``mDiffFit``), then groups of one
layer with the same parent and child groups merge (structural equivalence), and at last
whole layers. The graph of groups is always acyclic (a group that would close a cycle is
split by layer), so it lays out like a DAG of tasks. Pure: no drawing here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfkit.agents.model import WorkflowTask
from wfkit.errors import ValidationError

GroupBy = str | Callable[[WorkflowTask], "str | None"]

_STEM_TAIL = re.compile(r"(?:\[\d+\]|[_\-.: ]*(?:ID|id)?\d+)+$")


def name_stem(task_id: str) -> str:
    """The name without its trailing numbers: ``mDiffFit_ID0000007`` -> ``mDiffFit``,
    ``align-12`` -> ``align``, ``fetch[3]`` -> ``fetch``; a name that is only a number stays."""
    m = _STEM_TAIL.search(task_id)
    return task_id[: m.start()] if m is not None and m.start() > 0 else task_id


@dataclass
class Grouping:
    """Which group each task is drawn in, and the graph of the groups.

    ``of[task_id]`` is the task's group, ``members[group]`` its tasks (in the workflow's
    order), ``deps[group]`` the groups it depends on, ``edges[(a, b)]`` how many task
    dependencies join group ``a`` to group ``b`` (the edge's multiplicity), ``base[group]``
    the name the group was made from (a group split by layer keeps it, so ``expand`` finds
    it), ``level`` the last step used (``"tasks"``, ``"groups"``, ``"stems"``,
    ``"structure"``, ``"layers"`` or ``"custom"``).
    """

    of: dict[str, str]
    members: dict[str, list[str]]
    deps: dict[str, list[str]]
    edges: dict[tuple[str, str], int]
    level: str
    base: dict[str, str] = field(default_factory=dict)

    @property
    def grouped(self) -> bool:
        """Whether any node stands for more than one task."""
        return any(len(m) > 1 for m in self.members.values())

    def __len__(self) -> int:
        return len(self.members)


def _quotient(tasks: Mapping[str, WorkflowTask], of: Mapping[str, str]) -> Grouping:
    members: dict[str, list[str]] = {}
    for tid in tasks:
        members.setdefault(of[tid], []).append(tid)
    edges: dict[tuple[str, str], int] = {}
    for tid, task in tasks.items():
        b = of[tid]
        for d in task.dependencies or ():
            a = of[d]
            if a != b:
                edges[(a, b)] = edges.get((a, b), 0) + 1
    deps: dict[str, list[str]] = {g: [] for g in members}
    for a, b in edges:
        deps[b].append(a)
    order = {k: i for i, k in enumerate(members)}
    for k in deps:
        deps[k].sort(key=order.__getitem__)
    return Grouping(dict(of), members, deps, edges, "")


def _task_layers(tasks: Mapping[str, WorkflowTask]) -> dict[str, int]:
    from wfkit.graph import topological_order

    depth: dict[str, int] = {}
    for tid in topological_order(tasks):
        depth[tid] = 1 + max((depth[d] for d in tasks[tid].dependencies or ()), default=-1)
    return depth


def _group_layers(g: Grouping) -> dict[str, int]:
    """Longest-path layer of each group (the graph of groups is acyclic)."""
    indeg = {k: len(v) for k, v in g.deps.items()}
    succ: dict[str, list[str]] = {k: [] for k in g.members}
    for a, b in g.edges:
        succ[a].append(b)
    layer = {k: 0 for k in g.members}
    ready = [k for k, n in indeg.items() if n == 0]
    while ready:
        k = ready.pop()
        for s in succ[k]:
            layer[s] = max(layer[s], layer[k] + 1)
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    return layer


def _acyclic(tasks: Mapping[str, WorkflowTask], of: dict[str, str],
             task_layer: Callable[[], dict[str, int]]) -> tuple[dict[str, str], Grouping]:
    """``of`` with the groups on a cycle of the group graph split by task layer (edges
    always go to a deeper layer, so the split graph has no cycle), and that graph."""
    import networkx as nx

    g = _quotient(tasks, of)
    graph = nx.DiGraph()
    graph.add_nodes_from(g.members)
    graph.add_edges_from(g.edges)
    cyclic = {k for scc in nx.strongly_connected_components(graph) if len(scc) > 1 for k in scc}
    if not cyclic:
        return of, g
    depth = task_layer()
    of = {tid: f"{k} · layer {depth[tid] + 1}" if k in cyclic else k for tid, k in of.items()}
    return of, _quotient(tasks, of)


def _merge_structural(g: Grouping, max_nodes: int) -> dict[str, str]:
    """Group -> merged group: groups of one layer with the same parent and child groups
    merge, repeatedly, until nothing merges or the graph fits."""
    rename = {k: k for k in g.members}
    while len(g) > max_nodes:
        layer = _group_layers(g)
        succ: dict[str, set[str]] = {k: set() for k in g.members}
        for a, b in g.edges:
            succ[a].add(b)
        classes: dict[Any, list[str]] = {}
        for k in g.members:
            sig = (layer[k], frozenset(g.deps[k]), frozenset(succ[k]))
            classes.setdefault(sig, []).append(k)
        step = {}
        for ks in classes.values():
            name = ks[0] if len(ks) == 1 else f"{sorted(ks)[0]} +{len(ks) - 1}"
            for k in ks:
                step[k] = name
        if len(set(step.values())) == len(g):
            break
        rename = {k: step[v] for k, v in rename.items()}
        of = {tid: step[k] for tid, k in g.of.items()}
        g = _quotient_from(g, of)
    return rename


def _quotient_from(g: Grouping, of: dict[str, str]) -> Grouping:
    """The graph of coarser groups, from the finer graph ``g`` (cheaper than from tasks)."""
    members: dict[str, list[str]] = {}
    for tids in g.members.values():
        members.setdefault(of[tids[0]], []).extend(tids)
    step = {k: of[tids[0]] for k, tids in g.members.items()}
    edges: dict[tuple[str, str], int] = {}
    for (a, b), n in g.edges.items():
        a, b = step[a], step[b]
        if a != b:
            edges[(a, b)] = edges.get((a, b), 0) + n
    deps: dict[str, list[str]] = {k: [] for k in members}
    for a, b in edges:
        deps[b].append(a)
    return Grouping(of, members, deps, edges, g.level)


def group_tasks(
    tasks: Mapping[str, WorkflowTask],
    group: GroupBy = "auto",
    *,
    max_nodes: int = 150,
    expand: Iterable[str] = (),
) -> Grouping:
    """Each task's group (see the module's docstring for the ``"auto"`` steps).

    ``group="none"`` draws every task; a callable ``group(task) -> name | None`` names the
    groups itself (None: the task alone). ``expand`` lists groups (by name, or by the name a
    layer-split group was made from) to draw as their tasks, whatever ``max_nodes`` says.
    """
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValidationError(f"max_nodes must be a positive int, got {max_nodes!r}")
    expand = {expand} if isinstance(expand, str) else set(expand)
    layers_cache: dict[str, int] = {}

    def task_layer() -> dict[str, int]:
        if not layers_cache:
            layers_cache.update(_task_layers(tasks))
        return layers_cache

    if callable(group):
        of = {}
        for tid, t in tasks.items():
            k = group(t)
            if k is not None and not isinstance(k, str):
                raise ValidationError(
                    f"group({tid!r}) returned {type(k).__name__}: return a group name (str) "
                    f"or None for the task alone"
                )
            of[tid] = tid if k is None else k
        level = "custom"
    elif group == "none":
        of, level = {tid: tid for tid in tasks}, "tasks"
    elif group == "auto":
        of, level = {tid: tid for tid in tasks}, "tasks"
        if len(tasks) > max_nodes:
            steps: list[tuple[str, Callable[[WorkflowTask], str]]] = [
                ("groups", lambda t: t.group or t.task_id),
                ("stems", lambda t: t.group or name_stem(t.task_id)),
            ]
            for step, key in steps:
                of, level = {tid: key(t) for tid, t in tasks.items()}, step
                if len(set(of.values())) <= max_nodes:
                    break
    else:
        raise ValidationError(
            f"group must be 'auto', 'none' or a callable task -> group name, got {group!r}"
        )
    base = {}
    if level != "tasks":
        named = of
        of, g = _acyclic(tasks, of, task_layer)
        base = {k: named[g.members[k][0]] for k in g.members}
    else:
        g = _quotient(tasks, of)
    if group == "auto" and len(g) > max_nodes:
        rename = _merge_structural(g, max_nodes)
        if any(k != v for k, v in rename.items()):
            level = "structure"
            base = {rename[k]: rename[k] for k in rename}
            g = _quotient_from(g, {tid: rename[k] for tid, k in g.of.items()})
        if len(g) > max_nodes:  # the last resort: whole layers, in bands if too deep
            layer = _group_layers(g)
            depth = 1 + max(layer.values(), default=0)
            band = math.ceil(depth / max_nodes)

            def name(k: str) -> str:
                lo = layer[k] // band * band + 1
                hi = min(lo + band - 1, depth)
                return f"layer {lo}" if lo == hi else f"layers {lo}–{hi}"

            level = "layers"
            g = _quotient_from(g, {tid: name(k) for tid, k in g.of.items()})
            base = {k: k for k in g.members}
    if expand:
        found = {k for k in g.members if k in expand or base.get(k) in expand}
        unknown = expand - found - {base.get(k) for k in found}
        if unknown:
            raise ValidationError(
                f"expand names no group of this drawing: {sorted(unknown)!r}; its groups are "
                f"{sorted(g.members)[:10]!r}" + (" …" if len(g.members) > 10 else "")
            )
        of = {tid: tid if k in found else k for tid, k in g.of.items()}
        g = _quotient(tasks, of)
        base = {k: base.get(k, k) for k in g.members}
    g.level = level
    g.base = base or {k: k for k in g.members}
    return g
