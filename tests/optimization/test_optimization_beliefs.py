"""simulate plans with what it is given: durations, unless estimates say otherwise."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimization_checks import check_schedule, comm_for, heterogeneous, random_dag

import wfkit
from wfkit import AgentProfile, WorkflowTask
from wfkit.optimization.policies import Heft


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 40), seed=st.integers(0, 10_000), delays=st.booleans(),
       agents=st.integers(1, 4), placeholder=st.booleans())
def test_heft_simulated_on_durations_is_the_heft_plan(n, seed, delays, agents, placeholder):
    tasks = random_dag(n, seed, integers=False)
    if placeholder:  # estimates that say nothing (as read from a trace without them)
        for t in tasks:
            t.estimated_duration = 1.0
    pool = [AgentProfile(f"a{i}", "", ["x"], capacity=1 + i % 2) for i in range(agents)]
    d = heterogeneous(tasks, pool, seed)
    comm = comm_for(tasks, seed) if delays else None
    run = wfkit.simulate(tasks, pool, policy="heft", durations=d, comm_costs=comm)
    plan = wfkit.plan_schedule(tasks, pool, method="heft", durations=d, comm_costs=comm)
    assert run.makespan == plan.makespan
    assert run.assignment == plan.assignment
    check_schedule(tasks, pool, run, durations=d, comm_costs=comm)


def chains():
    # every estimate is a placeholder 1 s: by estimates the b-chain (3 tasks) is critical,
    # by the real durations the a-chain (20 s against 3 s)
    return [
        WorkflowTask("a1", "", ["x"], 0, 1.0), WorkflowTask("a2", "", ["x"], 0, 1.0, ["a1"]),
        WorkflowTask("b1", "", ["x"], 0, 1.0), WorkflowTask("b2", "", ["x"], 0, 1.0, ["b1"]),
        WorkflowTask("b3", "", ["x"], 0, 1.0, ["b2"]),
    ]


D = {"a1": 10.0, "a2": 10.0, "b1": 1.0, "b2": 1.0, "b3": 1.0}


@pytest.mark.parametrize("policy", ["least_loaded", "round_robin", "fastest", "heft"])
def test_priorities_use_the_durations(policy):
    agents = [AgentProfile("p", "", ["x"])]
    run = wfkit.simulate(chains(), agents, policy=policy, durations=D)
    assert min(run.start, key=run.start.get) == "a1"
    believed = wfkit.simulate(chains(), agents, policy=policy, durations=D,
                              estimates=dict.fromkeys(D, 1.0))
    assert min(believed.start, key=believed.start.get) == "b1"


def test_two_agents_finish_sooner_when_the_critical_chain_is_known():
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"])]
    tasks = [WorkflowTask("a1", "", ["x"], 0, 1.0), WorkflowTask("a2", "", ["x"], 0, 1.0, ["a1"])]
    d = {"a1": 10.0, "a2": 10.0}
    for c in "bcd":  # three chains of three 1 s tasks
        for i in range(3):
            tasks.append(WorkflowTask(f"{c}{i}", "", ["x"], 0, 1.0, [f"{c}{i - 1}"] if i else []))
            d[f"{c}{i}"] = 1.0
    run = wfkit.simulate(tasks, agents, durations=d)
    believed = wfkit.simulate(tasks, agents, durations=d, estimates=dict.fromkeys(d, 1.0))
    assert run.makespan == 20.0 < believed.makespan


def test_the_users_tasks_and_policy_are_left_as_they_were():
    tasks = chains()
    policy = Heft()
    wfkit.simulate(tasks, [AgentProfile("p", "", ["x"])], policy=policy, durations=D)
    assert [t.estimated_duration for t in tasks] == [1.0] * 5
    assert policy.durations is None and policy.comm_costs is None


def test_bad_estimates_are_refused_like_bad_durations():
    with pytest.raises(wfkit.ScheduleError, match="estimates|durations"):
        wfkit.simulate(chains(), [AgentProfile("p", "", ["x"])], durations=D,
                       estimates={"a1": 1.0})
