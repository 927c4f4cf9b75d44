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

Invariants: the pool has room on an agent before a task is assigned to it (the pool counts
the tasks of every run that shares it: an orchestrator's concurrent runs never exceed an
agent's capacity between them), and the slot is released by every transition out of
``running``. A ready task whose capable agents are
all busy never holds back a ready task that another free agent could run: :meth:`assign` looks
at the head of every capability class's heap and takes the best head that has a free agent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from heapq import heappush

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.policies import LeastLoaded, Policy
from wfkit.agents.pool import AgentPool
from wfkit.graph import TaskGraph

__all__ = ["RunState"]

# A ready task's heap key: (-priority, -remaining critical path, insertion index, task id,
# heap index). The first three are unique together, so the last two are never compared.
Entry = tuple[float, float, int, str, int]

_fallback = LeastLoaded()


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
        self.tasks = tasks = graph.tasks
        self.agents = [a for a in agents if a.availability]
        self.policy = policy
        self.pool = pool if pool is not None else AgentPool()
        classes = graph.classes  # heap k holds the ready tasks of classes[k]
        self._heaps: list[list[Entry]] = [[] for _ in classes]
        self._candidates = [[a for a in self.agents if a.can_run(sig)] for sig in classes]
        self.running: dict[str, AgentProfile] = {}
        self.backoff: set[str] = set()
        self.finished: dict[str, str] = {}
        self.skip_reason: dict[str, str] = {}

        # Heap keys, computed per run (priorities and estimates may change between runs),
        # in one reverse topological pass with the remaining critical path.
        task_list, below = graph.task_list, graph.below
        n = len(task_list)
        rank = [0.0] * n
        entries: list[Entry] = [None] * n  # type: ignore[list-item]  # all filled below
        get = rank.__getitem__
        k_of = {sig: k for k, sig in enumerate(classes)}
        for i in reversed(graph.order):
            t = task_list[i]
            b = below[i]
            r = rank[i] = t.estimated_duration + (max(map(get, b)) if b else 0.0)
            entries[i] = (-t.priority, -r, i, t.task_id, k_of[t.capability_set])
        self._entries = entries

        # waiting[i]: dependencies of task i not completed yet; 0 once it is ready or finished.
        done = set(completed)
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

    # -- queries ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return len(self.finished) == len(self.tasks)

    def unfinished(self) -> list[str]:
        return [tid for tid in self.tasks if tid not in self.finished]

    # -- transitions -----------------------------------------------------------------------

    def _push(self, tid: str) -> None:
        entry = self._entries[self.graph.index[tid]]
        heappush(self._heaps[entry[4]], entry)

    def assign(self) -> list[tuple[WorkflowTask, AgentProfile]]:
        """ready -> running for as many tasks as free capable agents allow, best first."""
        out: list[tuple[WorkflowTask, AgentProfile]] = []
        deferred: list[Entry] = []
        heaps, task_list, running = self._heaps, self.graph.task_list, self.running
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
                    cands = free.get(k)
                    if cands is None:
                        cands = free[k] = with_room(self._candidates[k])
                    if cands:
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

    def complete(self, tid: str) -> None:
        """running -> completed; dependents whose last dependency this was become ready."""
        self.complete_many((tid,))

    def complete_many(self, tids: Iterable[str]) -> None:
        """running -> completed for tasks that end at the same moment (one call: the simulator
        ends many at once)."""
        running, finished, waiting = self.running, self.finished, self.waiting
        heaps, entries, below, index = self._heaps, self._entries, self.graph.below, self.graph.index
        release = self.pool.release
        for tid in tids:
            release(running.pop(tid))
            finished[tid] = "completed"
            for j in below[index[tid]]:
                n = waiting[j] - 1
                waiting[j] = n
                if not n:
                    entry = entries[j]
                    heappush(heaps[entry[4]], entry)

    def fail(self, tid: str) -> list[tuple[str, str]]:
        """running -> failed; every task downstream that has not finished is skipped.

        Returns the skipped (task id, reason) pairs in topological order.
        """
        self._release(tid)
        self.finished[tid] = "failed"
        ids, below, waiting = self.graph.ids, self.graph.below, self.waiting
        skipped: list[tuple[str, str]] = []
        stack = [(j, tid) for j in reversed(below[self.graph.index[tid]])]
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
        for heap in self._heaps:
            heap.clear()
        return out
