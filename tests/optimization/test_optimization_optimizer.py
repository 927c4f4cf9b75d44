"""WorkflowOptimizer: metrics from recorded runs, suggestions proven by simulation."""

import asyncio
import copy

import pytest
from optimization_checks import run_on_virtual_time

import wfkit
from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    OptimizationMetric,
    UnknownWorkflowError,
    ValidationError,
    WorkflowOptimizer,
    WorkflowTask,
)
from wfkit.metrics.recorder import AdvancedWorkflowMetrics

SCALE = 0.01  # seconds per estimated unit
SPEED = {"fast": 0.5, "std": 1.0, "spare": 1.5, "val": 1.0}
COST = {"fast": 4.0, "std": 1.0, "spare": 0.5, "val": 1.0}


async def work(ctx):
    if ctx.task.task_id == "check" and ctx.attempt == 1:
        raise RuntimeError("flaky validation service")
    await asyncio.sleep(ctx.task.estimated_duration * SPEED[ctx.agent.agent_id] * SCALE)
    return ctx.task.task_id


def agents():
    caps = {"fast": ["analysis", "generation"], "std": ["analysis"], "spare": ["analysis"],
            "val": ["validation"]}
    capacity = {"fast": 1, "std": 2, "spare": 2, "val": 1}
    return [AgentProfile(aid, aid, caps[aid], performance_metrics={"cost_per_second": COST[aid]},
                         capacity=capacity[aid], handler=work) for aid in caps]


def tasks():
    return [
        WorkflowTask("load", "", ["analysis"], 0, 2.0),
        WorkflowTask("clean", "", ["analysis"], 0, 3.0, ["load"]),
        WorkflowTask("stats", "", ["analysis"], 0, 6.0, ["load"]),
        WorkflowTask("plot", "", ["generation"], 9, 2.0, ["load"]),  # loud but not critical
        WorkflowTask("extra", "", ["analysis"], 9, 4.0, ["load"]),
        WorkflowTask("report", "", ["generation"], 0, 3.0, ["clean", "stats", "plot"]),
        WorkflowTask("check", "", ["validation"], 0, 1.0, ["report"], retries=1),
    ]


@pytest.fixture
def recorded(monkeypatch):
    """Two real runs of the workflow, on a virtual clock (exact, repeatable durations)."""
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    for a in agents():
        orch.register_agent(a)
    metrics = AdvancedWorkflowMetrics().attach(orch)

    async def runs(loop):
        await orch.create_workflow("wf", tasks())
        for _ in range(2):
            result = await orch.execute_workflow("wf")
            assert result["successful_tasks"] == 7

    run_on_virtual_time(runs, monkeypatch)
    yield orch, metrics
    orch.close()


def learned_of(result, pool):
    ids = {a.agent_id for a in pool if a.availability}
    return {t: {a: d for a, d in row.items() if a in ids}
            for t, row in result["learned_durations"].items()}


def resimulate(result, policy=None):
    ow = result["optimized_workflow"]
    return wfkit.simulate(ow["tasks"], ow["agents"], policy=policy or ow["policy"],
                          durations=learned_of(result, ow["agents"]))


