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
from typing import TYPE_CHECKING, Any

from wfkit.agents.model import WorkflowTask
from wfkit.errors import ValidationError

if TYPE_CHECKING:
    from wfkit.graph import TaskGraph

GroupBy = str | Callable[[WorkflowTask], "str | None"]

_STEM_TAIL = re.compile(r"(?:\[\d+\]|[_\-.: ]*(?:ID|id)?\d+)+$")


def _stems() -> Callable[[str], str]:
    """:func:`name_stem`, remembered by the name without its trailing digits: ids that differ
    only in their number (``mDiffFit_ID0000007``, ``mDiffFit_ID0000008``) share one search."""
    memo: dict[str, str | None] = {}  # head -> stem, None: the whole id is its own stem
    digits = "0123456789"

    def stem(task_id: str) -> str:
        head = task_id.rstrip(digits)
        if len(head) == len(task_id):
            return name_stem(task_id)
        if head in memo:
            got = memo[head]
        else:
            whole = head + "0"
            found = name_stem(whole)
            got = memo[head] = None if found == whole else found
        return task_id if got is None else got

    return stem


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
    ``"structure"``, ``"layers"`` or ``"custom"``). ``codes``, when known, numbers each
    task's group (an array in the tasks' order, ``k`` for the ``k``-th group of
    ``members``): a live view maps tasks to nodes with it in one gather.
    """

    of: dict[str, str]
    members: dict[str, list[str]]
    deps: dict[str, list[str]]
    edges: dict[tuple[str, str], int]
    level: str
    base: dict[str, str] = field(default_factory=dict)
    codes: Any = field(default=None, repr=False)

    @property
    def grouped(self) -> bool:
        """Whether any node stands for more than one task."""
        return any(len(m) > 1 for m in self.members.values())

    def __len__(self) -> int:
        return len(self.members)


class _Numbered:
    """The tasks by number (their order in ``tasks``) and every dependency as a pair of
    numbers: built once per grouping, so that each graph of groups is a few array operations
    rather than a pass over dicts keyed by task id (100,000 tasks: milliseconds, not a second).
    """

    __slots__ = ("ids", "tasks", "src", "dst")

    def __init__(self, tasks: Mapping[str, WorkflowTask] | TaskGraph) -> None:
        import numpy as np

        from wfkit.graph import TaskGraph

        if isinstance(tasks, TaskGraph):  # numbered already
            self.ids, self.tasks, index = tasks.ids, tasks.task_list, tasks.index
        else:
            self.ids = list(tasks)
            self.tasks = list(tasks.values())
            index = {tid: i for i, tid in enumerate(self.ids)}
        deps = [t.dependencies or () for t in self.tasks]
        counts = np.fromiter(map(len, deps), dtype=np.intp, count=len(deps))
        # (dependency, dependent) in task order, then each task's dependency order
        self.src = np.array([index[d] for ds in deps for d in ds], dtype=np.intp)
        self.dst = np.repeat(np.arange(len(deps), dtype=np.intp), counts)

    def quotient(self, keys: list[str]) -> Grouping:
        """The graph of groups when task ``i`` is in group ``keys[i]``."""
        import numpy as np

        code: dict[str, int] = {}
        setdefault = code.setdefault
        gid = np.fromiter((setdefault(k, len(code)) for k in keys), dtype=np.intp,
                          count=len(keys))
        names = list(code)  # in order of first task
        m = len(names)
        order = np.argsort(gid, kind="stable")
        bounds = np.searchsorted(gid[order], np.arange(m + 1))
        ids = np.array(self.ids, dtype=object)[order].tolist()
        members = {g: ids[bounds[k]:bounds[k + 1]] for k, g in enumerate(names)}
        a, b = gid[self.src], gid[self.dst]
        keep = a != b
        pair = a[keep] * m + b[keep]
        uniq, first, mult = np.unique(pair, return_index=True, return_counts=True)
        seen = np.argsort(first, kind="stable")  # edges in order of their first dependency
        edges = {(names[int(p) // m], names[int(p) % m]): int(n)
                 for p, n in zip(uniq[seen].tolist(), mult[seen].tolist(), strict=True)}
        deps: dict[str, list[str]] = {g: [] for g in names}
        for ga, gb in edges:
            deps[gb].append(ga)
        rank = {g: i for i, g in enumerate(names)}
        for g in deps:
            deps[g].sort(key=rank.__getitem__)
        return Grouping(dict(zip(self.ids, keys, strict=True)), members, deps, edges, "",
                        codes=gid)


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


def _acyclic(num: _Numbered, keys: list[str],
             task_layer: Callable[[], dict[str, int]]) -> Grouping:
    """The tasks' groups with the groups on a cycle of the group graph split by task layer
    (edges always go to a deeper layer, so the split graph has no cycle), and that graph."""
    import networkx as nx

    g = num.quotient(keys)
    of = g.of
    graph = nx.DiGraph()
    graph.add_nodes_from(g.members)
    graph.add_edges_from(g.edges)
    cyclic = {k for scc in nx.strongly_connected_components(graph) if len(scc) > 1 for k in scc}
    if not cyclic:
        return g
    depth = task_layer()
    return num.quotient([f"{k} · layer {depth[tid] + 1}" if k in cyclic else k
                         for tid, k in of.items()])


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
    tasks: Mapping[str, WorkflowTask] | TaskGraph,
    group: GroupBy = "auto",
    *,
    max_nodes: int = 150,
    expand: Iterable[str] = (),
) -> Grouping:
    """Each task's group (see the module's docstring for the ``"auto"`` steps).

    ``group="none"`` draws every task; a callable ``group(task) -> name | None`` names the
    groups itself (None: the task alone). ``expand`` lists groups (by name, or by the name a
    layer-split group was made from) to draw as their tasks, whatever ``max_nodes`` says.
    ``tasks`` may be their :class:`~wfkit.graph.TaskGraph` (its numbering spares a pass).
    """
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValidationError(f"max_nodes must be a positive int, got {max_nodes!r}")
    expand = {expand} if isinstance(expand, str) else set(expand)
    num = _Numbered(tasks)
    if not isinstance(tasks, Mapping):
        tasks = tasks.tasks  # a TaskGraph's tasks by id
    layers_cache: dict[str, int] = {}

    def task_layer() -> dict[str, int]:
        if not layers_cache:
            layers_cache.update(_task_layers(tasks))
        return layers_cache

    if callable(group):
        keys = []
        for tid, t in zip(num.ids, num.tasks, strict=True):
            k = group(t)
            if k is not None and not isinstance(k, str):
                raise ValidationError(
                    f"group({tid!r}) returned {type(k).__name__}: return a group name (str) "
                    f"or None for the task alone"
                )
            keys.append(tid if k is None else k)
        level = "custom"
    elif group == "none":
        keys, level = num.ids, "tasks"
    elif group == "auto":
        keys, level = num.ids, "tasks"
        if len(tasks) > max_nodes:
            explicit = [t.group for t in num.tasks]
            if any(explicit):
                keys = [k or tid for k, tid in zip(explicit, num.ids, strict=True)]
                level = "groups"
            if level == "tasks" or len(set(keys)) > max_nodes:
                stem = _stems()
                keys = [k or stem(tid) for k, tid in zip(explicit, num.ids, strict=True)]
                level = "stems"
    else:
        raise ValidationError(
            f"group must be 'auto', 'none' or a callable task -> group name, got {group!r}"
        )
    base = {}
    if level != "tasks":
        g = _acyclic(num, keys, task_layer)
        named = dict(zip(num.ids, keys, strict=True))
        base = {k: named[g.members[k][0]] for k in g.members}
    else:
        g = num.quotient(keys)
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
        g = num.quotient([tid if k in found else k for tid, k in g.of.items()])
        base = {k: base.get(k, k) for k in g.members}
    g.level = level
    g.base = base or {k: k for k in g.members}
    return g
