"""Critical-path list scheduling (Graham's list scheduling with b-level priorities).

Designed for identical agents: whenever an agent slot is free and tasks are ready, the ready
task with the longest remaining critical path (its upward rank; ties to the task with more
dependents, then topological order) starts on it. No slot idles while a task it can run is
ready. On heterogeneous pools it still honours capabilities, per-agent durations and transfer
delays, choosing among the free slots the one that finishes the task first.
"""

from __future__ import annotations

from heapq import heappop, heappush

from wfkit.optimization.heft import heft_ranks
from wfkit.optimization.problem import Problem
from wfkit.optimization.schedule import Schedule

__all__ = ["list_schedule"]


def list_schedule(problem: Problem) -> Schedule:
    rank = heft_ranks(problem)
    tasks = problem.tasks
    dependents = problem.dependents
    index = problem.index
    dur = problem.dur
    key = {tid: (-rank[tid], -len(dependents[tid]), index[tid], tid) for tid in tasks}
    waiting = {tid: len(t.dependencies) for tid, t in tasks.items()}
    ready: list[tuple[float, int, int, str]] = [key[t] for t, n in waiting.items() if not n]
    ready.sort()
    free_slots = {a.agent_id: list(range(a.capacity)) for a in problem.agents}
    running: list[tuple[float, str]] = []
    agent_of: dict[str, str] = {}
    slot_of: dict[str, int] = {}
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    nfree = sum(a.capacity for a in problem.agents)
    now = 0.0
    while ready or running:
        skipped = []
        while ready and nfree:
            entry = heappop(ready)
            tid = entry[3]
            best = None
            for agent in problem.candidates(tid):
                aid = agent.agent_id
                if not free_slots[aid]:
                    continue
                s = max(now, problem.data_ready(tid, aid, agent_of, finish))
                f = s + dur[tid][aid]
                if best is None or f < best[0]:
                    best = (f, s, aid)
            if best is None:  # every agent able to run it is busy: others may still start
                skipped.append(entry)
                continue
            f, s, aid = best
            slot = free_slots[aid]
            slot.sort()
            slot_of[tid] = slot.pop(0)
            nfree -= 1
            agent_of[tid], start[tid], finish[tid] = aid, s, f
            heappush(running, (f, tid))
        for entry in skipped:
            heappush(ready, entry)
        if not running:
            break
        now = running[0][0]
        while running and running[0][0] == now:
            tid = heappop(running)[1]
            free_slots[agent_of[tid]].append(slot_of[tid])
            nfree += 1
            for nxt in dependents[tid]:
                n = waiting[nxt] - 1
                waiting[nxt] = n
                if not n:
                    heappush(ready, key[nxt])
    return problem.schedule(agent_of, slot_of, start, finish, method="list")