@pytest.mark.slow  # CP-SAT
async def test_current_metrics_come_from_the_recorded_runs(recorded):
    orch, metrics = recorded
    result = await WorkflowOptimizer(orch, metrics, time_limit=1).optimize_workflow(
        "wf", ["reduce_execution_time"])
    current = result["current_metrics"]
    wf = metrics.workflow_frame()
    tf = metrics.task_frame()
    assert current["runs"] == 2 and current["source"] == "metrics"
    assert current["execution_time"] == pytest.approx(wf["duration"].mean())
    assert current["success_rate"] == 1.0
    capacity = sum(a.capacity for a in orch.agents.values())
    per_run = [
        tf[tf["run_id"] == r]["duration"].sum() / (capacity * d)
        for r, d in zip(wf["run_id"], wf["duration"], strict=True)
    ]
    assert current["resource_usage"] == pytest.approx(sum(per_run) / 2)
    costs = [
        sum(d * COST[a] for d, a in zip(tf[tf["run_id"] == r]["duration"],
                                        tf[tf["run_id"] == r]["agent_id"], strict=True))
        for r in wf["run_id"]
    ]
    assert current["cost"] == pytest.approx(sum(costs) / 2)
    # learned durations: the mean of what was observed for a (task, agent) pair
    done = tf[tf["status"] == "completed"]
    estimate = {t.task_id: t.estimated_duration for t in tasks()}
    for (tid, aid), group in done.groupby(["task_id", "agent_id"]):
        assert result["learned_durations"][tid][aid] == pytest.approx(group["duration"].mean())
        assert result["learned_durations"][tid][aid] == pytest.approx(
            estimate[tid] * SPEED[aid] * SCALE)
    # pairs never observed: the task's base duration times the agent's observed speed
    for tid, row in result["learned_durations"].items():
        for aid, d in row.items():
            assert d == pytest.approx(estimate[tid] * SPEED[aid] * SCALE)
    # check failed its first attempt in both runs: (2 + 1) / (4 + 2)
    assert result["failure_rates"] == {"check": pytest.approx(0.5)}


@pytest.mark.slow  # CP-SAT
async def test_every_goal_and_the_figures_are_confirmed_by_simulation(recorded):
    orch, metrics = recorded
    before_agents = {a.agent_id: (a.capacity, a.availability) for a in orch.agents.values()}
    before_tasks = {t.task_id: (t.priority, t.retries) for t in orch.workflows["wf"]["tasks"]}
    optimizer = WorkflowOptimizer(orch, metrics, time_limit=2)
    result = await optimizer.optimize_workflow(
        "wf", ["reduce_execution_time", "reduce_resource_usage", "improve_success_rate",
               "reduce_cost"])
    kinds = {s["type"]: s for s in result["optimization_suggestions"]}
    assert {"add_retries", "remove_capacity"} <= set(kinds)
    assert kinds.keys() & {"cheapest_policy", "drop_expensive_agents"}
    assert kinds.keys() & {"prioritise_by_rank", "heft_policy", "exact_plan", "add_capacity"}
    base = result["current_metrics"]["simulated"]
    for s in result["optimization_suggestions"]:
        assert s["expected_improvement"] > 0
        assert s["baseline"] == pytest.approx(base[s["metric"]])
        assert s["description"] and s["reason"] and s["changes"]
    # the optimised workflow, simulated again, gives the promised figures
    ow = result["optimized_workflow"]
    again = resimulate(result)
    assert again.makespan == pytest.approx(result["expected_metrics"]["execution_time"])
    assert again.mean_utilization == pytest.approx(result["expected_metrics"]["resource_usage"])
    assert result["score"]["optimized"] > result["score"]["current"]
    # the live orchestrator is untouched; the optimised objects are copies
    assert {a.agent_id: (a.capacity, a.availability)
            for a in orch.agents.values()} == before_agents
    assert {t.task_id: (t.priority, t.retries)
            for t in orch.workflows["wf"]["tasks"]} == before_tasks
    live = set(map(id, orch.agents.values())) | set(map(id, orch.workflows["wf"]["tasks"]))
    assert not live & set(map(id, ow["agents"] + ow["tasks"]))


async def test_retries_suggestion_is_simulated_with_the_learned_failure_rate(recorded):
    orch, metrics = recorded
    result = await WorkflowOptimizer(orch, metrics, samples=300).optimize_workflow(
        "wf", ["improve_success_rate"])
    (s,) = result["optimization_suggestions"]
    assert s["type"] == "add_retries"
    change = s["changes"][0]
    assert change["id"] == "check" and change["from"] == 1 and change["to"] > 1
    # p = 0.5 per attempt: all of 2 attempts fail 1/4 of the time; check is 1 of 7 tasks
    assert s["baseline"] == pytest.approx(1 - 0.25 / 7, abs=0.01)
    assert s["expected"] == pytest.approx(1 - 0.5 ** (change["to"] + 1) / 7, abs=0.01)
    assert s["expected_improvement"] == pytest.approx(s["expected"] / s["baseline"] - 1)
    assert "failed 2 of 4 attempts" in s["reason"]
    ow = result["optimized_workflow"]
    assert next(t for t in ow["tasks"] if t.task_id == "check").retries == change["to"]


