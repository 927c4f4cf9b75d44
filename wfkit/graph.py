"""DAG validation and analysis.

What the engine needs of a workflow (:class:`TaskGraph`) is checked and built in one linear
pass over plain lists and dicts; the analyses (ranks, critical path, bounds) work on dicts keyed
by task id. networkx is imported only for analysis views (:func:`to_networkx`) and to name a
cycle's members in order when validation finds one.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wfkit.errors import (
    CycleError,
    DuplicateTaskError,
    MissingCapabilityError,
    UnknownDependencyError,
    ValidationError,
)

if TYPE_CHECKING:
    import networkx as nx

    from wfkit.agents.model import AgentProfile, WorkflowTask
    from wfkit.events import TaskSpec

__all__ = [
    "TaskGraph",
    "validate_tasks",
    "capable_agents",
    "check_tasks",
    "check_dependencies",
    "dependents_of",
    "topological_order",
    "layers",
    "upward_ranks",
    "downward_ranks",
    "critical_path",
    "mean_durations",
    "lower_bounds",
    "lower_bound",
    "to_networkx",
]

Durations = Callable[["WorkflowTask"], float]


_WIDE: tuple[int, ...] = (-1,) * 16  # stands for a fan-out kept in a list while building


class TaskGraph:
    """A checked workflow's structure, built once (by ``create_workflow``) and shared by runs.

    Tasks are numbered by insertion order: ``ids[i]`` and ``task_list[i]`` are task ``i``,
    ``index`` maps an id to its number, ``below[i]`` holds the numbers of its direct
    dependents (in insertion order), ``indegree[i]`` its number of dependencies, ``roots``
    the tasks without any, ``order`` a topological order of the numbers and ``classes`` the
    distinct required-capability sets. ``dynamic`` is true when a task maps, has a condition
    or a trigger rule other than ``all_success`` (runs then take the general path of
    :class:`~wfkit.agents.dispatch.RunState`). Building it checks what :func:`validate_tasks`
    checks.

    Why numbers and tuples: every run needs all of this, and a run of 100,000 tasks would
    otherwise spend more time on separate passes over dicts keyed by id than on dispatching.
    Tuples of plain values also leave the cyclic GC's view at its next pass, where 100,000
    lists would be promoted and bring on a full collection during the first run.
    """

    __slots__ = ("tasks", "ids", "task_list", "index", "below", "indegree", "roots", "order",
                 "classes", "dynamic", "_specs", "_ranks", "_ranked")

    def __init__(self, tasks: Iterable[WorkflowTask] | Mapping[str, WorkflowTask]) -> None:
        from wfkit.agents.model import WorkflowTask

        if isinstance(tasks, Mapping):
            tasks = tasks.values()
        by_id: dict[str, WorkflowTask] = {}
        index: dict[str, int] = {}
        below: list[tuple[int, ...]] = []
        indegree: list[int] = []
        roots: list[int] = []
        classes: dict[frozenset[str], None] = {}
        wide: dict[int, list[int]] = {}
        forward = False  # a dependency named before its task: insertion order is not topological
        dynamic = False
        for i, task in enumerate(tasks):  # one pass for the usual case: dependencies come first
            if type(task) is not WorkflowTask and not isinstance(task, WorkflowTask):
                check_tasks([task])  # raises the type error
            tid = task.task_id
            if tid in by_id:
                raise DuplicateTaskError(tid)
            by_id[tid] = task
            classes[task._capset] = None
            if task.map is not None or task.when is not None or task.trigger != "all_success":
                dynamic = True
            deps = task.dependencies
            indegree.append(len(deps))
            if deps:
                for d in deps:
                    j = index.get(d)  # None for itself, later tasks and unknown ids
                    if j is None:
                        forward = True
                        continue
                    b = below[j]
                    if len(b) < 16:
                        below[j] = b + (i,)
                    elif b is _WIDE:
                        wide[j].append(i)
                    else:  # a wide fan-out: appending to tuples would be quadratic
                        wide[j] = [*b, i]
                        below[j] = _WIDE
            else:
                roots.append(i)
            index[tid] = i
            below.append(())
        for j, fanout in wide.items():
            below[j] = tuple(fanout)
        self.tasks = by_id
        self.ids = list(by_id)
        self.task_list = list(by_id.values())
        self.index = index
        self.indegree = indegree
        self.roots = roots
        self.classes = list(classes)
        if forward:  # the general path: names unknown dependencies, finds cycles
            check_tasks(by_id)
            dependents = dependents_of(by_id)
            self.order: Sequence[int] = [index[t] for t in topological_order(by_id, dependents)]
            self.below = [tuple(index[t] for t in dependents[tid]) for tid in self.ids]
        else:
            self.order = range(len(by_id))
            self.below = below
        self.dynamic = dynamic
        self._specs: tuple[TaskSpec, ...] | None = None
        self._ranks: list[float] | None = None
        self._ranked: list[float] | None = None  # the estimates self._ranks was computed on
        if dynamic:
            for task in by_id.values():
                source = by_id[task.map] if task.map is not None else None
                if source is not None and source.map is not None and task.when is not None:
                    raise ValidationError(
                        f"task {task.task_id!r} maps over the mapped task {source.task_id!r} "
                        f"(element by element) and has when=: put the condition on a task "
                        f"before the maps, or map over a task that is not mapped"
                    )

    def specs(self) -> tuple[TaskSpec, ...]:
        """Each task as a :class:`~wfkit.events.TaskSpec`, in insertion order: the graph a
        ``RunStarted`` event carries. Built on first use and kept (every run shares it)."""
        specs = self._specs
        if specs is None:
            from wfkit.events import TaskSpec

            new = tuple.__new__  # TaskSpec(...) would go through its Python-level __new__
            capabilities = {c: tuple(sorted(c)) for c in self.classes}  # shared by their tasks
            # Tuples of plain values make no cycles: collections while building them would
            # only walk the workflow's tasks again (two thirds of the time at 100,000 tasks).
            paused = gc.isenabled()
            gc.disable()
            try:
                specs = self._specs = tuple([
                    new(TaskSpec, (t.task_id, tuple(t.dependencies), capabilities[t._capset],
                                   t.group, t.description, t.priority, t.estimated_duration,
                                   t.map, t.retries, t.timeout))
                    for t in self.task_list
                ])
            finally:
                if paused:
                    gc.enable()
        return specs

    def upward_ranks(self) -> list[float]:
        """Each task's remaining critical path on its ``estimated_duration`` (its own duration
        included), by task number: the dispatcher's priority after ``priority``, the same
        figure :func:`upward_ranks` and :func:`critical_path` give.

        Kept between runs and recomputed only when an estimate changed since (tasks are
        mutable; checking the estimates costs a fraction of the pass)."""
        work = [t.estimated_duration for t in self.task_list]
        ranks = self._ranks
        if ranks is None or work != self._ranked:
            ranks = self._ranks = _upward(self.order, self.below, work)
            self._ranked = work
        return ranks

    def dependents(self, tid: str) -> list[str]:
        """The direct dependents of ``tid``, in insertion order."""
        ids = self.ids
        return [ids[j] for j in self.below[self.index[tid]]]

    def with_tasks(self, tasks: Mapping[str, WorkflowTask]) -> TaskGraph:
        """The same structure over other task objects with the same ids (a simulation's
        copies)."""
        clone = object.__new__(TaskGraph)
        for name in self.__slots__:
            setattr(clone, name, getattr(self, name))
        clone.tasks = {tid: tasks[tid] for tid in self.ids}
        clone.task_list = list(clone.tasks.values())
        clone._ranks = clone._ranked = None  # other tasks, other estimates
        return clone

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"<TaskGraph {len(self.ids)} tasks, {len(self.classes)} capability classes>"


def validate_tasks(tasks: Iterable[WorkflowTask]) -> dict[str, WorkflowTask]:
    """Check a workflow's tasks as a whole and return them by id, in the given order.

    Raises DuplicateTaskError, UnknownDependencyError or CycleError (with ``.cycle``).
    """
    return TaskGraph(tasks).tasks


def check_tasks(
    tasks: Iterable[WorkflowTask] | Mapping[str, WorkflowTask],
) -> dict[str, WorkflowTask]:
    """Types, duplicate ids and unknown dependencies (everything but cycles)."""
    from wfkit.agents.model import WorkflowTask

    if isinstance(tasks, Mapping):
        tasks = tasks.values()
    by_id: dict[str, WorkflowTask] = {}
    for task in tasks:
        if not isinstance(task, WorkflowTask):
            raise ValidationError(
                f"a workflow is a list of WorkflowTask objects, got {type(task).__name__}: "
                f"{task!r}"
            )
        if task.task_id in by_id:
            raise DuplicateTaskError(task.task_id)
        by_id[task.task_id] = task
    for task in by_id.values():
        check_dependencies(task.task_id, task.dependencies, by_id)
    return by_id


def check_dependencies(
    task_id: str, dependencies: Iterable[str], known: Container[str], *, where: str | None = None
) -> None:
    """The one dependency check (workflows, the builder, coordination sessions): raise
    :class:`~wfkit.UnknownDependencyError` naming the dependencies of ``task_id`` that are not
    among the ``known`` task ids. ``where`` names what lacks them when it is not a workflow."""
    missing = [d for d in dependencies if d not in known]
    if missing:
        raise UnknownDependencyError(task_id, missing, where=where)


def dependents_of(tasks: Mapping[str, WorkflowTask]) -> dict[str, list[str]]:
    """Each task's direct dependents, in insertion order (dependency lists are duplicate-free)."""
    dependents: dict[str, list[str]] = {tid: [] for tid in tasks}
    for tid, t in tasks.items():
        for d in t.dependencies:
            dependents[d].append(tid)
    return dependents


