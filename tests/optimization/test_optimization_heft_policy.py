"""policy="heft": executes a HEFT plan's assignment and order, and adapts to real durations."""

import asyncio
import random

import pytest
from optimization_checks import (
    check_schedule,
    comm_for,
    heterogeneous,
    random_dag,
    run_on_virtual_time,
)
from test_optimization_plans import paper_example

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, WorkflowTask
from wfkit.agents.dispatch import RunState
from wfkit.agents.policies import Policy
from wfkit.events import TaskStarted
from wfkit.optimization.policies import Heft


class Rigid(Policy):
    """Executes a plan to the letter: planned agent, planned order, whatever happens."""

    name = "rigid"

    def __init__(self, plan):
        self.plan = plan

    def prepare(self, tasks, agents):
        self.next = dict.fromkeys(self.plan.order, 0)

    def select(self, task, candidates):
        aid = self.plan.agent[task.task_id]
        queue = self.plan.order[aid]
        if queue[self.next[aid]] != task.task_id:
            return None
        for agent in candidates:
            if agent.agent_id == aid:
                self.next[aid] += 1
                return agent
        return None


@pytest.mark.parametrize("seed", range(8))
def test_with_exact_estimates_the_run_is_the_plan(seed):
    tasks = random_dag(40, seed)
    agents = [AgentProfile(f"a{i}", "", ["x"]) for i in range(3)]
    durations = heterogeneous(tasks, agents, seed)
    comm = comm_for(tasks, seed) if seed % 2 else None
    plan = wfkit.plan_schedule(tasks, agents, durations=durations, comm_costs=comm)
    run = wfkit.simulate(tasks, agents, policy=Heft(durations, comm), durations=durations,
                         comm_costs=comm)
    assert run.assignment == plan.assignment
    assert run.start == pytest.approx(plan.start)
    assert run.makespan == pytest.approx(plan.makespan)
    check_schedule(tasks, agents, run, durations=durations, comm_costs=comm)


def test_the_published_example_runs_as_planned():
    tasks, agents, durations, comm = paper_example()
    run = wfkit.simulate(tasks, agents, policy=Heft(durations, comm), durations=durations,
                         comm_costs=comm)
    assert run.makespan == 80.0
    # a Heft() without figures plans on the durations the simulation is given ...
    policy = Heft()
    given = wfkit.simulate(tasks, agents, policy=policy, durations=durations, comm_costs=comm)
    assert given.makespan == 80.0 and policy.durations is None
    # ... or on estimates, when told to believe them: here, that every task takes 1 s
    estimates = {t.task_id: t.estimated_duration for t in tasks}
    believed = wfkit.simulate(tasks, agents, policy=policy, durations=durations,
                              comm_costs=comm, estimates=estimates)
    assert policy.schedule.assignment == wfkit.plan_schedule(
        tasks, agents, comm_costs=comm).assignment
    assert believed.makespan != 80.0
    check_schedule(tasks, agents, believed, durations=durations, comm_costs=comm)


def test_an_exact_plan_executes_as_planned():
    # one search thread and a fixed seed: the same optimum every time (many different
    # optima are followed in test_optimization_plan_follower.py)
    tasks, agents, durations, comm = paper_example()
    plan = wfkit.plan_schedule(tasks, agents, method="exact", durations=durations,
                               comm_costs=comm, workers=1, seed=0)
    run = wfkit.simulate(tasks, agents, policy=plan.to_policy(), durations=durations,
                         comm_costs=comm)
    assert run.assignment == plan.assignment
    assert run.makespan == pytest.approx(plan.makespan)


def test_it_adapts_when_an_agent_is_slower_than_estimated():
    """Plans made on estimates meet an agent that is three times slower than believed."""
    adaptive, rigid, least = [], [], []
    for seed in range(10):
        tasks = random_dag(50, seed)
        agents = [AgentProfile(f"a{i}", "", ["x"]) for i in range(4)]
        estimates = {t.task_id: {a.agent_id: t.estimated_duration * (1 + 0.5 * k)
                                 for k, a in enumerate(agents)} for t in tasks}
        rng = random.Random(seed)
        actual = {tid: {aid: d * rng.lognormvariate(0, 0.3) * (3.0 if aid == "a0" else 1.0)
                        for aid, d in row.items()} for tid, row in estimates.items()}
        plan = wfkit.plan_schedule(tasks, agents, durations=estimates)
        policy = Heft(durations=estimates)
        run = wfkit.simulate(tasks, agents, policy=policy, durations=actual)
        check_schedule(tasks, agents, run, durations=actual)
        assert policy._follower.replans >= 1  # it noticed a0 and planned again
        adaptive.append(run.makespan)
        rigid.append(wfkit.simulate(tasks, agents, policy=Rigid(plan),
                                    durations=actual).makespan)
        least.append(wfkit.simulate(tasks, agents, durations=actual).makespan)
    assert sum(adaptive) < 0.7 * sum(rigid)
    assert sum(adaptive) < sum(least)