async def test_capacity_no_schedule_needs_is_removed(recorded):
    orch, metrics = recorded
    result = await WorkflowOptimizer(orch, metrics).optimize_workflow(
        "wf", "reduce_resource_usage")
    (s,) = result["optimization_suggestions"]
    assert s["type"] == "remove_capacity"
    assert s["simulated"]["execution_time"] <= result["current_metrics"]["simulated"][
        "execution_time"] + 1e-9
    assert s["simulated"]["capacity"] < 6
    assert s["expected"] > s["baseline"]  # utilisation goes up
    # rebuild the change by hand and simulate it
    pool = [copy.copy(a) for a in orch.agents.values()]
    keep = []
    for a in pool:
        change = next((c for c in s["changes"] if c["id"] == a.agent_id), None)
        if change is None:
            keep.append(a)
        elif change["to"] > 0:
            a.capacity = change["to"]
            keep.append(a)
    again = wfkit.simulate(orch.workflows["wf"]["tasks"], keep,
                           durations=learned_of(result, keep))
    assert again.makespan == pytest.approx(s["simulated"]["execution_time"])
    assert again.mean_utilization == pytest.approx(s["expected"])


@pytest.mark.slow  # CP-SAT
async def test_cost_and_time_suggestions(recorded):
    orch, metrics = recorded
    result = await WorkflowOptimizer(orch, metrics, time_limit=2).optimize_workflow(
        "wf", ["reduce_cost", "reduce_execution_time"])
    by_type = {s["type"]: s for s in result["optimization_suggestions"]}
    cheap = by_type["cheapest_policy"]
    assert cheap["expected"] < cheap["baseline"] and "rates" in cheap["reason"]
    from wfkit.optimization.policies import Cheapest

    pool = list(orch.agents.values())
    again = wfkit.simulate(orch.workflows["wf"]["tasks"], pool,
                           policy=Cheapest(COST, learned_of(result, pool)),
                           durations=learned_of(result, pool))
    cost = sum((again.finish[t] - again.start[t]) * COST[a] for t, a in again.agent.items())
    assert cost == pytest.approx(cheap["expected"])
    timed = [s for s in result["optimization_suggestions"] if s["goal"] ==
             "reduce_execution_time"]
    assert timed
    for s in timed:
        assert s["expected"] < s["baseline"]
    time_only = await WorkflowOptimizer(orch, metrics, time_limit=2).optimize_workflow(
        "wf", "reduce_execution_time")
    again = resimulate(time_only)
    assert again.makespan == pytest.approx(time_only["expected_metrics"]["execution_time"])
    assert again.makespan < time_only["current_metrics"]["simulated"]["execution_time"]


async def test_an_expensive_redundant_agent_is_dropped():
    async def noop(ctx):
        return None

    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("std", "", ["a"], performance_metrics={
        "cost_per_second": 1.0}, capacity=2, handler=noop))
    orch.register_agent(AgentProfile("gold", "", ["a"], performance_metrics={
        "cost_per_second": 10.0}, capacity=2, handler=noop))
    await orch.create_workflow("w", [WorkflowTask(f"t{i}", "", ["a"], 0, 1.0)
                                     for i in range(6)])
    result = await WorkflowOptimizer(orch).optimize_workflow("w", "reduce_cost")
    by_type = {s["type"]: s for s in result["optimization_suggestions"]}
    drop = by_type["drop_expensive_agents"]
    assert drop["changes"] == [{"object": "agent", "id": "gold", "field": "registered",
                                "from": True, "to": False}]
    assert drop["baseline"] == 3 * 1.0 + 3 * 10.0  # least_loaded: three tasks each
    assert drop["expected"] == 6.0 and drop["simulated"]["execution_time"] == 3.0
    ow = result["optimized_workflow"]
    assert [a.agent_id for a in ow["agents"]] == ["std"]
    assert result["expected_metrics"]["cost"] == 6.0
    orch.close()