def topological_order(
    tasks: Mapping[str, WorkflowTask], dependents: Mapping[str, list[str]] | None = None
) -> list[str]:
    """Kahn's algorithm, ties in insertion order, so the order is stable for the same input."""
    if dependents is None:
        dependents = dependents_of(tasks)
    indegree = {tid: len(t.dependencies) for tid, t in tasks.items()}
    order = [tid for tid, n in indegree.items() if not n]
    append = order.append
    for tid in order:  # grows while we walk it
        for nxt in dependents[tid]:
            n = indegree[nxt] - 1
            indegree[nxt] = n
            if not n:
                append(nxt)
    if len(order) != len(tasks):
        raise CycleError(_find_cycle(tasks, {t for t, n in indegree.items() if n > 0}))
    return order


def _find_cycle(tasks: Mapping[str, WorkflowTask], remaining: set[str]) -> list[str]:
    import networkx as nx

    g = nx.DiGraph()
    for tid in remaining:
        for d in tasks[tid].dependencies:
            if d in remaining:
                g.add_edge(d, tid)
    start = min(remaining)
    try:
        edges = nx.find_cycle(g, source=start)
    except nx.NetworkXNoCycle:  # pragma: no cover - Kahn found one, so there is one
        edges = nx.find_cycle(g)
    return [u for u, _ in edges]


