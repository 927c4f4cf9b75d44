"""``plan_schedule``: static plans by HEFT, critical-path list scheduling, or CP-SAT."""

from __future__ import annotations

import numbers
import time

from wfkit.errors import ScheduleError
from wfkit.optimization.costs import CommArg, DurationsArg
from wfkit.optimization.heft import heft
from wfkit.optimization.inputs import AgentsLike, TasksLike
from wfkit.optimization.listsched import list_schedule
from wfkit.optimization.problem import Problem
from wfkit.optimization.schedule import Schedule

__all__ = ["plan_schedule", "METHODS"]

METHODS = ("heft", "list", "exact")


SIMULATED_POLICIES = ("least_loaded", "round_robin", "fastest")


def heuristics(problem: Problem) -> list[Schedule]:
    """Every heuristic plan wfkit has for ``problem``: HEFT, list scheduling, and the runs of
    the simulated policies (re-timed as plans: same agents, slots and order)."""
    from wfkit.optimization.simulator import simulate

    plans = [heft(problem), list_schedule(problem)]
    comm = problem.comm.cost or None
    for policy in SIMULATED_POLICIES:
        run = simulate(problem.tasks, problem.agents, policy=policy, durations=problem.dur,
                       comm_costs=comm)
        plans.append(problem.retime(run.assignment, run.slot, run.start,
                                    method=f"simulate:{policy}"))
    return plans


def plan_schedule(
    tasks: TasksLike,
    agents: AgentsLike,
    *,
    method: str = "heft",
    time_limit: float = 10.0,
    durations: DurationsArg = None,
    comm_costs: CommArg = None,
    workers: int | None = None,
    seed: int = 0,
) -> Schedule:
    """A static plan: every task's agent, slot and start time, before anything runs.

    - ``"heft"``: HEFT as published (upward ranks on mean durations and mean transfer delays,
      insertion-based earliest finish time) for heterogeneous agents;
    - ``"list"``: critical-path list scheduling, for identical agents;
    - ``"exact"``: OR-Tools CP-SAT, warm-started with the best plan of every heuristic (HEFT,
      list, and the simulated policies), returning the best plan found within ``time_limit``
      seconds (``workers`` search threads, ``seed``; with several threads, which of several
      optimal plans comes back may vary).

    ``Schedule.optimal`` is True only when proven (by the solver, or because the plan meets the
    lower bound), and ``lower_bound`` is the best bound known (the solver's when it ran).
    ``durations`` and ``comm_costs`` take the forms of :func:`wfkit.simulate`.
    """
    if method not in METHODS:
        raise ScheduleError(
            f"unknown planning method {method!r}: use one of {', '.join(map(repr, METHODS))}"
        )
    if (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, numbers.Real)
        or not time_limit > 0
    ):
        raise ScheduleError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")
    began = time.perf_counter()
    problem = Problem(tasks, agents, durations, comm_costs)
    if method == "heft":
        sched = heft(problem)
    elif method == "list":
        sched = list_schedule(problem)
    else:
        from wfkit.optimization.exact import exact

        best = min(heuristics(problem), key=lambda s: s.makespan)  # ties: the first
        remaining = float(time_limit) - (time.perf_counter() - began)
        sched = exact(problem, best, time_limit=max(0.05, remaining), workers=workers, seed=seed)
    sched.info["wall_time"] = time.perf_counter() - began
    return sched
