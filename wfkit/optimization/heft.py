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

from wfkit.agents.model import AgentProfile
from wfkit.graph import upward_ranks
from wfkit.optimization.problem import Problem
from wfkit.optimization.schedule import Schedule

__all__ = ["heft", "heft_ranks", "earliest_gap", "place"]

_INF = float("inf")
# interchangeable lanes: tails, ends of the last idle gaps, the lanes, their (agent, slot)
_Pool = tuple[list[float], list[float], list["_Lane"], list[tuple[str, int]]]


def heft_ranks(problem: Problem) -> dict[str, float]:
    """Upward ranks with mean durations over capable agents and mean transfer delays."""
    flat = problem.flat
    if len(flat) == len(problem.tasks):
        mean = flat
    else:
        dur = problem.dur
        mean = {
            tid: flat[tid] if tid in flat else sum(dur[tid].values()) / len(dur[tid])
            for tid in problem.tasks
        }
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


class _Lane:
    """One agent slot's busy intervals, and its idle gaps for the earliest-fit search.

    ``starts``/``finishes`` are the intervals sorted by start (zero-length ones included: they
    separate what comes before them from what comes after in the slot's order); ``gap_starts``
    / ``gap_ends`` the idle gaps of positive length before ``tail``, the end of the last
    interval. A task of positive duration only ever fits a gap, so the search scans gaps, not
    intervals: HEFT stays near-linear on long lanes.
    """

    __slots__ = ("starts", "finishes", "gap_starts", "gap_ends", "tail", "pooled")

    def __init__(self, busy_until: float = 0.0) -> None:
        self.starts: list[float] = []
        self.finishes: list[float] = []
        self.gap_starts: list[float] = []
        self.gap_ends: list[float] = []
        self.tail = busy_until
        # (tails, ends of last gaps, position) in each pool of interchangeable lanes it is in
        self.pooled: list[tuple[list[float], list[float], int]] = []

    def earliest(self, ready: float, d: float) -> float:
        if d <= 0:
            if ready < self.tail and self.starts:
                return earliest_gap(self.starts, self.finishes, ready, d)
            return ready
        gs, ge = self.gap_starts, self.gap_ends
        i = bisect_right(ge, ready)
        n = len(gs)
        while i < n:
            t = gs[i] if gs[i] > ready else ready
            if t + d <= ge[i]:
                return t
            i += 1
        return self.tail if self.tail > ready else ready

    def insert(self, t: float, d: float) -> None:
        end = t + d
        at = bisect_right(self.finishes, t)
        self.starts.insert(at, t)
        self.finishes.insert(at, end)
        if t >= self.tail:
            if t > self.tail:
                self.gap_starts.append(self.tail)
                self.gap_ends.append(t)
            self.tail = end
            return
        gs, ge = self.gap_starts, self.gap_ends
        j = bisect_right(gs, t) - 1
        if j < 0 or t >= ge[j] or (d <= 0 and t == gs[j]):
            return  # at a boundary of busy time: no gap changes
        a, b = gs[j], ge[j]
        del gs[j], ge[j]
        if end < b:
            gs.insert(j, end)
            ge.insert(j, b)
        if t > a:
            gs.insert(j, a)
            ge.insert(j, t)