def layers(tasks: Mapping[str, WorkflowTask]) -> list[list[str]]:
    """Topological generations: each task sits one layer below its deepest dependency."""
    depth: dict[str, int] = {}
    for tid in topological_order(tasks):
        deps = tasks[tid].dependencies
        depth[tid] = 1 + max((depth[d] for d in deps), default=-1)
    out: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for tid, d in depth.items():
        out[d].append(tid)
    return out


def _estimate(task: WorkflowTask) -> float:
    return float(task.estimated_duration)


def _upward(
    order: Sequence[int],
    below: Sequence[Sequence[int]],
    work: Sequence[float],
    comm: Callable[[str, str], float] | None = None,
    ids: Sequence[str] = (),
) -> list[float]:
    """The one upward-rank pass, over task numbers: ``work[i]`` plus the largest
    (``comm(ids[i], ids[j])`` + rank) over the dependents ``j`` in ``below[i]``, in reverse
    topological ``order``. Lists indexed by number make it several times faster than dicts
    keyed by id; every rank in the package (dispatch, HEFT, critical paths) comes from here."""
    up = [0.0] * len(work)
    if comm is None:
        get = up.__getitem__
        for i in reversed(order):
            b = below[i]
            if b:
                best = max(map(get, b))
                if not best > 0.0:  # as a running maximum from 0.0 would keep it
                    best = 0.0
                up[i] = work[i] + best
            else:
                up[i] = work[i] + 0.0
    else:
        for i in reversed(order):
            src = ids[i]
            best = 0.0
            for j in below[i]:
                r = up[j] + comm(src, ids[j])
                if r > best:
                    best = r
            up[i] = work[i] + best
    return up