@pytest.mark.slow  # CP-SAT
def test_plain_noise_costs_less_than_following_the_plan_rigidly():
    adaptive, rigid = [], []
    for seed in range(40):
        tasks = random_dag(50, seed)
        agents = [AgentProfile(f"a{i}", "", ["x"]) for i in range(4)]
        estimates = heterogeneous(tasks, agents, seed)
        rng = random.Random(100 + seed)
        actual = {tid: {aid: d * rng.lognormvariate(0, 0.3) for aid, d in row.items()}
                  for tid, row in estimates.items()}
        plan = wfkit.plan_schedule(tasks, agents, durations=estimates)
        adaptive.append(wfkit.simulate(tasks, agents, policy=Heft(durations=estimates),
                                       durations=actual).makespan)
        rigid.append(wfkit.simulate(tasks, agents, policy=Rigid(plan),
                                    durations=actual).makespan)
    assert sum(adaptive) < sum(rigid)


def test_a_plan_for_agents_that_are_gone_still_runs():
    tasks = random_dag(15, 2)
    both = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"])]
    plan = wfkit.plan_schedule(tasks, both)
    assert "q" in plan.assignment.values()
    run = wfkit.simulate(tasks, both[:1], policy=plan.to_policy())
    assert set(run.assignment.values()) == {"p"}
    check_schedule(tasks, both[:1], run)


def test_resumed_tasks_do_not_hold_the_plan_back():
    tasks = {t.task_id: t for t in random_dag(12, 4)}
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"])]
    done = ["t0", "t1", "t2"]
    for tid in done:
        tasks[tid].status = "completed"  # as the engine marks resumed tasks
    # drive the state machine by hand: finish tasks in dispatch order
    started = []
    state = RunState(tasks, agents, Heft(), completed=done)
    running = []
    while not state.done:
        pairs = state.assign()
        assert pairs or running, "the run stalled"
        for task, _agent in pairs:
            task.status = "running"
            started.append(task.task_id)
            running.append(task.task_id)
        tid = running.pop(0)
        tasks[tid].status = "completed"
        state.complete(tid)
    assert sorted(started) == sorted(set(tasks) - set(done))


def test_the_engine_runs_the_heft_plan(monkeypatch):
    """A live run (on a virtual clock): agents of different speeds, sleeps equal to the
    expected durations; the engine starts every task where and when the plan says."""
    speed = {"fast": 1.0, "slow": 2.5}

    async def work(ctx):
        await asyncio.sleep(ctx.task.estimated_duration * speed[ctx.agent.agent_id])
        return ctx.task.task_id

    agents = [AgentProfile(aid, aid, ["x"], handler=work,
                           performance_metrics={"speed_ratio": s}) for aid, s in speed.items()]
    tasks = [WorkflowTask("src", "", ["x"], 0, 0.5),
             *(WorkflowTask(f"b{i}", "", ["x"], 0, d, ["src"])
               for i, d in enumerate([3.0, 0.5, 1.0, 0.5])),
             WorkflowTask("sink", "", ["x"], 0, 0.5, [f"b{i}" for i in range(4)])]
    plan = wfkit.plan_schedule(
        tasks, agents, durations=lambda t, a: t.estimated_duration * speed[a.agent_id]
    )
    assert plan.assignment != wfkit.simulate(tasks, agents).assignment  # not least_loaded's

    async def main(loop):
        orch = CollectiveAgentWorkflowOrchestrator(progress=False)
        for a in agents:
            orch.register_agent(a)
        started = []
        orch.subscribe(lambda e: started.append(e) if isinstance(e, TaskStarted) else None)
        await orch.create_workflow("fork", tasks)
        policy = Heft(clock=loop.time)
        result = await orch.execute_workflow("fork", policy=policy)
        orch.close()
        return policy, started, result

    policy, started, result = run_on_virtual_time(main, monkeypatch)
    assert result["successful_tasks"] == 6
    assert policy.schedule.assignment == plan.assignment
    assert {e.task_id: e.agent_id for e in started} == plan.assignment
    t0 = result["started_at"]
    assert {e.task_id: e.timestamp - t0 for e in started} == pytest.approx(plan.start)
    assert result["makespan"] == pytest.approx(plan.makespan)