def _pooled(pool: _Pool, ready: float, d: float) -> tuple[int, float]:
    """The first lane of interchangeable ones (same duration for the task, no transfer
    delays) where a task ready at ``ready`` finishes earliest, and its start: what the
    per-agent scan of :func:`place` picks, ties included (the finish ``st + d`` decides, as
    there). :func:`place` first tries the tails alone, when no lane has a gap after ``ready``.
    """
    lanes = pool[2]
    best = (0, _INF)
    best_eft = _INF
    for i, lane in enumerate(lanes):
        ge = lane.gap_ends
        if d > 0 and (not ge or ge[-1] <= ready):
            st = lane.tail if lane.tail > ready else ready
        else:
            st = lane.earliest(ready, d)
        if i == 0 or st + d < best_eft:
            best_eft, best = st + d, (i, st)
        if st <= ready:  # nothing can start it sooner
            break
    return best


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
    dur: Mapping[str, Mapping[str, float]] | None = None  # rows, for tasks not placed by pool
    cost = problem.comm.cost
    slots: dict[str, list[_Lane]] = {}
    for a in problem.agents:
        lanes: list[_Lane] = []
        releases = sorted(busy.get(a.agent_id, ()))[: a.capacity] if busy else []
        for k in range(a.capacity):
            lane = _Lane()
            if k < len(releases) and releases[k] > not_before:
                lane.insert(not_before, releases[k] - not_before)
            lanes.append(lane)
        slots[a.agent_id] = lanes
    # Interchangeable lanes pooled per capability class: each lane's tail and the end of its
    # last idle gap, side by side, so that when no gap lies after a task's ready time the
    # earliest lane is found by C-level min/max rather than a Python loop over every agent.
    pools: dict[object, _Pool] = {}
    if not cost:
        for sig, cands in problem.capable.items():
            lanes = [lane for a in cands for lane in slots[a.agent_id]]
            if len(lanes) < 2:
                continue
            tails = [lane.tail for lane in lanes]
            glast = [lane.gap_ends[-1] if lane.gap_ends else -_INF for lane in lanes]
            ids = [(a.agent_id, k) for a in cands for k in range(len(slots[a.agent_id]))]
            pools[sig] = (tails, glast, lanes, ids)
            for i, lane in enumerate(lanes):
                lane.pooled.append((tails, glast, i))
    agent_of: dict[str, str] = {}
    slot_of: dict[str, int] = {}
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    where: dict[str, str | None] = {}  # with transfer delays: where each output is
    done = finish  # when each output exists (with ``fixed``, theirs too)
    if fixed:
        done = {}
        for tid, (aid, f) in fixed.items():
            where[tid] = aid
            done[tid] = f
    flat = problem.flat
    # decreasing rank, ties in topological order (a stable sort keeps the order of equals)
    todo = problem.order if only is None else sorted(only, key=index.__getitem__)
    for tid in sorted(todo, key=rank.__getitem__, reverse=True):
        task = tasks[tid]
        deps = task.dependencies
        best_eft = best_start = 0.0
        best_agent = ""
        best_slot = -1
        ready = not_before
        if not cost:  # the inputs are ready at the same time on every agent
            for dep in deps:
                f = done.get(dep, not_before)
                if f > ready:
                    ready = f
        pool = pools.get(task._capset) if pools else None
        if pool is not None and (d := flat.get(tid)) is not None:
            tails, glast = pool[0], pool[1]
            i = -1
            if d > 0 and max(glast) <= ready:  # no gap after ready anywhere: the tails
                m = min(tails)
                if m > ready:
                    i = tails.index(m)
                else:
                    i = 0
                    while tails[i] > ready:
                        i += 1
                    m = ready
                if i and min(tails[:i]) + d == m + d:  # an earlier lane rounds the same
                    i = -1
                best_start = m
            if i < 0:
                i, best_start = _pooled(pool, ready, d)
            best_agent, best_slot = pool[3][i]
            best_eft = best_start + d
            candidates: Sequence[AgentProfile] = ()
        else:
            candidates = problem.candidates(tid)
            if dur is None:
                dur = problem.dur
            row = dur[tid]
        for agent in candidates:
            aid = agent.agent_id
            d = row[aid]
            if cost:
                ready = not_before
                for dep in deps:
                    f = done.get(dep, not_before)
                    w = where.get(dep)
                    if w is not None and w != aid:
                        f += cost.get((dep, tid), 0.0)
                    if f > ready:
                        ready = f
            for k, lane in enumerate(slots[aid]):
                ge = lane.gap_ends
                if d > 0 and (not ge or ge[-1] <= ready):  # no gap after ready: the tail
                    st = lane.tail if lane.tail > ready else ready
                else:
                    st = lane.earliest(ready, d)
                if best_slot < 0 or st + d < best_eft:
                    best_eft, best_start, best_agent, best_slot = st + d, st, aid, k
                if st <= ready:  # no other slot of this agent can start it sooner
                    break
        lane = slots[best_agent][best_slot]
        lane.insert(best_start, best_eft - best_start)
        for tails, glast, i in lane.pooled:
            tails[i] = lane.tail
            glast[i] = lane.gap_ends[-1] if lane.gap_ends else -_INF
        agent_of[tid] = best_agent
        if cost:
            where[tid] = best_agent
        slot_of[tid] = best_slot
        start[tid] = best_start
        finish[tid] = best_eft
        if fixed:
            done[tid] = best_eft
    return agent_of, slot_of, start, finish