def upward_ranks(
    tasks: Mapping[str, WorkflowTask] | TaskGraph,
    duration: Durations | None = None,
    comm: Callable[[str, str], float] | None = None,
    order: Sequence[str] | None = None,
    dependents: Mapping[str, list[str]] | None = None,
) -> dict[str, float]:
    """Length of the longest path from each task to an exit, the task's own duration included.

    With ``duration`` the mean over capable agents and ``comm`` the mean communication cost of
    an edge, this is HEFT's upward rank; with the defaults it is the remaining critical path
    (for a :class:`TaskGraph`, the figures it keeps: :meth:`TaskGraph.upward_ranks`).
    """
    if isinstance(tasks, TaskGraph):
        graph = tasks
        if duration is None and comm is None:
            return dict(zip(graph.ids, graph.upward_ranks(), strict=True))
        work = [graph.task_list[i].estimated_duration if duration is None
                else duration(graph.task_list[i]) for i in range(len(graph.ids))]
        return dict(zip(graph.ids, _upward(graph.order, graph.below, work, comm, graph.ids),
                        strict=True))
    if dependents is None:
        dependents = dependents_of(tasks)
    if order is None:
        order = topological_order(tasks, dependents)
    # numbered in topological order, so that the pass walks 0..n-1 backwards
    index = {tid: i for i, tid in enumerate(order)}
    below = [[index[d] for d in dependents[tid]] for tid in order]
    if duration is None:
        work = [tasks[tid].estimated_duration for tid in order]
    else:
        work = [duration(tasks[tid]) for tid in order]
    up = _upward(range(len(order)), below, work, comm, order)
    return dict(zip(reversed(order), reversed(up), strict=True))  # in the order computed


def downward_ranks(
    tasks: Mapping[str, WorkflowTask],
    duration: Durations | None = None,
    comm: Callable[[str, str], float] | None = None,
) -> dict[str, float]:
    """Length of the longest path from an entry to each task, the task itself excluded."""
    duration = duration or _estimate
    rank: dict[str, float] = {}
    for tid in topological_order(tasks):
        rank[tid] = max(
            (
                rank[d] + duration(tasks[d]) + (comm(d, tid) if comm else 0.0)
                for d in tasks[tid].dependencies
            ),
            default=0.0,
        )
    return rank


