"""A what-if answer predicts a real run: the simulator and the engine make the same choices.

The engine runs for real (orchestrator, dispatch, asyncio tasks, sleeping handlers), on an
event loop whose clock is virtual: sleeps cost no wall time and end in exact order, so the
recorded timestamps can be compared with the simulation to the last bit.
"""

import asyncio

import pytest
from optimization_checks import run_on_virtual_time

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, WorkflowTask
from wfkit.events import TaskCompleted, TaskStarted
from wfkit.optimization.policies import Heft

DURATIONS = {  # task -> agent -> seconds; several tasks end at the same instant
    "a": {"p": 3, "q": 4, "r": 3},
    "b": {"p": 5, "q": 6, "r": 7},
    "c": {"p": 2, "q": 2.5, "r": 1.5},
    "d": {"q": 7},
    "e": {"p": 4, "q": 4.5, "r": 3.5},
    "f": {"q": 1},
    "g": {"p": 6, "q": 3, "r": 8},
    "h": {"p": 1, "q": 1.5, "r": 2},
}


def workflow():
    return [
        WorkflowTask("a", "", ["x"], 0, 3.0),
        WorkflowTask("b", "", ["x"], 0, 5.0, ["a"]),
        WorkflowTask("c", "", ["x"], 0, 2.0, ["a"]),
        WorkflowTask("d", "", ["y"], 0, 7.0),
        WorkflowTask("e", "", ["x"], 2, 4.0, ["b", "c"]),
        WorkflowTask("f", "", ["y"], 0, 1.0, ["d"]),
        WorkflowTask("g", "", ["x"], 0, 6.0),
        WorkflowTask("h", "", ["x"], 1, 1.0, ["g", "c"]),
    ]


ESTIMATES = {t.task_id: t.estimated_duration for t in workflow()}


async def sleep_for_matrix(ctx):
    await asyncio.sleep(DURATIONS[ctx.task.task_id][ctx.agent.agent_id])


def pool():
    return [
        AgentProfile("p", "", ["x"], handler=sleep_for_matrix),
        AgentProfile("q", "", ["x", "y"], handler=sleep_for_matrix),
        AgentProfile("r", "", ["x"], capacity=2, handler=sleep_for_matrix),
    ]


def live_run(policy, agents, monkeypatch):
    async def main(loop):
        orch = CollectiveAgentWorkflowOrchestrator(policy="least_loaded", progress=False)
        for a in agents:
            orch.register_agent(a)
        events = []
        orch.subscribe(events.append)
        await orch.create_workflow("w", workflow())
        result = await orch.execute_workflow("w", policy=policy(loop))
        orch.close()
        assert result["successful_tasks"] == 8
        return events, result

    events, result = run_on_virtual_time(main, monkeypatch)
    started = {e.task_id: e for e in events if isinstance(e, TaskStarted)}
    completed = {e.task_id: e for e in events if isinstance(e, TaskCompleted)}
    return started, completed, result


POLICIES = {
    "least_loaded": lambda loop: "least_loaded",
    "round_robin": lambda loop: "round_robin",
    "fastest": lambda loop: "fastest",
    "heft": lambda loop: Heft(clock=loop.time),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_simulation_predicts_the_engine_to_the_timestamp(name, monkeypatch):
    agents = pool()
    if name == "fastest":  # what the agents learned before: p looks good for g, bad for a
        agents[0].learned_durations.update({"g": 0.1, "a": 99.0})
    # the live run knows only the tasks' estimates: the simulation believes the same
    predicted = wfkit.simulate(workflow(), agents, policy=name, durations=DURATIONS,
                               estimates=ESTIMATES)
    started, completed, result = live_run(POLICIES[name], agents, monkeypatch)
    t0 = result["started_at"]
    assert {t: e.agent_id for t, e in started.items()} == predicted.assignment
    assert {t: e.timestamp - t0 for t, e in started.items()} == predicted.start
    assert {t: e.timestamp - t0 for t, e in completed.items()} == predicted.finish
    assert result["makespan"] == predicted.makespan


def test_the_policies_really_differ_here():
    plans = {name: wfkit.simulate(workflow(), pool(), policy=name, durations=DURATIONS,
                                  estimates=ESTIMATES)
             for name in POLICIES}
    assert len({tuple(sorted(p.assignment.items())) for p in plans.values()}) >= 3
