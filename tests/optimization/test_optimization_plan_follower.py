"""Any feasible plan, followed with exact durations, runs as planned (property test).

Plans come from every planner (HEFT, list, CP-SAT with several seeds and worker counts, so
different optima with slack and other orders) and from simulated policies, including a random
one; pools mix capabilities and capacities; with and without transfer delays.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optimization_checks import check_schedule, comm_for, heterogeneous, mixed_pool, random_dag
from test_optimization_plans import paper_example

import wfkit

PLANNERS = ["heft", "list", "exact", "least_loaded", "round_robin", "random", "any"]


def any_plan(tasks, agents, durations, comm, seed):
    """A random feasible plan: a random topological order, a random capable agent and slot
    for each task, and random idle time before each start."""
    rng = random.Random(seed)
    by_id = {t.task_id: t for t in tasks}
    waiting = {t.task_id: len(t.dependencies) for t in tasks}
    below = {t.task_id: [] for t in tasks}
    for t in tasks:
        for d in t.dependencies:
            below[d].append(t.task_id)
    ready = [tid for tid, k in waiting.items() if not k]
    free, agent, slot, start, finish = {}, {}, {}, {}, {}
    while ready:
        tid = ready.pop(rng.randrange(len(ready)))
        task = by_id[tid]
        a = rng.choice([a for a in agents if a.availability and set(task.required_capabilities)
                        <= set(a.capabilities)])
        k = rng.randrange(a.capacity)
        begin = free.get((a.agent_id, k), 0.0)
        for d in task.dependencies:
            c = (comm or {}).get((d, tid), 0.0) if agent[d] != a.agent_id else 0.0
            begin = max(begin, finish[d] + c)
        begin += rng.choice([0.0, 0.0, rng.uniform(0, 5)])
        agent[tid], slot[tid], start[tid] = a.agent_id, k, begin
        finish[tid] = free[(a.agent_id, k)] = begin + durations[tid][a.agent_id]
        for nxt in below[tid]:
            waiting[nxt] -= 1
            if not waiting[nxt]:
                ready.append(nxt)
    return wfkit.Schedule(
        task_ids=[t.task_id for t in tasks], agent=agent, slot=slot, start=start, finish=finish,
        capacities={a.agent_id: a.capacity for a in agents if a.availability}, lower_bound=0.0,
        method="any",
    )


def make_plan(planner, tasks, agents, durations, comm, seed, workers):
    if planner in ("heft", "list", "exact"):
        return wfkit.plan_schedule(tasks, agents, method=planner, durations=durations,
                                   comm_costs=comm, seed=seed, workers=workers,
                                   time_limit=0.3)
    if planner == "any":
        return any_plan(tasks, agents, durations, comm, seed)
    policy = planner
    if planner == "random":
        rng = random.Random(seed)

        def policy(task, candidates):
            return rng.choice(candidates)

    return wfkit.simulate(tasks, agents, policy=policy, durations=durations, comm_costs=comm)


def follow(plan, tasks, agents, durations, comm):
    return wfkit.simulate(tasks, agents, policy=plan.to_policy(), durations=durations,
                          comm_costs=comm)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 18),
    graph_seed=st.integers(0, 10_000),
    planner=st.sampled_from(PLANNERS),
    seed=st.integers(0, 50),
    workers=st.sampled_from([1, 2, 4, 8]),
    delays=st.booleans(),
    mixed=st.booleans(),
    integers=st.booleans(),
)
@pytest.mark.slow  # CP-SAT
def test_any_feasible_plan_followed_with_exact_durations_runs_as_planned(
    n, graph_seed, planner, seed, workers, delays, mixed, integers
):
    if mixed:
        tasks = random_dag(n, graph_seed, capabilities=("x", "y"), integers=integers)
        agents = mixed_pool()
    else:
        tasks = random_dag(n, graph_seed, integers=integers)
        agents = [wfkit.AgentProfile(f"a{i}", "", ["x"], capacity=1 + i % 2) for i in range(3)]
    durations = heterogeneous(tasks, agents, graph_seed)
    comm = comm_for(tasks, graph_seed) if delays else None
    plan = make_plan(planner, tasks, agents, durations, comm, seed, workers)
    check_schedule(tasks, agents, plan, durations=durations, comm_costs=comm)
    run = follow(plan, tasks, agents, durations, comm)
    check_schedule(tasks, agents, run, durations=durations, comm_costs=comm)
    assert run.assignment == plan.assignment
    assert run.makespan <= plan.makespan * (1 + 1e-9) + 1e-9
    for tid, s in run.start.items():  # every task as early as the plan's order allows
        assert s <= plan.start[tid] * (1 + 1e-9) + 1e-9


@pytest.mark.slow  # CP-SAT
def test_many_optimal_plans_of_the_published_example_run_as_planned():
    """CP-SAT returns different optima for different seeds and worker counts (with slack,
    in other orders); each one runs as planned."""
    tasks, agents, durations, comm = paper_example()
    plans = set()
    for seed in range(12):
        for workers in (1, 2, 4, 8):
            plan = wfkit.plan_schedule(tasks, agents, method="exact", durations=durations,
                                       comm_costs=comm, seed=seed, workers=workers,
                                       time_limit=2.0)
            plans.add(tuple(sorted(plan.start.items())))
            run = follow(plan, tasks, agents, durations, comm)
            assert run.assignment == plan.assignment
            assert run.makespan <= plan.makespan
            check_schedule(tasks, agents, run, durations=durations, comm_costs=comm)
    assert len(plans) > 1  # the test does follow several different plans


@pytest.mark.parametrize("delays", [False, True])
def test_a_plan_that_waits_without_need_runs_sooner(delays):
    """A feasible plan with idle time nobody needs: followed, every task starts as early as its
    slot and inputs allow, on the planned agents."""
    tasks = random_dag(12, 3)
    agents = [wfkit.AgentProfile("p", "", ["x"]), wfkit.AgentProfile("q", "", ["x"])]
    durations = heterogeneous(tasks, agents, 3)
    comm = comm_for(tasks, 3) if delays else None
    plan = wfkit.plan_schedule(tasks, agents, durations=durations, comm_costs=comm)
    late = wfkit.Schedule(
        task_ids=plan.task_ids, agent=plan.agent, slot=plan.slot,
        start={t: s * 1.5 + 1 for t, s in plan.start.items()},
        finish={t: s * 1.5 + 1 + (plan.finish[t] - s) for t, s in plan.start.items()},
        capacities=plan.capacities, lower_bound=plan.lower_bound, method="late",
        model=plan.model,
    )
    run = follow(late, tasks, agents, durations, comm)
    assert run.assignment == plan.assignment
    assert run.makespan == pytest.approx(plan.makespan)