def critical_path(
    tasks: Mapping[str, WorkflowTask] | Iterable[WorkflowTask] | TaskGraph,
    duration: Durations | None = None,
    comm: Callable[[str, str], float] | None = None,
) -> tuple[list[str], float]:
    """The longest chain of dependent tasks by duration (plus ``comm`` per edge), and its length.

    Ties go to the task that comes first in topological order, so the answer is stable. A
    :class:`TaskGraph` is taken as numbered (the same answer as for its tasks, sooner).
    """
    # by number, not by id: lists indexed by int instead of dicts keyed by str make this
    # several times faster on 100,000 tasks (a large workflow's drawing computes it)
    below: Sequence[Sequence[int]]
    graph = tasks if isinstance(tasks, TaskGraph) else None
    if isinstance(tasks, TaskGraph):  # numbered already
        ids, task_list, below, left = tasks.ids, tasks.task_list, tasks.below, [*tasks.indegree]
        tasks = tasks.tasks
    else:
        if not isinstance(tasks, Mapping):
            tasks = {t.task_id: t for t in tasks}
        ids = list(tasks)
        task_list = list(tasks.values())
        index = {tid: i for i, tid in enumerate(ids)}
        lists: list[list[int]] = [[] for _ in ids]
        left = [0] * len(ids)
        for i, t in enumerate(task_list):
            deps = t.dependencies
            left[i] = len(deps)
            for d in deps:
                lists[index[d]].append(i)
        below = lists
    if not ids:
        return [], 0.0
    order = [i for i, k in enumerate(left) if not k]  # Kahn's, as topological_order
    entries = len(order)  # the tasks without dependencies come first
    append = order.append
    for i in order:
        for j in below[i]:
            k = left[j] - 1
            left[j] = k
            if not k:
                append(j)
    if len(order) != len(ids):
        topological_order(tasks)  # raises CycleError naming the cycle
    if graph is not None and duration is None and comm is None:
        up = graph.upward_ranks()  # what the dispatcher ranks by, computed once
    else:
        work = ([float(t.estimated_duration) for t in task_list] if duration is None
                else [duration(t) for t in task_list])
        up = _upward(order, below, work, comm, ids)
    rank = [0] * len(ids)
    for pos, i in enumerate(order):
        rank[i] = pos
    # ties go to the first in topological order
    current = max(order[:entries], key=lambda i: (up[i], -rank[i]))
    path = [current]
    while below[current]:
        here = current
        if comm is None:
            current = max(below[here], key=lambda i: (up[i], -rank[i]))
        else:
            current = max(below[here],
                          key=lambda i: (up[i] + comm(ids[here], ids[i]), -rank[i]))
        path.append(current)
    return [ids[i] for i in path], up[path[0]]


AgentDurations = Callable[["WorkflowTask", "AgentProfile"], float]


def capable_agents(
    tasks: Mapping[str, WorkflowTask],
    agents: Sequence[AgentProfile],
    *,
    strict: bool = True,
) -> dict[frozenset[str], list[AgentProfile]]:
    """Available agents able to run each distinct set of required capabilities.

    ``strict`` raises MissingCapabilityError naming each task that no available agent can run
    and what it lacks; otherwise such a set maps to an empty list.
    """
    pool = [a for a in agents if a.availability]
    by_sig: dict[frozenset[str], list[AgentProfile]] = {}
    for t in tasks.values():  # in task order, so that reports list classes the same way
        sig = t.capability_set
        if sig not in by_sig:
            by_sig[sig] = [a for a in pool if a.can_run(sig)]
    if strict and not all(by_sig.values()):
        have = frozenset().union(*(a.capability_set for a in pool))
        missing: dict[str, list[str]] = {}
        for tid, t in tasks.items():
            sig = t.capability_set
            if not by_sig[sig]:
                missing[tid] = sorted(sig - have) or sorted(sig) or ["an available agent"]
        raise MissingCapabilityError(missing)
    return by_sig


def mean_durations(
    tasks: Mapping[str, WorkflowTask],
    agents: Sequence[AgentProfile],
    agent_duration: AgentDurations,
) -> dict[str, float]:
    """Each task's mean duration over the available agents able to run it (HEFT's w-bar).

    A task no agent can run gets its ``estimated_duration``.
    """
    capable = capable_agents(tasks, agents, strict=False)
    out: dict[str, float] = {}
    for tid, t in tasks.items():
        cands = capable[t.capability_set]
        out[tid] = (
            sum(agent_duration(t, a) for a in cands) / len(cands)
            if cands
            else float(t.estimated_duration)
        )
    return out


