"""The run state machine: every state transition of a run's tasks happens here.

It is I/O-free and clock-free. The live engine (:mod:`wfkit.agents.engine`) drives it from
asyncio callbacks; the simulator (:mod:`wfkit.optimization`) drives it on virtual time. Both
therefore make the same choices for the same inputs.

State, as plain dicts and sets (after dask's ``local.py``). Every task id is in exactly one of:

- ``waiting[tid]``  number (> 0) of dependencies that have not completed yet;
- the ready heaps   one heap per distinct set of required capabilities, keyed by
                    (-priority, -remaining critical path, insertion index): the same inputs give
                    the same order;
- ``running[tid]``  the agent running it; ``agent.current_load`` counts these per agent;
- ``backoff``       an attempt failed and a retry is pending (no agent slot is held);
- ``finished[tid]`` "completed", "failed", "skipped" or "cancelled".

Invariants: ``agent.current_load < agent.capacity`` before a task is assigned to it, and the
load is released by every transition out of ``running``. A ready task whose capable agents are
all busy never holds back a ready task that another free agent could run: :meth:`assign` looks
at the head of every capability class's heap and takes the best head that has a free agent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from heapq import heappush

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.policies import LeastLoaded, Policy
from wfkit.graph import dependents_of, topological_order, upward_ranks

__all__ = ["RunState"]

_fallback = LeastLoaded()


class RunState:
    def __init__(
        self,
        tasks: Mapping[str, WorkflowTask],
        agents: Sequence[AgentProfile],
        policy: Policy,
        completed: Iterable[str] = (),
        dependents: Mapping[str, list[str]] | None = None,
        order: Sequence[str] | None = None,
    ) -> None:
        self.tasks = tasks
        self.agents = [a for a in agents if a.availability]
        self.policy = policy
        self.dependents = dependents if dependents is not None else dependents_of(tasks)
        if order is None:
            order = topological_order(tasks, self.dependents)
        rank = upward_ranks(tasks, order=order, dependents=self.dependents)
        self._heaps: dict[frozenset[str], list[tuple[float, float, int, str]]] = {}
        self._candidates: dict[frozenset[str], list[AgentProfile]] = {}
        self._entry: dict[str, tuple[float, float, int, str]] = {}
        self._heap_of: dict[str, list[tuple[float, float, int, str]]] = {}
        self.waiting: dict[str, int] = {}
        self.running: dict[str, AgentProfile] = {}
        self.backoff: set[str] = set()
        self.finished: dict[str, str] = {}
        self.skip_reason: dict[str, str] = {}

        done = set(completed)
        for tid in done:
            self.finished[tid] = "completed"
        heaps, entries, heap_of, waiting = self._heaps, self._entry, self._heap_of, self.waiting
        ready = []
        for i, (tid, t) in enumerate(tasks.items()):  # one pass: keys, heaps, waiting counts
            sig = t.capability_set
            heap = heaps.get(sig)
            if heap is None:
                heap = heaps[sig] = []
                self._candidates[sig] = [a for a in self.agents if a.can_run(sig)]
            heap_of[tid] = heap
            entry = entries[tid] = (-t.priority, -rank[tid], i, tid)
            if tid in done:
                continue
            deps = t.dependencies
            n = sum(1 for d in deps if d not in done) if done else len(deps)
            if n:
                waiting[tid] = n
            else:
                ready.append((heap, entry))
        for heap, entry in ready:
            heap.append(entry)
        for heap in heaps.values():
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
        heapq.heappush(self._heap_of[tid], self._entry[tid])

    def assign(self) -> list[tuple[WorkflowTask, AgentProfile]]:
        """ready -> running for as many tasks as free capable agents allow, best first."""
        out: list[tuple[WorkflowTask, AgentProfile]] = []
        deferred: list[tuple[frozenset[str], tuple[float, float, int, str]]] = []
        free: dict[frozenset[str], list[AgentProfile]] = {}  # per class, computed once per call
        heaps = self._heaps
        select = self.policy.select
        if len(heaps) == 1:  # one capability class (the common case): no cross-class choice
            for sig, heap in heaps.items():
                if not heap:
                    return out
                cands = [a for a in self._candidates[sig] if a.current_load < a.capacity]
                tasks, running = self.tasks, self.running
                while heap and cands:
                    entry = heapq.heappop(heap)
                    task = tasks[entry[3]]
                    agent = select(task, cands)
                    if agent is None:
                        deferred.append((sig, entry))
                        continue
                    agent.current_load += 1
                    if agent.current_load >= agent.capacity:
                        cands.remove(agent)
                    running[entry[3]] = agent
                    out.append((task, agent))
            heaps = {}  # skip the general loop below
        while True:
            best = None
            best_sig: frozenset[str] = frozenset()
            for sig, heap in heaps.items():
                if not heap or (best is not None and heap[0] >= best):
                    continue
                cands = free.get(sig)
                if cands is None:
                    cands = free[sig] = [
                        a for a in self._candidates[sig] if a.current_load < a.capacity
                    ]
                if cands:
                    best, best_sig = heap[0], sig
            if best is None:
                break
            heapq.heappop(heaps[best_sig])
            task = self.tasks[best[3]]
            agent = select(task, free[best_sig])
            if agent is None:
                deferred.append((best_sig, best))
                continue
            agent.current_load += 1
            if agent.current_load >= agent.capacity:
                for cands in free.values():  # the agent is full now, for every class
                    if agent in cands:
                        cands.remove(agent)
            self.running[task.task_id] = agent
            out.append((task, agent))
        if deferred:
            if not out and not self.running:
                # A plan that waits for a busy agent must not stall an idle run.
                sig, entry = deferred.pop(0)
                cands = [a for a in self._candidates[sig] if a.current_load < a.capacity]
                agent = _fallback.select(self.tasks[entry[3]], cands)
                agent.current_load += 1
                self.running[entry[3]] = agent
                out.append((self.tasks[entry[3]], agent))
            for sig, entry in deferred:
                heapq.heappush(self._heaps[sig], entry)
        return out

    def _release(self, tid: str) -> AgentProfile:
        agent = self.running.pop(tid)
        agent.current_load -= 1
        return agent

    def complete(self, tid: str) -> None:
        """running -> completed; dependents whose last dependency this was become ready."""
        self.complete_many((tid,))

    def complete_many(self, tids: Iterable[str]) -> None:
        """running -> completed for tasks that end at the same moment (one call: the simulator
        ends many at once)."""
        running, finished, waiting = self.running, self.finished, self.waiting
        heap_of, entries, dependents = self._heap_of, self._entry, self.dependents
        for tid in tids:
            running.pop(tid).current_load -= 1
            finished[tid] = "completed"
            for nxt in dependents[tid]:
                n = waiting.get(nxt)
                if n is None:
                    continue
                if n == 1:
                    del waiting[nxt]
                    heappush(heap_of[nxt], entries[nxt])
                else:
                    waiting[nxt] = n - 1

    def fail(self, tid: str) -> list[tuple[str, str]]:
        """running -> failed; every task downstream that has not finished is skipped.

        Returns the skipped (task id, reason) pairs in topological order.
        """
        self._release(tid)
        self.finished[tid] = "failed"
        skipped: list[tuple[str, str]] = []
        stack = [(nxt, tid) for nxt in reversed(self.dependents[tid])]
        while stack:
            nxt, cause = stack.pop()
            if nxt not in self.waiting:
                continue
            del self.waiting[nxt]
            reason = f"dependency {cause!r} failed" if cause == tid else (
                f"dependency {cause!r} was skipped"
            )
            self.finished[nxt] = "skipped"
            self.skip_reason[nxt] = reason
            skipped.append((nxt, reason))
            stack.extend((d, nxt) for d in reversed(self.dependents[nxt]))
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
        self.waiting.clear()
        self.backoff.clear()
        for heap in self._heaps.values():
            heap.clear()
        return out
