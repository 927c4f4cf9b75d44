"""Lower bounds that count the work before and after each task, and certified exact plans."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimization_checks import brute_force_optimum, check_schedule, heterogeneous, random_dag
from test_optimization_plan_follower import any_plan

import wfkit
from wfkit import AgentProfile, WorkflowTask
from wfkit.graph import lower_bounds
from wfkit.optimization.exact import _int_retime, _scale
from wfkit.optimization.planning import heuristics
from wfkit.optimization.problem import Problem


def fork_join(k, seed, *, head=100.0, tail=40.0, micro=False):
    """One task, k in parallel after it, one join: the shape of a Makeflow bwa run."""
    rng = random.Random(seed)
    tasks = [WorkflowTask("index", "", ["x"], 0, 1.0)]
    d = {"index": head}
    for i in range(k):
        tasks.append(WorkflowTask(f"align{i}", "", ["x"], 0, 1.0, ["index"]))
        d[f"align{i}"] = rng.uniform(2, 30) if not micro else round(rng.uniform(2, 30), 6)
    tasks.append(WorkflowTask("join", "", ["x"], 0, 1.0, [f"align{i}" for i in range(k)]))
    d["join"] = tail
    return tasks, d


def identical(p):
    return [AgentProfile(f"p{i}", "", ["x"]) for i in range(p)]


def test_head_plus_parallel_work_plus_tail_bounds_a_fork_join():
    tasks, d = fork_join(200, 1)
    parallel = sum(v for k, v in d.items() if k.startswith("align"))
    parts = lower_bounds(tasks, identical(4), lambda t: d[t.task_id])
    assert parts["energy"] == pytest.approx(100.0 + parallel / 4 + 40.0)
    assert parts["energy_window"]["head"] == 100.0
    assert parts["energy_window"]["tail"] == pytest.approx(40.0)
    assert parts["bound"] == parts["energy"] > max(parts["critical_path"], parts["total"])
    plan = wfkit.plan_schedule(tasks, identical(4), method="list", durations=d)
    assert plan.gap < 0.005  # certified within 0.5 %: the old bound left over 10 %
    assert plan.makespan / max(parts["critical_path"], parts["total"]) - 1 > 0.1


def test_the_energy_bound_per_class_counts_confined_work():
    # the gpu-tasks can run only on the one gpu slot, after a 10 s head and before a 5 s tail
    tasks = [WorkflowTask("h", "", ["x"], 0, 10.0)]
    tasks += [WorkflowTask(f"g{i}", "", ["gpu"], 0, 4.0, ["h"]) for i in range(5)]
    tasks.append(WorkflowTask("t", "", ["x"], 0, 5.0, [f"g{i}" for i in range(5)]))
    agents = [AgentProfile("cpu", "", ["x"], capacity=8), AgentProfile("gpu", "", ["gpu"])]
    parts = lower_bounds(tasks, agents)
    assert parts["energy"] == 10.0 + 20.0 + 5.0
    assert parts["energy_window"]["class"] == frozenset({"gpu"})
    assert wfkit.plan_schedule(tasks, agents).makespan == 35.0


@pytest.mark.slow  # CP-SAT
@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), seed=st.integers(0, 10_000), agents=st.integers(1, 2))
def test_bounds_never_exceed_the_optimum(n, seed, agents):
    tasks = random_dag(n, seed, integers=False)
    pool = identical(agents)
    d = heterogeneous(tasks, pool, seed)
    best = brute_force_optimum(tasks, pool, d)
    problem = Problem(tasks, pool, d)
    assert problem.lower_bound <= best * (1 + 1e-9)
    exact = wfkit.plan_schedule(tasks, pool, method="exact", durations=d, workers=1,
                                time_limit=1.0)
    assert exact.lower_bound <= best * (1 + 1e-9)


@pytest.mark.slow  # CP-SAT
@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 40), seed=st.integers(0, 10_000), mixed=st.booleans())
def test_bounds_never_exceed_any_feasible_plan(n, seed, mixed):
    caps = ("x", "y") if mixed else ("x",)
    tasks = random_dag(n, seed, capabilities=caps, integers=False)
    pool = [AgentProfile("xy", "", ["x", "y"], capacity=2), AgentProfile("x", "", ["x"]),
            AgentProfile("y", "", ["y"], capacity=3)]
    d = heterogeneous(tasks, pool, seed)
    bound = Problem(tasks, pool, d).lower_bound
    for k in range(5):
        plan = any_plan(tasks, pool, d, None, seed + k)
        assert bound <= plan.makespan * (1 + 1e-9)


def test_exact_with_microsecond_durations_keeps_the_hint_and_a_bound():
    # a Makeflow-like fork-join with microsecond runtimes: scaled to integers the durations are
    # rounded, and the heuristic's start times no longer fit them (before, CP-SAT ended UNKNOWN
    # after the whole time limit); re-timed in the model's integer units the hint is a
    # solution, and the rounded-down model still proves a bound of the real problem
    tasks, d = fork_join(200, 2, head=1130.461781, tail=496.091783, micro=True)
    agents = identical(4)
    problem = Problem(tasks, agents, d)
    hint = min(heuristics(problem), key=lambda p: p.makespan)
    scale, exact_scale = _scale(problem)
    assert not exact_scale
    sdur = {t: {a: math.floor(v * scale) for a, v in row.items()} for t, row in problem.dur.items()}
    start, end = _int_retime(problem, hint, sdur, {})
    for t in tasks:  # a solution of the integer model: order, capacity
        assert all(start[t.task_id] >= end[dep] for dep in t.dependencies)
    events = sorted([(start[t], 1) for t in start] + [(end[t], -1) for t in end])
    load = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        load += delta
        assert load <= 4
    s = wfkit.plan_schedule(tasks, agents, method="exact", durations=d, time_limit=5.0,
                            workers=1)
    assert s.info["status"] in ("OPTIMAL", "FEASIBLE")
    check_schedule(tasks, agents, s, durations=d)
    assert problem.lower_bound <= s.lower_bound <= s.makespan
    assert s.gap < 0.001


@pytest.mark.parametrize("seed", range(4))
def test_exact_starts_from_the_best_of_every_heuristic(seed):
    tasks = random_dag(25, seed, capabilities=("x", "y"), integers=False)
    pool = [AgentProfile("xy", "", ["x", "y"], capacity=2), AgentProfile("x", "", ["x"]),
            AgentProfile("y", "", ["y"], capacity=2)]
    d = heterogeneous(tasks, pool, seed)
    plans = heuristics(Problem(tasks, pool, d))
    assert {p.method for p in plans} == {
        "heft", "list", "simulate:least_loaded", "simulate:round_robin", "simulate:fastest"}
    for p in plans:
        check_schedule(tasks, pool, p, durations=d)
    best = min(p.makespan for p in plans)
    s = wfkit.plan_schedule(tasks, pool, method="exact", durations=d, time_limit=0.5,
                            workers=1)
    assert s.info.get("heuristic_makespan") == best or s.info["status"] == "bound"
    assert s.makespan <= best + 1e-9
    assert math.isfinite(s.gap) and s.gap >= -1e-9