def lower_bounds(
    tasks: Mapping[str, WorkflowTask] | Iterable[WorkflowTask],
    agents: Sequence[AgentProfile],
    duration: Durations | None = None,
    *,
    agent_duration: AgentDurations | None = None,
) -> dict[str, Any]:
    """The makespan lower bounds one by one, so that a report can say which one binds.

    Returns ``critical_path`` (its length), ``total`` (total work / total capacity),
    ``classes`` ({required capabilities: bound}), ``energy`` (the head/tail bound below, with
    its window in ``energy_window``) and ``bound`` (the largest). With
    ``agent_duration(task, agent)`` (heterogeneous agents) each task counts with its shortest
    duration on an agent able to run it, so every figure stays a valid bound. The class bound
    for a set of required capabilities divides the work of every task that only those agents
    can run by their capacity. Communication costs are not counted: co-located tasks pay none.

    The energy bound counts the work that must precede and follow the tasks: no task starts
    before its *head* (the longest chain of work before it) and each is followed by its *tail*
    (the longest chain after it). In a window [h, makespan - t], task v must do at least
    ``w(v) - max(0, h - head(v)) - max(0, t - tail(v))`` of its work, so
    ``makespan >= h + t + (that work, summed) / capacity`` for every (h, t) that leaves some
    work inside (then the window is not empty), for the whole pool
    and for each class of agents with the tasks confined to it. For a fork-join (one task,
    many in parallel, one join) it is head + parallel work / P + tail.
    """
    if not isinstance(tasks, Mapping):
        tasks = {t.task_id: t for t in tasks}
    capable = capable_agents(tasks, agents, strict=False)
    if agent_duration is not None:
        fastest: dict[str, float] = {}
        for tid, t in tasks.items():
            cands = capable[t.capability_set]
            fastest[tid] = (
                min(agent_duration(t, a) for a in cands) if cands else float(t.estimated_duration)
            )
        duration = lambda t: fastest[t.task_id]  # noqa: E731
    duration = duration or _estimate
    work = {tid: float(duration(t)) for tid, t in tasks.items()}
    dependents = dependents_of(tasks)
    order = topological_order(tasks, dependents)
    up = upward_ranks(
        tasks, lambda t: work[t.task_id], order=order, dependents=dependents
    )
    cp = max(up.values(), default=0.0)
    total_capacity = sum(a.capacity for a in agents if a.availability)
    total = sum(work.values()) / total_capacity if total_capacity else 0.0
    # every task is confined to the agents able to run it; group tasks by that agent set
    sets = {sig: frozenset(a.agent_id for a in cands) for sig, cands in capable.items()}
    capacity = {sig: sum(a.capacity for a in cands) for sig, cands in capable.items()}
    work_by_sig: dict[frozenset[str], float] = {}
    for tid, t in tasks.items():
        work_by_sig[t.capability_set] = work_by_sig.get(t.capability_set, 0.0) + work[tid]
    classes: dict[frozenset[str], float] = {}
    for sig, agents_of in sets.items():
        if not capacity[sig]:
            continue
        confined = sum(w for other, w in work_by_sig.items() if sets[other] <= agents_of)
        classes[sig] = confined / capacity[sig]
    energy, window = _energy_bounds(tasks, order, up, work, sets, capacity, total_capacity)
    bound = float(max([cp, total, energy, *classes.values()]))
    return {
        "critical_path": float(cp),
        "total": total,
        "classes": classes,
        "energy": energy,
        "energy_window": window,
        "bound": bound,
    }


_ENERGY_CELLS = 2_000_000  # (window heads) x (window tails) x tasks evaluated, at most


