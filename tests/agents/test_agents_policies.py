"""Policies: least_loaded, fastest (learned), round_robin, heft and callables."""

import pytest

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, WorkflowTask
from wfkit.events import TaskStarted
from wfkit.optimization.policies import Heft


async def noop(ctx):
    return None


def tasks(n, **kw):
    return [WorkflowTask(f"t{i}", "", ["work"], 0, 1.0, **kw) for i in range(n)]


async def assignments(policy, agents, work):
    orch = CollectiveAgentWorkflowOrchestrator(policy=policy, progress=False)
    for a in agents:
        orch.register_agent(a)
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow("w", work)
    await orch.execute_workflow("w")
    return [e.agent_id for e in events if isinstance(e, TaskStarted)], orch


async def test_least_loaded_spreads_by_load_ratio():
    agents = [AgentProfile("big", "", ["work"], capacity=4, handler=noop),
              AgentProfile("small", "", ["work"], capacity=1, handler=noop)]
    order, _ = await assignments("least_loaded", agents, tasks(5))
    # ratios: big 0/4 -> small 0/1 ties broken by registration; then big until it is as full
    assert order == ["big", "small", "big", "big", "big"]


async def test_round_robin_takes_turns():
    agents = [AgentProfile(f"a{i}", "", ["work"], capacity=5, handler=noop) for i in range(3)]
    order, _ = await assignments("round_robin", agents, tasks(7))
    assert order == ["a0", "a1", "a2", "a0", "a1", "a2", "a0"]


async def test_fastest_uses_learned_durations():
    slow = AgentProfile("slow", "", ["work"], capacity=5, handler=noop,
                        performance_metrics={"speed_ratio": 3.0})
    fast = AgentProfile("fast", "", ["work"], capacity=5, handler=noop,
                        performance_metrics={"speed_ratio": 0.5})
    order, _ = await assignments("fastest", [slow, fast], tasks(4))
    assert order == ["fast"] * 4
    # learned per-task durations win over the ratio
    slow.learned_durations["t0"] = 0.001
    fast.learned_durations["t0"] = 5.0
    order, _ = await assignments("fastest", [slow, fast], tasks(1))
    assert order == ["slow"]


async def test_heft_prefers_the_agent_that_finishes_first():
    a = AgentProfile("a", "", ["work"], capacity=2, handler=noop,
                     performance_metrics={"speed_ratio": 2.0})
    b = AgentProfile("b", "", ["work"], capacity=2, handler=noop,
                     performance_metrics={"speed_ratio": 1.0})
    order, _ = await assignments("heft", [a, b], tasks(2))
    assert order[0] == "b"


async def test_callable_policy_gets_free_capable_candidates():
    seen = []

    def pick_last(task, candidates):
        seen.append([c.agent_id for c in candidates])
        return candidates[-1]

    agents = [AgentProfile("a", "", ["work"], handler=noop),
              AgentProfile("b", "", ["work", "x"], handler=noop),
              AgentProfile("c", "", ["x"], handler=noop)]
    order, _ = await assignments(pick_last, agents, tasks(2))
    assert seen[0] == ["a", "b"] and order[0] == "b"


async def test_callable_policy_may_return_an_agent_id():
    agents = [AgentProfile("a", "", ["work"], handler=noop),
              AgentProfile("b", "", ["work"], handler=noop)]
    order, _ = await assignments(lambda t, c: "b" if "b" in [x.agent_id for x in c] else c[0],
                                 agents, tasks(1))
    assert order == ["b"]


async def test_a_deferring_policy_never_stalls_an_idle_run():
    agents = [AgentProfile("a", "", ["work"], handler=noop)]
    order, orch = await assignments(lambda t, c: None, agents, tasks(3))
    assert order == ["a", "a", "a"]


class Watched(Heft):
    """A Heft that records every attribute written on this very instance after __init__."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.__dict__["writes"] = []

    def __setattr__(self, name, value):
        if "writes" in self.__dict__:
            self.writes.append(name)
        super().__setattr__(name, value)

    def fresh(self):
        copy = super().fresh()
        copy.__dict__["writes"] = []  # the copy's own record
        return copy


async def test_runs_and_simulations_never_write_into_the_callers_policy():
    # The optimiser may simulate (on virtual time, in a thread) while a run follows the same
    # policy object: each works on its own copy, so neither sees the other's plan or clock.
    agents = [AgentProfile(f"a{i}", "", ["work"], capacity=1, handler=noop) for i in range(2)]
    policy = Watched()
    wfkit.simulate(tasks(4), agents, policy=policy)
    order, _ = await assignments(policy, agents, tasks(4))
    assert len(order) == 4
    assert policy.writes == []
    assert policy.schedule is not None and set(policy.schedule.task_ids) == {
        f"t{i}" for i in range(4)
    }


def test_heft_is_named_here_and_lives_with_the_planners(monkeypatch):
    from wfkit.agents import policies
    from wfkit.errors import PolicyError

    monkeypatch.setitem(policies.POLICIES, "heft", "wfkit.optimization.policies:Heft")
    chosen = policies.resolve_policy("heft")
    assert type(chosen) is Heft and policies.POLICIES["heft"] is Heft  # loaded once, then kept
    monkeypatch.setitem(policies.POLICIES, "turns", "wfkit.agents.policies:RoundRobin")
    assert type(policies.resolve_policy("turns")) is policies.RoundRobin
    monkeypatch.setitem(policies.POLICIES, "model", "wfkit.agents.model:AgentProfile")
    with pytest.raises(PolicyError, match="'wfkit.agents.model:AgentProfile' is not a Policy"):
        policies.resolve_policy("model")
