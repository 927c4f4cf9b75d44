"""HEFT, as published (Topcuoglu, Hariri and Wu, IEEE TPDS 13(3), 2002).

1. Each task's upward rank: its mean duration over the agents able to run it, plus the largest
   (mean transfer delay + upward rank) over its dependents.
2. Tasks in decreasing upward rank (ties in topological order, so a zero-cost task never comes
   before its dependencies).
3. Each goes to the agent, and slot within the agent's capacity, with the earliest finish time,
   inserting it into the earliest idle gap that is long enough (insertion-based policy). The
   data of a dependency that ran on another agent arrives after its transfer delay.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence

from wfkit.graph import upward_ranks
from wfkit.optimization.problem import Problem
from wfkit.optimization.schedule import Schedule

__all__ = ["heft", "heft_ranks", "earliest_gap", "place"]


def heft_ranks(problem: Problem) -> dict[str, float]:
    """Upward ranks with mean durations over capable agents and mean transfer delays."""
    dur = problem.dur
    mean = {tid: sum(row.values()) / len(row) for tid, row in dur.items()}
    return upward_ranks(
        problem.tasks,
        duration=lambda t: mean[t.task_id],
        comm=problem.comm if problem.comm else None,
        order=problem.order,
        dependents=problem.dependents,
    )


def earliest_gap(starts: list[float], finishes: list[float], ready: float, d: float) -> float:
    """The earliest time >= ``ready`` at which a slot's busy intervals leave ``d`` free.

    ``starts``/``finishes`` are the slot's intervals sorted by start (they never overlap, so
    the finishes are sorted too).
    """
    i = bisect_right(finishes, ready)  # every earlier interval ends by ``ready``
    t = ready
    n = len(starts)
    while i < n:
        if t + d <= starts[i]:
            return t
        if finishes[i] > t:
            t = finishes[i]
        i += 1
    return t


def heft(problem: Problem) -> Schedule:
    rank = heft_ranks(problem)
    agent_of, slot_of, start, finish = place(problem, rank)
    return problem.schedule(
        agent_of, slot_of, start, finish, method="heft", info={"ranks": rank}
    )


def place(
    problem: Problem,
    rank: Mapping[str, float],
    *,
    only: Collection[str] | None = None,
    fixed: Mapping[str, tuple[str | None, float]] | None = None,
    busy: Mapping[str, Sequence[float]] | None = None,
    not_before: float = 0.0,
) -> tuple[dict[str, str], dict[str, int], dict[str, float], dict[str, float]]:
    """HEFT's processor selection for ``only`` (default: every task), in decreasing rank.

    For re-planning a run in progress: ``fixed`` gives the (agent or None, finish time) of
    tasks already placed, ``busy`` the release times of each agent's occupied slots, and
    nothing starts before ``not_before``.
    """
    index = problem.index
    tasks = problem.tasks
    dur = problem.dur
    cost = problem.comm.cost
    slots: dict[str, list[tuple[list[float], list[float]]]] = {}
    for a in problem.agents:
        lanes: list[tuple[list[float], list[float]]] = []
        releases = sorted(busy.get(a.agent_id, ()))[: a.capacity] if busy else []
        for k in range(a.capacity):
            if k < len(releases) and releases[k] > not_before:
                lanes.append(([not_before], [releases[k]]))
            else:
                lanes.append(([], []))
        slots[a.agent_id] = lanes
    agent_of: dict[str, str] = {}
    slot_of: dict[str, int] = {}
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    where: dict[str, str | None] = {}
    done: dict[str, float] = {}
    if fixed:
        for tid, (aid, f) in fixed.items():
            where[tid] = aid
            done[tid] = f
    todo = tasks if only is None else only
    for tid in sorted(todo, key=lambda t: (-rank[t], index[t])):
        deps = tasks[tid].dependencies
        row = dur[tid]
        best_eft = best_start = 0.0
        best_agent = ""
        best_slot = -1
        for agent in problem.candidates(tid):
            aid = agent.agent_id
            d = row[aid]
            ready = not_before
            for dep in deps:
                f = done.get(dep, not_before)
                w = where.get(dep)
                if cost and w is not None and w != aid:
                    f += cost.get((dep, tid), 0.0)
                if f > ready:
                    ready = f
            for k, (ss, ff) in enumerate(slots[aid]):
                st = earliest_gap(ss, ff, ready, d)
                if best_slot < 0 or st + d < best_eft:
                    best_eft, best_start, best_agent, best_slot = st + d, st, aid, k
                if st <= ready:  # no other slot of this agent can start it sooner
                    break
        ss, ff = slots[best_agent][best_slot]
        at = bisect_right(ff, best_start)
        ss.insert(at, best_start)
        ff.insert(at, best_eft)
        agent_of[tid] = where[tid] = best_agent
        slot_of[tid] = best_slot
        start[tid] = best_start
        finish[tid] = done[tid] = best_eft
    return agent_of, slot_of, start, finish