@pytest.mark.slow  # CP-SAT
async def test_metric_weights_decide_the_combination(recorded):
    orch, metrics = recorded
    speed = WorkflowOptimizer(orch, metrics, time_limit=1)
    speed.add_optimization_metric(OptimizationMetric("execution_time", 0.0, 1.0))
    fast = await speed.optimize_workflow("wf", ["reduce_execution_time",
                                                "reduce_resource_usage"])
    thrift = WorkflowOptimizer(orch, metrics, time_limit=1)
    thrift.add_optimization_metric(OptimizationMetric("resource_usage", 0.0, 1.0, 1.0))
    lean = await thrift.optimize_workflow("wf", ["reduce_execution_time",
                                                 "reduce_resource_usage"])
    assert fast["expected_metrics"]["execution_time"] <= lean["expected_metrics"][
        "execution_time"] + 1e-12
    assert lean["expected_metrics"]["resource_usage"] >= fast["expected_metrics"][
        "resource_usage"] - 1e-12
    assert lean["expected_metrics"]["resource_usage"] > lean["current_metrics"]["simulated"][
        "resource_usage"]


async def test_without_a_metrics_recorder_the_last_result_is_used(recorded):
    orch, _ = recorded
    result = await WorkflowOptimizer(orch).optimize_workflow("wf", ["improve_success_rate"])
    assert result["current_metrics"]["source"] == "last_result"
    assert result["current_metrics"]["runs"] == 1
    assert "check" in result["failure_rates"]


async def test_a_workflow_that_never_ran_is_simulated_on_estimates():
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    for a in agents():
        orch.register_agent(a)
    await orch.create_workflow("new", tasks())
    result = await WorkflowOptimizer(orch, time_limit=1).optimize_workflow(
        "new", ["reduce_execution_time", "improve_success_rate"])
    assert result["current_metrics"]["runs"] == 0
    assert result["current_metrics"]["source"] == "simulation"
    assert result["learned_durations"]["stats"]["std"] == 6.0
    assert any("no recorded runs" in n for n in result["notes"])
    assert any("nothing to retry" in n for n in result["notes"])
    orch.close()


def test_optimization_metric_checks_and_scores():
    m = OptimizationMetric("execution_time", 10.0, 2.0, 5.0)
    assert m.lower_is_better and m.achievement(10.0) == 0.5 and m.achievement(4.0) == 1.0
    s = OptimizationMetric("success_rate", 0.9, 1.0, 1.0)
    assert not s.lower_is_better and s.achievement(0.9) == 0.9
    with pytest.raises(ValidationError, match="unknown optimisation metric 'speed'"):
        OptimizationMetric("speed", 1.0, 1.0, 1.0)
    with pytest.raises(ValidationError, match="weight must be >= 0"):
        OptimizationMetric("cost", 1.0, -1.0, 1.0)
    with pytest.raises(ValidationError, match="target_value must be a number >= 0 or None"):
        OptimizationMetric("cost", 1.0, 1.0, "low")


async def test_bad_goals_and_workflows(recorded):
    orch, metrics = recorded
    optimizer = WorkflowOptimizer(orch, metrics)
    with pytest.raises(ValidationError, match="unknown optimisation goal 'go_faster'"):
        await optimizer.optimize_workflow("wf", ["go_faster"])
    with pytest.raises(UnknownWorkflowError, match="no workflow 'nope'"):
        await optimizer.optimize_workflow("nope", ["reduce_cost"])
    with pytest.raises(ValidationError, match="takes an OptimizationMetric"):
        optimizer.add_optimization_metric({"metric_name": "cost"})
    with pytest.raises(ValidationError, match="needs a CollectiveAgentWorkflowOrchestrator"):
        WorkflowOptimizer(object())


async def analysis_team(**analyst):
    async def noop(ctx):
        return None

    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("analyst", "", ["analysis"], handler=noop, **analyst))
    for w in ("writer1", "writer2"):
        orch.register_agent(AgentProfile(w, "", ["writing"], handler=noop))
    await orch.create_workflow("team", [WorkflowTask(f"a{i}", "", ["analysis"], 0, 10.0)
                                        for i in range(12)])
    return orch