def _energy_bounds(
    tasks: Mapping[str, WorkflowTask],
    order: Sequence[str],
    up: Mapping[str, float],
    work: Mapping[str, float],
    sets: Mapping[frozenset[str], frozenset[str]],
    capacity: Mapping[frozenset[str], int],
    total_capacity: int,
) -> tuple[float, dict[str, Any] | None]:
    """The head/tail (energy) bound of :func:`lower_bounds`, for the pool and each class."""
    if not tasks or not total_capacity:
        return 0.0, None
    import numpy as np

    ids = list(tasks)
    head_of: dict[str, float] = {}
    for tid in order:
        head_of[tid] = max(
            (head_of[d] + work[d] for d in tasks[tid].dependencies), default=0.0
        )
    head = np.fromiter((head_of[t] for t in ids), float, len(ids))
    tail = np.fromiter((up[t] - work[t] for t in ids), float, len(ids))
    w = np.fromiter((work[t] for t in ids), float, len(ids))
    groups: list[tuple[Any, Any, int]] = [(None, None, total_capacity)]
    if len(sets) > 1:
        sig_of = [tasks[t].capability_set for t in ids]
        for sig, agents_of in sets.items():
            if capacity[sig] and agents_of != frozenset().union(*sets.values()):
                mask = np.fromiter((sets[g] <= agents_of for g in sig_of), bool, len(ids))
                if mask.any():
                    groups.append((sig, mask, capacity[sig]))
    best, window = 0.0, None
    for sig, mask, cap in groups:
        hd, tl, wk = (head, tail, w) if mask is None else (head[mask], tail[mask], w[mask])
        value, h, t = _window_bound(hd, tl, wk, cap)
        if value > best:
            best = value
            window = {"head": h, "tail": t, "capacity": cap, "class": sig}
    return best, window


def _grid(values: Any, size: int) -> Any:
    import numpy as np

    u = np.unique(values)
    if len(u) > size:
        u = u[np.linspace(0, len(u) - 1, size).round().astype(int)]
    return u


def _window_bound(head: Any, tail: Any, work: Any, cap: int) -> tuple[float, float, float]:
    """max over windows (h, t) of h + t + (work that must fall inside) / cap."""
    import numpy as np

    n = len(work)
    if not n:
        return 0.0, 0.0, 0.0
    size = max(4, min(256, int((_ENERGY_CELLS / n) ** 0.5)))
    hs, ts = _grid(head, size), _grid(tail, size)
    before = np.maximum(ts[:, None] - tail[None, :], 0.0)  # work that may follow the window
    best = (0.0, 0.0, 0.0)
    for h in hs:
        inside = work - np.maximum(h - head, 0.0)
        energy = np.maximum(inside[None, :] - before, 0.0).sum(axis=1) / cap
        # with no work inside, the window may be empty (h + t > makespan): no bound
        values = np.where(energy > 0, h + ts + energy, 0.0)
        k = int(values.argmax())
        if values[k] > best[0]:
            best = (float(values[k]), float(h), float(ts[k]))
    return best


def lower_bound(
    tasks: Mapping[str, WorkflowTask] | Iterable[WorkflowTask],
    agents: Sequence[AgentProfile],
    duration: Durations | None = None,
    *,
    agent_duration: AgentDurations | None = None,
) -> float:
    """max(critical path, total work / total capacity, per capability class, head/tail energy).

    No schedule on these agents can finish sooner; see :func:`lower_bounds` for the parts.
    """
    return float(lower_bounds(tasks, agents, duration, agent_duration=agent_duration)["bound"])


def to_networkx(tasks: Mapping[str, WorkflowTask] | Iterable[WorkflowTask]) -> nx.DiGraph:
    """A networkx view: nodes carry the task and its attributes, edges point downstream."""
    import networkx as nx

    if not isinstance(tasks, Mapping):
        tasks = {t.task_id: t for t in tasks}
    g = nx.DiGraph()
    for tid, t in tasks.items():
        g.add_node(
            tid,
            task=t,
            description=t.description,
            capabilities=sorted(t.capability_set),
            priority=t.priority,
            estimated_duration=t.estimated_duration,
        )
    for tid, t in tasks.items():
        for d in t.dependencies:
            g.add_edge(d, tid)
    return g

