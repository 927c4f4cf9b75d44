"""Exact schedules with OR-Tools CP-SAT, warm-started with the best heuristic plan.

The model: each task starts at an integer time and runs on one agent *group*; per group a
cumulative constraint (a no-overlap one for a single-slot agent) keeps the number of running
tasks within capacity; a task starts after each dependency ends, plus its transfer delay when
the two run on different agents; the makespan is minimised.

Agents that are interchangeable (same capabilities, same duration for every task) form one
group when there are no transfer delays: any schedule whose load never exceeds the group's
total capacity can be dealt out to its agents' slots afterwards (interval partitioning), and
the solver no longer wastes time on symmetric assignments. With transfer delays every agent is
its own group, since co-location matters.

Durations are scaled to integers by a power of ten. When that is exact, the model is the problem;
otherwise durations and delays are rounded *down*, so the model is a relaxation and its proven
bound, scaled back, stays a valid bound of the real problem. The warm start is the heuristic
plan re-timed in those integer units (each task keeps its agent, slot and order, and starts as
soon as they allow), so it is always a solution of the model. The result is re-timed with the
true durations, and ``optimal`` is True only when the solver proved optimality on an exact
scaling, or when the plan meets the lower bound.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from wfkit.errors import MissingDependencyError
from wfkit.optimization.problem import Problem
from wfkit.optimization.schedule import Schedule

__all__ = ["exact"]

_MAX_SCALED = 10_000_000  # keep scaled horizons comfortably inside CP-SAT's integer range


def _scale(problem: Problem) -> tuple[int, bool]:
    """An integer multiplier for every duration and delay, and whether it is exact."""
    values = [v for row in problem.dur.values() for v in row.values()]
    values += list(problem.comm.cost.values())
    biggest = max(values, default=0.0)
    if biggest <= 0:
        return 1, True
    for s in (1, 10, 100, 1000, 10_000, 100_000, 1_000_000):
        if biggest * s > _MAX_SCALED:
            break
        if all(abs(v * s - round(v * s)) <= 1e-9 * max(1.0, v * s) for v in values):
            return s, True
    return max(1, 10 ** math.floor(math.log10(_MAX_SCALED / 10 / biggest))), False


def _int_retime(
    problem: Problem, hint: Schedule, sdur: dict[str, dict[str, int]], scost: dict[Any, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """The hint in integer units: each task keeps its agent, slot and order there and starts
    as soon as its slot and inputs allow (a solution of the model whatever the rounding)."""
    slot = hint.slot
    index = problem.index
    free: dict[tuple[str, int], int] = {}
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    agent = hint.agent
    for tid in sorted(problem.tasks, key=lambda t: (hint.start[t], index[t])):
        aid = agent[tid]
        assert aid is not None
        sl = (aid, slot.get(tid, 0))
        s = free.get(sl, 0)
        for dep in problem.tasks[tid].dependencies:
            e = end[dep]
            if agent[dep] != aid:
                e += scost.get((dep, tid), 0)
            if e > s:
                s = e
        start[tid] = s
        end[tid] = free[sl] = s + sdur[tid][aid]
    return start, end


def _groups(problem: Problem) -> list[list[Any]]:
    """Interchangeable agents together (only without transfer delays)."""
    if problem.comm:
        return [[a] for a in problem.agents]
    by_key: dict[Any, list[Any]] = {}
    for a in problem.agents:
        row = tuple(problem.dur[tid].get(a.agent_id) for tid in problem.order)
        by_key.setdefault((a.capability_set, row), []).append(a)
    return list(by_key.values())


def exact(problem: Problem, hint: Schedule, *, time_limit: float, workers: int | None = None,
          seed: int = 0) -> Schedule:
    """The best plan CP-SAT finds within ``time_limit`` seconds, starting from ``hint``."""
    try:
        from ortools.sat.python import cp_model
    except ImportError:  # pragma: no cover - ortools is in the optimize extra
        raise MissingDependencyError("ortools", "optimize", "exact schedules") from None
    began = time.perf_counter()
    lb = problem.lower_bound
    if hint.makespan <= lb * (1 + 1e-12) + 1e-12:
        hint.optimal = True
        hint.info.update(status="bound", solver_time=0.0, heuristic=hint.method)
        hint.method = "exact"
        return hint

    scale, exact_scale = _scale(problem)
    tasks = problem.tasks
    groups = _groups(problem)
    group_of_agent = {a.agent_id: g for g, members in enumerate(groups) for a in members}
    to_int = (lambda v: int(round(v * scale))) if exact_scale else (
        lambda v: int(math.floor(v * scale + 1e-9 * max(1.0, v * scale)))
    )
    sdur = {tid: {aid: to_int(d) for aid, d in row.items()} for tid, row in problem.dur.items()}
    scost = {k: to_int(c) for k, c in problem.comm.cost.items()}
    hint_start, hint_end = _int_retime(problem, hint, sdur, scost)
    horizon = max(max(hint_end.values(), default=0), 1)

    m = cp_model.CpModel()
    start: dict[str, Any] = {}
    end: dict[str, Any] = {}
    choice: dict[str, dict[int, Any]] = {}
    intervals: dict[int, list[tuple[Any, int]]] = {g: [] for g in range(len(groups))}
    for tid in problem.order:
        s = m.new_int_var(0, horizon, f"s_{tid}")
        start[tid] = s
        options: dict[int, int] = {}
        for agent in problem.candidates(tid):
            g = group_of_agent[agent.agent_id]
            options.setdefault(g, sdur[tid][agent.agent_id])
        lits: dict[int, Any] = {}
        if len(options) == 1:
            (g, d), = options.items()
            lits[g] = None  # no choice to make
            intervals[g].append((m.new_fixed_size_interval_var(s, d, f"i_{tid}"), d))
            end[tid] = s + d
        else:
            for g, d in options.items():
                x = m.new_bool_var(f"x_{tid}_{g}")
                lits[g] = x
                intervals[g].append(
                    (m.new_optional_fixed_size_interval_var(s, d, x, f"i_{tid}_{g}"), d)
                )
            m.add_exactly_one(lits.values())
            end[tid] = s + sum(d * lits[g] for g, d in options.items())
        choice[tid] = lits
        m.add(end[tid] <= horizon)
    for g, members in enumerate(groups):
        capacity = sum(a.capacity for a in members)
        ivs = [iv for iv, _ in intervals[g]]
        if not ivs:
            continue
        if capacity == 1:
            m.add_no_overlap(ivs)
        else:
            m.add_cumulative(ivs, [1] * len(ivs), capacity)
    same_vars: dict[tuple[str, str], list[tuple[int, Any]]] = {}
    for tid in problem.order:
        for dep in tasks[tid].dependencies:
            c = scost.get((dep, tid), 0)
            if not c:
                m.add(start[tid] >= end[dep])
                continue
            shared = [g for g in choice[tid] if g in choice[dep]]
            both = []
            for g in shared:
                b = m.new_bool_var(f"same_{dep}_{tid}_{g}")
                for lit in (choice[tid][g], choice[dep][g]):
                    if lit is not None:
                        m.add_implication(b, lit)
                both.append((g, b))
            same_vars[(dep, tid)] = both
            m.add(start[tid] >= end[dep] + c - c * sum(b for _, b in both))
    makespan = m.new_int_var(0, horizon, "makespan")
    for tid in problem.order:
        if not problem.dependents[tid]:
            m.add(makespan >= end[tid])
    lb_scaled = int(math.ceil(lb * scale - 1e-9)) if exact_scale else int(math.floor(lb * scale))
    m.add(makespan >= min(lb_scaled, horizon))
    m.minimize(makespan)

    # warm start: the heuristic plan, re-timed in the model's integer units
    for tid in problem.order:
        m.add_hint(start[tid], hint_start[tid])
        g_hint = group_of_agent[hint.agent[tid]]
        for g, x in choice[tid].items():
            if x is not None:
                m.add_hint(x, g == g_hint)
    for (dep, tid), both in same_vars.items():
        same = hint.agent[dep] == hint.agent[tid]
        for g, b in both:
            m.add_hint(b, same and group_of_agent[hint.agent[tid]] == g)
    m.add_hint(makespan, max(max(hint_end.values(), default=0), min(lb_scaled, horizon)))

    solver = cp_model.CpSolver()
    remaining = max(0.05, time_limit - (time.perf_counter() - began))
    solver.parameters.max_time_in_seconds = remaining
    solver.parameters.num_workers = workers or max(1, min(8, os.cpu_count() or 1))
    solver.parameters.random_seed = seed
    status = solver.solve(m)
    solve_time = time.perf_counter() - began
    status_name = solver.status_name(status)
    # rounded down, the model is a relaxation: its bound holds for the real durations too
    bound = max(0.0, solver.best_objective_bound / scale)
    proven_lb = max(lb, math.ceil(bound - 1e-9) if problem.integral() else bound)
    info: dict[str, Any] = {
        "status": status_name,
        "solver_time": solve_time,
        "heuristic": hint.method,
        "heuristic_makespan": hint.makespan,
        "scale": scale,
        "exact_scale": exact_scale,
        "groups": [[a.agent_id for a in g] for g in groups],
    }
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        hint.info.update(info)
        hint.method = "exact"
        hint._lower_bound = min(proven_lb, hint.makespan)
        hint.optimal = hint.makespan <= hint.lower_bound * (1 + 1e-12) + 1e-12
        return hint

    # deal each group's tasks out to its agents' slots, then re-time with the true durations
    chosen: dict[str, int] = {}
    for tid in problem.order:
        lits = choice[tid]
        if len(lits) == 1:
            chosen[tid] = next(iter(lits))
        else:
            chosen[tid] = next(g for g, x in lits.items() if solver.boolean_value(x))
    sol_start: dict[str, int] = {tid: int(solver.value(start[tid])) for tid in problem.order}
    agent_of: dict[str, str] = {}
    slot_of: dict[str, int] = {}
    for g, members in enumerate(groups):
        mine = sorted(
            (tid for tid in problem.order if chosen[tid] == g),
            key=lambda t: (sol_start[t], problem.index[t]),
        )
        free = [(i, a.agent_id, k) for i, a in enumerate(members) for k in range(a.capacity)]
        busy: list[tuple[int, tuple[int, str, int]]] = []
        still: list[tuple[int, tuple[int, str, int]]]
        for tid in mine:
            at = sol_start[tid]
            still = []
            for e, sl in busy:
                if e <= at:
                    free.append(sl)
                else:
                    still.append((e, sl))
            busy = still
            free.sort()
            sl = free.pop(0)
            agent_of[tid], slot_of[tid] = sl[1], sl[2]
            busy.append((at + sdur[tid][sl[1]], sl))
    sched = problem.retime(agent_of, slot_of, sol_start, method="exact")
    if sched.makespan > hint.makespan:  # rounding made it worse: keep the heuristic plan
        sched = hint
        sched.method = "exact"
    optimal = (status == cp_model.OPTIMAL and exact_scale) or (
        sched.makespan <= proven_lb * (1 + 1e-12) + 1e-12
    )
    sched.optimal = bool(optimal)
    sched._lower_bound = sched.makespan if optimal else min(proven_lb, sched.makespan)
    sched.info.update(info)
    return sched