async def test_at_the_bound_of_these_agents_the_pool_is_what_to_change():
    """Twelve independent analysis tasks, one analyst, two idle writers."""
    orch = await analysis_team(performance_metrics={"cost_per_second": 2.0})
    result = await WorkflowOptimizer(orch).optimize_workflow("team", ["reduce_execution_time"])
    assert result["allow"] == ["agents", "capacity", "policy", "priorities"]
    assert result["current_metrics"]["simulated"]["execution_time"] == 120.0
    by_type = {s["type"]: s for s in result["optimization_suggestions"]}
    assert set(by_type) == {"add_capacity", "add_agent"}  # capabilities are not allowed
    slot = by_type["add_capacity"]
    assert slot["changes"] == [{"object": "agent", "id": "analyst", "field": "capacity",
                                "from": 1, "to": 2}]
    assert slot["expected"] == 60.0 and slot["expected_improvement"] == 0.5
    clone = by_type["add_agent"]
    assert clone["changes"] == [{"object": "agent", "id": "analyst_2", "field": "registered",
                                 "from": False, "to": True, "like": "analyst"}]
    assert clone["simulated"]["execution_time"] == 60.0
    # the same work on two agents at the same rate costs the same: 12 x 10 s x 2.0
    assert clone["simulated"]["cost"] == 240.0 and "2 per second" in clone["reason"]
    assert "{analysis}" in clone["reason"] and "no schedule on these agents" in result["notes"][0]
    # the optimised pool, simulated again, gives the promised makespan
    ow = result["optimized_workflow"]
    again = wfkit.simulate(ow["tasks"], ow["agents"], policy=ow["policy"])
    assert again.makespan == result["expected_metrics"]["execution_time"] < 120.0
    assert [a.agent_id for a in orch.agents.values()] == ["analyst", "writer1", "writer2"]
    orch.close()


async def test_idle_agents_are_granted_the_bounding_capability_when_allowed():
    orch = await analysis_team()
    result = await WorkflowOptimizer(orch).optimize_workflow(
        "team", "reduce_execution_time", allow=["capabilities"])
    (grant,) = result["optimization_suggestions"]
    assert grant["type"] == "grant_capabilities"
    assert grant["changes"] == [
        {"object": "agent", "id": w, "field": "capabilities", "from": ["writing"],
         "to": ["analysis", "writing"]} for w in ("writer1", "writer2")]
    assert grant["expected"] == 40.0  # 12 tasks on three agents
    ow = result["optimized_workflow"]
    assert all(a.can_run(frozenset({"analysis"})) for a in ow["agents"])
    assert wfkit.simulate(ow["tasks"], ow["agents"]).makespan == 40.0
    assert not any(a.can_run(frozenset({"analysis"})) for a in orch.agents.values()
                   if a.agent_id != "analyst")
    orch.close()


async def test_a_granted_capability_keeps_one_given_as_a_plain_string():
    """``capabilities="writing"`` is one capability; the grant adds to it, not to its letters."""

    async def noop(ctx):
        return None

    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("analyst", "", "analysis", handler=noop))
    orch.register_agent(AgentProfile("writer", "", "writing", handler=noop))
    await orch.create_workflow("team", [WorkflowTask(f"a{i}", "", ["analysis"], 0, 10.0)
                                        for i in range(4)])
    result = await WorkflowOptimizer(orch).optimize_workflow(
        "team", "reduce_execution_time", allow=["capabilities"])
    (grant,) = result["optimization_suggestions"]
    assert grant["type"] == "grant_capabilities"
    writer = next(a for a in result["optimized_workflow"]["agents"] if a.agent_id == "writer")
    assert writer.capability_set == {"analysis", "writing"}
    orch.close()


async def test_allow_limits_the_kinds_of_change():
    orch = await analysis_team()
    only_policy = await WorkflowOptimizer(orch).optimize_workflow(
        "team", ["reduce_execution_time", "reduce_resource_usage"], allow="policy")
    assert only_policy["optimization_suggestions"] == []
    assert any("no allowed change of the pool" in n for n in only_policy["notes"])
    with pytest.raises(ValidationError, match="unknown kind of change 'servers'.*'capacity'"):
        await WorkflowOptimizer(orch).optimize_workflow("team", allow=["servers"])
    orch.close()
