"""The run state machine: every state transition of a run's tasks happens here.

It is I/O-free and clock-free. The live engine (:mod:`wfkit.agents.engine`) drives it from
asyncio callbacks; the simulator (:mod:`wfkit.optimization`) drives it on virtual time. Both
therefore make the same choices for the same inputs.

State, in plain lists, dicts and sets over the numbering of a :class:`~wfkit.graph.TaskGraph`
(after dask's ``local.py``). Every task is in exactly one of:

- waiting           ``waiting[i]`` (> 0) dependencies of task ``i`` have not completed yet
                    (<= 0 once it is ready, running or finished);
- the ready heaps   one heap per distinct set of required capabilities (a capability class),
                    keyed by (-priority, -remaining critical path, insertion index): the same
                    inputs give the same order;
- ``running[tid]``  the agent running it; it holds a slot of the run's
                    :class:`~wfkit.agents.pool.AgentPool` on that agent;
- ``backoff``       an attempt failed and a retry is pending (no agent slot is held);
- ``finished[tid]`` "completed", "failed", "skipped" or "cancelled".

- ``held``          its dependencies ended but the driver must decide first (a ``when``
                    condition to check, a map to expand): :meth:`take_held`, then
                    :meth:`release`, :meth:`skip`, :meth:`fail_unstarted` or :meth:`expand`;
- ``mapped``        expanded into children ``tid[i]``; it ends when the last child ends.

Dynamic workflows (``graph.dynamic``: maps, conditions, trigger rules) take a general path;
static ones keep the lean one, so they pay nothing for it. On the general path ``waiting[i]``
counts the dependencies that have not *ended* (trigger rules look at how they ended), a
skip caused by a failure is remembered as such (``none_failed`` tells the two apart), and the
children of a mapped task are appended to the run's own copies of the graph's lists (the
graph is shared by runs and never changes). Every ending, however caused, goes through
:meth:`_settle`, which returns the tasks that ended as a consequence (skips, mapped parents)
as ``(task id, reason)`` pairs; ``finished[tid]`` says how each ended.

Invariants: the pool has room on an agent before a task is assigned to it (the pool counts
the tasks of every run that shares it: an orchestrator's concurrent runs never exceed an
agent's capacity between them), and the slot is released by every transition out of
``running``. A ready task whose capable agents are
all busy never holds back a ready task that another free agent could run: :meth:`assign` looks
at the head of every capability class's heap and takes the best head that has a free agent.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from heapq import heappush
from typing import TYPE_CHECKING

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.policies import LeastLoaded, Policy
from wfkit.agents.pool import AgentPool
from wfkit.graph import TaskGraph

if TYPE_CHECKING:
    from random import Random

__all__ = ["RunState", "retry_delay"]

# A ready task's heap key: (-priority, -remaining critical path, insertion index, task id,
# heap index). The first three are unique together, so the last two are never compared.
Entry = tuple[float, float, int, str, int]

_fallback = LeastLoaded()
_NOTHING: tuple[tuple[str, str], ...] = ()  # what a static workflow's completions end


def retry_delay(attempt: int, backoff: float, max_backoff: float, rng: Random) -> float:
    """Seconds to wait before retrying a task whose attempt ``attempt`` (1-based) failed:
    ``backoff`` doubled per attempt, at most ``max_backoff``, times a jitter in [0.5, 1) so that
    many tasks failing together do not retry together. The engine and the simulator both wait
    this long, so a simulated retry costs what a real one does."""
    return min(max_backoff, backoff * 2 ** (attempt - 1)) * (0.5 + rng.random() / 2)


class RunState:
    def __init__(
        self,
        graph: TaskGraph | Mapping[str, WorkflowTask],
        agents: Sequence[AgentProfile],
        policy: Policy,
        completed: Iterable[str] = (),
        pool: AgentPool | None = None,
    ) -> None:
        if not isinstance(graph, TaskGraph):
            graph = TaskGraph(graph)
        self.graph = graph
        self.dynamic = dynamic = graph.dynamic
        # The run's view of the structure: the graph's own lists, or copies that mapped
        # children are appended to.
        if dynamic:
            self.tasks = dict(graph.tasks)
            self.ids, self.task_list = list(graph.ids), list(graph.task_list)
            self.index, self.below = dict(graph.index), list(graph.below)
        else:
            self.tasks, self.ids, self.task_list = graph.tasks, graph.ids, graph.task_list
            self.index, self.below = graph.index, graph.below
        tasks = self.tasks
        self.agents = [a for a in agents if a.availability]
        self.policy = policy
        self.pool = pool if pool is not None else AgentPool()
        classes = graph.classes  # heap k holds the ready tasks of classes[k]
        self._heaps: list[list[Entry]] = [[] for _ in classes]
        self.held: list[Entry] = []
        self._queues = [*self._heaps, self.held]  # a gated task's entry points at held
        self._candidates = [[a for a in self.agents if a.can_run(sig)] for sig in classes]
        self.running: dict[str, AgentProfile] = {}
        self.backoff: set[str] = set()
        self.finished: dict[str, str] = {}
        self.skip_reason: dict[str, str] = {}

        # Heap keys, made per run (priorities may change between runs); the remaining
        # critical path is the graph's, kept while the estimates stay the same.
        task_list = graph.task_list
        n = len(task_list)
        rank = graph.upward_ranks()
        self._k_of = k_of = {sig: k for k, sig in enumerate(classes)}
        held_k = len(classes)
        if dynamic:
            entries: list[Entry] = [
                (-t.priority, -rank[i], i, t.task_id,
                 held_k if t.map is not None or t.when is not None else k_of[t._capset])
                for i, t in enumerate(task_list)
            ]
        elif len(classes) == 1:
            entries = [(-t.priority, -rank[i], i, t.task_id, 0) for i, t in enumerate(task_list)]
        else:
            entries = [(-t.priority, -rank[i], i, t.task_id, k_of[t._capset])
                       for i, t in enumerate(task_list)]
        self._entries = entries

        done = set(completed)
        if dynamic:
            self._init_dynamic(done)
        else:
            # waiting[i]: dependencies of task i not completed yet; 0 once ready or finished.
            if done:
                waiting = [0] * n
                ready = []
                for tid in done:
                    self.finished[tid] = "completed"
                for i, t in enumerate(task_list):
                    if t.task_id in done:
                        continue
                    w = sum(1 for d in t.dependencies if d not in done)
                    if w:
                        waiting[i] = w
                    else:
                        ready.append(entries[i])
            else:
                waiting = graph.indegree.copy()
                ready = [entries[i] for i in graph.roots]
            self.waiting = waiting
            heaps = self._heaps
            for entry in ready:
                heaps[entry[4]].append(entry)
            for heap in heaps:
                heapq.heapify(heap)
        policy.prepare(tasks, self.agents)

    def _init_dynamic(self, done: set[str]) -> None:
        n = len(self.task_list)
        self.waiting = [0] * n
        self._rules = [t.trigger for t in self.task_list]
        self._ok = [0] * n  # dependencies that completed
        self._bad = [False] * n  # a dependency failed (or was skipped because one failed)
        self._upfail: set[str] = set()  # skipped because something upstream failed
        self._parent: dict[int, int] = {}  # child number -> its mapped parent's number
        self._children: dict[int, list[int]] = {}  # mapped parent -> its children, in order
        self._left: dict[int, int] = {}  # mapped parent -> children not ended yet
        self._resumed = {tid for tid in done if tid not in self.index}  # children of a map
        self._work: deque[tuple[str, str, bool]] = deque()  # endings to apply (_drain)
        self.expanded: list[tuple[str, int]] = []  # (task, children) of the last expand()
        for tid in done - self._resumed:
            self.finished[tid] = "completed"
        for i, t in enumerate(self.task_list):
            if t.task_id not in self.finished:
                self._start_counting(i, t.dependencies)
        for heap in self._heaps:
            heapq.heapify(heap)

    # -- queries ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return len(self.finished) == len(self.tasks)

    def unfinished(self) -> list[str]:
        return [tid for tid in self.tasks if tid not in self.finished]

    def mapped(self) -> dict[str, list[str]]:
        """{mapped task: its children's ids, in item order} for the tasks mapped so far."""
        if not self.dynamic:
            return {}
        ids = self.ids
        return {ids[p]: [ids[c] for c in kids] for p, kids in self._children.items()}

    def children(self, tid: str) -> list[str]:
        """The ids of a mapped task's children, in item order ([] if it was not mapped)."""
        ids = self.ids
        return [ids[c] for c in self._children.get(self.index[tid], ())] if self.dynamic else []

    # -- transitions -----------------------------------------------------------------------

    def _push(self, tid: str) -> None:
        entry = self._entries[self.index[tid]]
        heappush(self._queues[entry[4]], entry)

    def assign(self) -> list[tuple[WorkflowTask, AgentProfile]]:
        """ready -> running for as many tasks as free capable agents allow, best first."""
        out: list[tuple[WorkflowTask, AgentProfile]] = []
        deferred: list[Entry] = []
        heaps, task_list, running = self._heaps, self.task_list, self.running
        select = self.policy.select
        pool = self.pool
        with_room, acquire = pool.with_room, pool.acquire
        if len(heaps) == 1:  # one capability class (the common case): no cross-class choice
            heap = heaps[0]
            if not heap:
                return out
            cands = with_room(self._candidates[0])
            while heap and cands:
                entry = heapq.heappop(heap)
                task = task_list[entry[2]]
                agent = select(task, cands)
                if agent is None:
                    deferred.append(entry)
                    continue
                if acquire(agent):
                    cands.remove(agent)
                running[entry[3]] = agent
                out.append((task, agent))
        else:
            free: dict[int, list[AgentProfile]] = {}  # per class, computed once per call
            while True:
                best: Entry | None = None
                for k, heap in enumerate(heaps):
                    if not heap or (best is not None and heap[0] >= best):
                        continue
                    room = free.get(k)
                    if room is None:
                        room = free[k] = with_room(self._candidates[k])
                    if room:
                        best = heap[0]
                if best is None:
                    break
                heapq.heappop(heaps[best[4]])
                task = task_list[best[2]]
                agent = select(task, free[best[4]])
                if agent is None:
                    deferred.append(best)
                    continue
                if acquire(agent):
                    for cands in free.values():  # the agent is full now, for every class
                        if agent in cands:
                            cands.remove(agent)
                running[best[3]] = agent
                out.append((task, agent))
        if deferred:
            if not out and not running:
                # A plan that waits for a busy agent must not stall an idle run. (When other
                # runs hold every capable agent, the pool wakes this run as a slot frees.)
                entry = deferred[0]
                cands = with_room(self._candidates[entry[4]])
                if cands:
                    del deferred[0]
                    agent = _fallback.select(task_list[entry[2]], cands)
                    acquire(agent)
                    running[entry[3]] = agent
                    out.append((task_list[entry[2]], agent))
            for entry in deferred:
                heappush(heaps[entry[4]], entry)
        return out

    def _release(self, tid: str) -> AgentProfile:
        agent = self.running.pop(tid)
        self.pool.release(agent)
        return agent

    def complete(self, tid: str) -> Sequence[tuple[str, str]]:
        """running -> completed; dependents whose last dependency this was become ready.

        Returns the tasks that ended as a consequence (a mapped parent whose last child this
        was), as ``(task id, reason)`` pairs; always empty for a static workflow."""
        if self.dynamic:
            return self.complete_many((tid,))
        # the engine's hot path: once per task, so no more than this
        self.pool.release(self.running.pop(tid))
        self.finished[tid] = "completed"
        waiting = self.waiting
        for j in self.below[self.index[tid]]:
            n = waiting[j] - 1
            waiting[j] = n
            if not n:
                entry = self._entries[j]
                heappush(self._heaps[entry[4]], entry)
        return _NOTHING

    def complete_many(self, tids: Iterable[str]) -> Sequence[tuple[str, str]]:
        """running -> completed for tasks that end at the same moment (one call: the simulator
        ends many at once)."""
        if not self.dynamic:
            complete = self.complete
            for tid in tids:
                complete(tid)
            return _NOTHING
        running, release = self.running, self.pool.release
        out: list[tuple[str, str]] = []
        for tid in tids:
            release(running.pop(tid))
            self._settle(tid, "completed", None, out)
        return out

    def fail(self, tid: str) -> list[tuple[str, str]]:
        """running -> failed; every task downstream that cannot run now is skipped.

        Returns the (task id, reason) pairs of the tasks that ended as a consequence, in
        topological order: skipped ones, and on the general path mapped parents too
        (``finished`` says how each ended).
        """
        self._release(tid)
        if self.dynamic:
            out: list[tuple[str, str]] = []
            self._settle(tid, "failed", None, out)
            return out
        self.finished[tid] = "failed"
        ids, below, waiting = self.ids, self.below, self.waiting
        skipped: list[tuple[str, str]] = []
        stack = [(j, tid) for j in reversed(below[self.index[tid]])]
        while stack:
            j, cause = stack.pop()
            if waiting[j] <= 0:  # ready, running or finished: not downstream of a failure
                continue
            waiting[j] = 0
            nxt = ids[j]
            reason = f"dependency {cause!r} failed" if cause == tid else (
                f"dependency {cause!r} was skipped"
            )
            self.finished[nxt] = "skipped"
            self.skip_reason[nxt] = reason
            skipped.append((nxt, reason))
            stack.extend((k, nxt) for k in reversed(below[j]))
        return skipped

    def retry(self, tid: str) -> None:
        """running -> backoff: the agent slot is freed while the retry waits."""
        self._release(tid)
        self.backoff.add(tid)

    def requeue(self, tid: str) -> None:
        """backoff -> ready."""
        self.backoff.discard(tid)
        self._push(tid)

    def cancel_all(self) -> list[tuple[str, AgentProfile | None]]:
        """Everything not finished -> cancelled. Returns (task id, agent if it was running)."""
        out: list[tuple[str, AgentProfile | None]] = []
        for tid in self.tasks:
            if tid in self.finished:
                continue
            agent = self._release(tid) if tid in self.running else None
            self.finished[tid] = "cancelled"
            out.append((tid, agent))
        self.waiting[:] = [0] * len(self.waiting)
        self.backoff.clear()
        for heap in self._queues:
            heap.clear()
        return out

    # -- the general path: held tasks, maps, trigger rules ----------------------------------

    def take_held(self) -> list[WorkflowTask]:
        """The held tasks (best first), for the driver to decide on; they leave ``held``."""
        held, task_list = self.held, self.task_list
        out = [task_list[e[2]] for e in sorted(held)]
        held.clear()
        return out

    def release(self, tid: str) -> None:
        """held -> ready: the task runs as itself (its condition held, it does not map)."""
        i = self.index[tid]
        e = self._entries[i]
        entry = self._entries[i] = (*e[:4], self._k_of[self.task_list[i].capability_set])
        heappush(self._heaps[entry[4]], entry)

    def skip(self, tid: str, reason: str) -> list[tuple[str, str]]:
        """held -> skipped (its condition was false). Returns what ended as a consequence."""
        out: list[tuple[str, str]] = []
        self._settle(tid, "skipped", reason, out)
        return out

    def fail_unstarted(self, tid: str, reason: str) -> list[tuple[str, str]]:
        """held -> failed without an attempt (its condition raised, its map input is not a
        list). Returns what ended as a consequence."""
        out: list[tuple[str, str]] = []
        self._settle(tid, "failed", reason, out)
        return out

    def expand(
        self, tid: str, count: int
    ) -> tuple[list[WorkflowTask], list[tuple[str, str]]]:
        """held -> mapped: ``count`` children ``tid[0]`` ... join the run (ready, or already
        completed when a resumed run had finished them). A task that maps element by element
        over this one is expanded with it, so its child ``i`` waits only for child ``i``
        here. Returns the new children and what ended as a consequence (an empty map
        completes at once); ``expanded`` then lists each task expanded and its count."""
        new: list[WorkflowTask] = []
        resumed: list[str] = []
        self.expanded = []
        self._expand(self.index[tid], count, None, new, resumed)
        self._work.extend((cid, "completed", False) for cid in resumed)
        out: list[tuple[str, str]] = []
        self._drain(out)
        return new, out

    def _expand(
        self, i: int, count: int, source: int | None, new: list[WorkflowTask], resumed: list[str]
    ) -> None:
        from wfkit.agents.model import WorkflowTask

        tasks, ids, task_list, index, below = (
            self.tasks, self.ids, self.task_list, self.index, self.below
        )
        waiting, entries, finished = self.waiting, self._entries, self.finished
        parent = task_list[i]
        pid = parent.task_id
        pe = entries[i]
        key = (pe[0], pe[1])
        k = self._k_of[parent.capability_set]
        waiting[i] = 0  # not waiting any more: its own dependencies' endings pass it by
        base = len(task_list)
        numbers = list(range(base, base + count))
        self._children[i] = numbers
        self._left[i] = count
        self.expanded.append((pid, count))
        if not count:  # nothing to run: it completes with an empty list
            self._work.append((pid, "completed", True))
        attrs = parent.__dict__
        source_children = self._children[source] if source is not None else None
        others = [d for d in parent.dependencies if d != parent.map]
        ready: list[Entry] = []
        later: list[int] = []
        rules, ok, bad, parents, resumable = (
            self._rules, self._ok, self._bad, self._parent, self._resumed
        )
        trigger = parent.trigger
        for c, j in enumerate(numbers):
            cid = f"{pid}[{c}]"
            child = object.__new__(WorkflowTask)
            child.__dict__.update(attrs)
            child.task_id = cid
            child.status = "pending"
            child.when = None  # the parent's condition was checked before it mapped
            child.parent_task_id = pid
            child.map_index = c
            if source_children is not None:  # element by element: child c of the source
                child.map = ids[source_children[c]]
                child.dependencies = [child.map, *others]
            tasks[cid] = child
            ids.append(cid)
            task_list.append(child)
            index[cid] = j
            below.append(())
            parents[j] = i
            rules.append(trigger)
            ok.append(0)
            bad.append(False)
            waiting.append(0)
            entry = (*key, j, cid, k)
            entries.append(entry)
            new.append(child)
            if cid in resumable:
                resumed.append(cid)  # completed once every child exists
            elif source_children is None:
                ready.append(entry)  # its dependencies are the parent's: they have ended
            else:
                later.append(j)
        if later:  # wire each child to its dependencies, then count those already ended
            waiting_on: dict[str, list[int]] = {}
            for j in later:
                for d in task_list[j].dependencies:
                    if d not in finished:
                        waiting_on.setdefault(d, []).append(j)
            for d, js in waiting_on.items():
                di = index[d]
                below[di] = below[di] + tuple(js)
            for j in later:
                self._start_counting(j, task_list[j].dependencies)
        heap = self._heaps[k]
        for entry in ready:
            heappush(heap, entry)
        # tasks that map over this one element by element expand with it
        for j in self.graph.below[i]:
            t = task_list[j]
            if t.map == pid and t.task_id not in finished and waiting[j] > 0:
                self._expand(j, count, i, new, resumed)

    def _start_counting(self, j: int, deps: Sequence[str]) -> None:
        """Set task ``j``'s counters from its dependencies, taking those already ended into
        account (a resumed run, a child wired late); it may become ready or end at once."""
        finished = self.finished
        self.waiting[j] = len(deps)
        if not deps:
            self.waiting[j] = 0
            self._ready(j)
            return
        for d in deps:
            status = finished.get(d)
            if status is not None:
                self._count(j, self._outcome(d, status), d)

    def _outcome(self, tid: str, status: str) -> str:
        if status == "skipped" and tid in self._upfail:
            return "upstream_failed"
        return status

    def _ready(self, j: int) -> None:
        entry = self._entries[j]
        heappush(self._queues[entry[4]], entry)

    def _count(self, j: int, outcome: str, cause: str) -> None:
        """Dependency ``cause`` of task ``j`` ended with ``outcome``: apply ``j``'s rule."""
        w = self.waiting[j]
        if w <= 0:  # ready, running, mapped or finished: nothing to decide any more
            return
        rule = self._rules[j]
        if outcome == "completed":
            self._ok[j] += 1
            if rule == "one_success":
                w = 1
            w -= 1
            self.waiting[j] = w
            if not w:
                self._ready(j)
            return
        failed = outcome in ("failed", "upstream_failed")
        if rule == "all_success" or (failed and rule.startswith("none_failed")):
            what = "failed" if outcome == "failed" else "was skipped"
            self._skip(j, f"dependency {cause!r} {what}", failed)
            return
        if failed:
            self._bad[j] = True
        w -= 1
        self.waiting[j] = w
        if w:
            return
        if rule in ("all_done", "none_failed") or self._ok[j]:
            self._ready(j)
        else:
            self._skip(j, f"no dependency completed (trigger {rule!r})", self._bad[j])

    def _skip(self, j: int, reason: str, upfail: bool) -> None:
        tid = self.ids[j]
        self.waiting[j] = 0
        self.skip_reason[tid] = reason
        if upfail:
            self._upfail.add(tid)
        self._work.append((tid, "skipped", True))

    def _settle(
        self, tid: str, status: str, reason: str | None, out: list[tuple[str, str]]
    ) -> None:
        """``tid`` ended with ``status``: tell its dependents and, for a child, its parent.
        What ends as a consequence is appended to ``out`` (not ``tid`` itself)."""
        if reason is not None:
            self.skip_reason[tid] = reason
        self._work.append((tid, status, False))
        self._drain(out)

    def _drain(self, out: list[tuple[str, str]]) -> None:
        """Apply the endings in the work queue, first in first out (so causes are reported
        before their effects), and those they cause: a loop, not recursion, however long
        the chain."""
        work, finished, below, index = self._work, self.finished, self.below, self.index
        waiting, parents, count = self.waiting, self._parent, self._count
        while work:
            t, st, report = work.popleft()
            i = index[t]
            finished[t] = st
            waiting[i] = 0
            if report:
                out.append((t, self.skip_reason.get(t, "")))
            outcome = self._outcome(t, st)
            for j in below[i]:
                count(j, outcome, t)
            p = parents.get(i)
            if p is not None:
                left = self._left[p] = self._left[p] - 1
                if not left:
                    self._end_parent(p)

    def _end_parent(self, p: int) -> None:
        """A mapped task's last child ended: it completes if they all did, fails if one
        failed, and is skipped otherwise (with the reason of its first skipped child)."""
        ids, finished = self.ids, self.finished
        kids = [ids[c] for c in self._children[p]]
        pid = ids[p]
        failed = [c for c in kids if finished[c] == "failed"]
        skipped = [c for c in kids if finished[c] == "skipped"]
        if failed:
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            self.skip_reason[pid] = (
                f"{len(failed)} of {len(kids)} mapped tasks failed: "
                f"{', '.join(failed[:5])}{more}"
            )
            status = "failed"
        elif skipped:
            self.skip_reason[pid] = (
                f"{len(skipped)} of {len(kids)} mapped tasks were skipped "
                f"({skipped[0]}: {self.skip_reason.get(skipped[0], '')})"
            )
            if any(c in self._upfail for c in skipped):
                self._upfail.add(pid)
            status = "skipped"
        else:
            status = "completed"
        self._work.append((pid, status, True))
