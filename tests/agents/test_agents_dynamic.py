"""Dynamic workflows in the engine: map over run-time data, conditions and trigger rules.

Ordering is asserted from recorded events and timestamps, never from wall-clock durations.
"""

import asyncio

import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    ValidationError,
    Workflow,
    WorkflowTask,
)
from wfkit.agents.dispatch import RunState
from wfkit.agents.policies import LeastLoaded
from wfkit.events import TaskCompleted, TaskMapped, TaskSkipped, TaskStarted


def orchestrator(capacity=4, agents=1):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001)
    for i in range(agents):
        orch.register_agent(AgentProfile(f"a{i}", f"a{i}", ["work"], capacity=capacity))
    return orch


async def run(wf, orch=None, **kw):
    orch = orch or orchestrator()
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow(wf)
    result = await orch.execute_workflow(wf.workflow_id, **kw)
    orch.close()
    return result, events


def status(result):
    return {tid: r["status"] for tid, r in result["task_results"].items()}


# -- map ---------------------------------------------------------------------------------------


async def test_map_runs_one_child_per_item_and_gathers_results_in_item_order():
    wf = Workflow("m")

    @wf.task(requires=["work"])
    def files(ctx):
        return ["c.csv", "a.csv", "b.csv"]

    @wf.task(requires=["work"], map=files)
    async def parse(ctx):
        await asyncio.sleep(0.001 * (3 - ctx.index))  # later items finish first
        return f"{ctx.index}:{ctx.item}"

    @wf.task(requires=["work"], after=[parse])
    def combine(ctx):
        return list(ctx.inputs["parse"])

    result, events = await run(wf)
    assert result["status"] == "completed"
    assert result["task_results"]["combine"]["result"] == ["0:c.csv", "1:a.csv", "2:b.csv"]
    assert result["task_results"]["parse"]["result"] == ["0:c.csv", "1:a.csv", "2:b.csv"]
    children = ["parse[0]", "parse[1]", "parse[2]"]
    for cid in children:  # each child is a task of its own, recorded on its own
        r = result["task_results"][cid]
        assert r["status"] == "completed" and r["attempts"] == 1 and r["agent_id"] == "a0"
    assert result["total_tasks"] == 6 and result["successful_tasks"] == 6
    mapped = [e for e in events if isinstance(e, TaskMapped)]
    assert [(e.task_id, e.count) for e in mapped] == [("parse", 3)]
    started = [e.task_id for e in events if isinstance(e, TaskStarted)]
    assert "parse" not in started and set(children) <= set(started)
    assert wf["parse"].status == "completed"


async def test_empty_map_completes_with_an_empty_list():
    wf = Workflow("empty")

    @wf.task(requires=["work"])
    def files(ctx):
        return []

    @wf.task(requires=["work"], map=files)
    def parse(ctx):
        raise AssertionError("no item, no child")

    @wf.task(requires=["work"], after=[parse])
    def combine(ctx):
        return ctx.inputs["parse"]

    @wf.task(requires=["work"], map=parse)
    def clean(ctx):
        raise AssertionError("no item, no child")

    @wf.task(requires=["work"], after=[clean])
    def after_clean(ctx):
        return ctx.inputs["clean"]

    result, events = await run(wf)
    assert status(result) == {"files": "completed", "parse": "completed", "combine": "completed",
                              "clean": "completed", "after_clean": "completed"}
    assert result["task_results"]["combine"]["result"] == []
    assert result["task_results"]["after_clean"]["result"] == []
    assert sorted((e.task_id, e.count) for e in events if isinstance(e, TaskMapped)) == [
        ("clean", 0), ("parse", 0)
    ]


async def test_a_failing_child_fails_the_map_the_others_still_run_dependents_skip():
    wf = Workflow("fail")
    seen = []

    @wf.task(requires=["work"])
    def items(ctx):
        return [1, 2, 0, 4]

    @wf.task(requires=["work"], map=items, retries=1)
    def invert(ctx):
        seen.append((ctx.index, ctx.attempt))
        return 1 / ctx.item

    @wf.task(requires=["work"], after=[invert])
    def total(ctx):
        return sum(ctx.inputs["invert"])

    @wf.task(requires=["work"], after=[invert], trigger="all_done")
    def report(ctx):
        return sorted(ctx.inputs)

    result, _ = await run(wf)
    st = status(result)
    assert st["invert[2]"] == "failed" and result["task_results"]["invert[2]"]["attempts"] == 2
    assert {st[f"invert[{i}]"] for i in (0, 1, 3)} == {"completed"}
    assert sorted(seen) == [(0, 1), (1, 1), (2, 1), (2, 2), (3, 1)]
    assert st["invert"] == "failed"
    assert "1 of 4 mapped tasks failed: invert[2]" in result["task_results"]["invert"]["error"]
    assert st["total"] == "skipped"
    assert result["task_results"]["total"]["error"] == "dependency 'invert' failed"
    assert st["report"] == "completed"  # all_done runs whatever its dependencies did
    assert result["task_results"]["report"]["result"] == []  # the failed map gave no input
    assert result["status"] == "failed"


async def test_each_child_has_its_own_timeout():
    wf = Workflow("timeouts")

    @wf.task(requires=["work"])
    def items(ctx):
        return [0, 1]

    @wf.task(requires=["work"], map=items, timeout=0.05)
    async def wait(ctx):
        if ctx.item:
            await asyncio.Event().wait()  # never set: only the timeout ends it
        return ctx.item

    result, _ = await run(wf)
    assert status(result)["wait[0]"] == "completed"
    assert status(result)["wait[1]"] == "failed"
    assert "TaskTimeoutError" in result["task_results"]["wait[1]"]["error"]


async def test_map_over_a_non_list_fails_the_task_with_a_clear_error():
    wf = Workflow("bad")

    @wf.task(requires=["work"])
    def count(ctx):
        return 3

    @wf.task(requires=["work"], map=count)
    def each(ctx):
        return ctx.item

    result, _ = await run(wf)
    assert status(result)["each"] == "failed"
    assert "which is a int, not a list" in result["task_results"]["each"]["error"]


async def test_map_over_a_map_is_element_wise_and_streams():
    wf = Workflow("chain")
    n = 6
    release = {}

    @wf.task(requires=["work"])
    def items(ctx):
        return list(range(n))

    @wf.task(requires=["work"], map=items)
    async def parse(ctx):
        if ctx.index == n - 1:  # the last parse waits until clean[0] has finished
            await release["clean0"].wait()
        return ctx.item * 10

    @wf.task(requires=["work"], map=parse)
    async def clean(ctx):
        if ctx.index == 0:
            release["clean0"].set()
        return ctx.item + 1

    @wf.task(requires=["work"], after=[clean])
    def combine(ctx):
        return ctx.inputs["clean"]

    release["clean0"] = asyncio.Event()
    result, events = await run(wf, orchestrator(capacity=n + 2))
    assert result["status"] == "completed"
    assert result["task_results"]["combine"]["result"] == [i * 10 + 1 for i in range(n)]
    tr = result["task_results"]
    assert tr["clean[3]"]["task_id"] == "clean[3]"
    # streaming: clean[0] ran before the last parse ended (recorded timestamps and events)
    assert tr["clean[0]"]["started_at"] <= tr[f"parse[{n - 1}]"]["finished_at"]
    ends = [e.task_id for e in events if isinstance(e, TaskCompleted)]
    assert ends.index("clean[0]") < ends.index(f"parse[{n - 1}]")
    assert sorted((e.task_id, e.count) for e in events if isinstance(e, TaskMapped)) == [
        ("clean", n), ("parse", n)
    ]


async def test_element_wise_map_skips_only_the_children_of_failed_items():
    wf = Workflow("partial")

    @wf.task(requires=["work"])
    def items(ctx):
        return [1, 0, 2]

    @wf.task(requires=["work"], map=items)
    def invert(ctx):
        return 1 / ctx.item

    @wf.task(requires=["work"], map=invert)
    def double(ctx):
        return ctx.item * 2

    result, _ = await run(wf)
    st = status(result)
    assert st["double[0]"] == st["double[2]"] == "completed"
    assert st["double[1]"] == "skipped"
    assert result["task_results"]["double[1]"]["error"] == "dependency 'invert[1]' failed"
    assert st["invert"] == "failed" and st["double"] == "skipped"


def test_element_wise_map_with_a_condition_is_refused():
    wf = Workflow("x")

    @wf.task(requires=["work"])
    def items(ctx):
        return [1]

    @wf.task(requires=["work"], map=items)
    def a(ctx):
        return 1

    with pytest.raises(ValidationError, match="element by element"):
        wf.task(lambda ctx: 1, task_id="b", requires=["work"], map=a, when=lambda ctx: True)
        wf.validate()


def test_map_must_name_a_task():
    with pytest.raises(ValidationError, match="map= takes task ids"):
        Workflow("x").task(lambda ctx: 1, task_id="b", map=3)
    with pytest.raises(ValidationError, match="cannot map over its own result"):
        WorkflowTask("a", "a", [], 0, 1.0, map="a")
    t = WorkflowTask("a", "a", [], 0, 1.0, ["z"], map="y")
    assert t.dependencies == ["y", "z"]


def test_run_state_expands_in_its_own_lists_and_leaves_the_graph_alone():
    from wfkit.graph import TaskGraph

    tasks = [
        WorkflowTask("src", "src", ["w"], 0, 1.0),
        WorkflowTask("m", "m", ["w"], 0, 1.0, map="src"),
    ]
    graph = TaskGraph(tasks)
    agent = AgentProfile("a", "a", ["w"], capacity=10)
    state = RunState(graph, [agent], LeastLoaded())
    [(t, _)] = state.assign()
    assert t.task_id == "src" and state.complete("src") == []
    [held] = state.take_held()
    children, ended = state.expand(held.task_id, 3)
    assert [c.task_id for c in children] == ["m[0]", "m[1]", "m[2]"] and ended == []
    assert len(graph.ids) == 2 and "m[0]" not in graph.index
    assert [t.task_id for t, _ in state.assign()] == ["m[0]", "m[1]", "m[2]"]
    assert state.complete("m[1]") == [] and state.complete("m[0]") == []
    assert state.complete("m[2]") == [("m", "")] and state.finished["m"] == "completed"
    assert state.done and state.children("m") == ["m[0]", "m[1]", "m[2]"]


# -- conditions and trigger rules --------------------------------------------------------------


def branch_workflow(size):
    wf = Workflow("branch")

    @wf.task(requires=["work"])
    def measure(ctx):
        return size

    @wf.task(requires=["work"], after=[measure],
             when={"field": "inputs.measure", "op": ">", "value": 100})
    def big(ctx):
        return "big path"

    @wf.task(requires=["work"], after=[measure],
             when={"not": {"field": "inputs.measure", "op": ">", "value": 100}})
    def small(ctx):
        return "small path"

    @wf.task(requires=["work"], after=[big, small], trigger="none_failed_min_one_success")
    def join(ctx):
        return sorted(ctx.inputs.values())

    @wf.task(requires=["work"], after=[big, small])
    def strict(ctx):  # all_success: a skipped branch skips it
        return "never"

    return wf


async def test_two_opposite_conditions_choose_a_branch_and_the_join_runs():
    result, events = await run(branch_workflow(500))
    st = status(result)
    assert st["big"] == "completed" and st["small"] == "skipped"
    assert result["task_results"]["small"]["error"] == (
        "condition not inputs.measure > 100 was false"
    )
    assert st["join"] == "completed"
    assert result["task_results"]["join"]["result"] == ["big path"]
    assert st["strict"] == "skipped"
    assert result["task_results"]["strict"]["error"] == "dependency 'small' was skipped"
    assert result["status"] == "completed"
    skipped = {e.task_id: e.reason for e in events if isinstance(e, TaskSkipped)}
    assert set(skipped) == {"small", "strict"}

    result, _ = await run(branch_workflow(5))
    assert status(result)["big"] == "skipped" and status(result)["small"] == "completed"
    assert result["task_results"]["join"]["result"] == ["small path"]


async def test_a_task_returning_a_branch_name_routes_with_a_declarative_condition():
    wf = Workflow("route")

    @wf.task(requires=["work"])
    def route(ctx):
        return "big"

    @wf.task(requires=["work"], after=[route],
             when={"field": "inputs.route", "op": "==", "value": "big"})
    def big(ctx):
        return 1

    @wf.task(requires=["work"], after=[route],
             when={"field": "inputs.route", "op": "==", "value": "small"})
    def small(ctx):
        return 2

    @wf.task(requires=["work"], after=[small])
    def after_small(ctx):
        return 3

    @wf.task(requires=["work"], after=[big, after_small], trigger="none_failed")
    def join(ctx):
        return dict(ctx.inputs)

    result, _ = await run(wf)
    st = status(result)
    assert st == {"route": "completed", "big": "completed", "small": "skipped",
                  "after_small": "skipped", "join": "completed"}
    assert result["task_results"]["small"]["error"] == "condition inputs.route == 'small' was false"
    assert result["task_results"]["join"]["result"] == {"big": 1}


async def test_a_callable_condition_sees_the_context():
    wf = Workflow("callable")

    @wf.task(requires=["work"])
    def a(ctx):
        return 3

    def odd(ctx):
        return ctx.inputs["a"] % 2 == 1

    def even(ctx):
        return not odd(ctx)

    @wf.task(requires=["work"], after=[a], when=odd)
    def b(ctx):
        return "odd"

    @wf.task(requires=["work"], after=[a], when=even)
    def c(ctx):
        return "even"

    result, _ = await run(wf)
    assert status(result)["b"] == "completed" and status(result)["c"] == "skipped"
    assert result["task_results"]["c"]["error"] == (
        "condition test_a_callable_condition_sees_the_context.<locals>.even() was false"
    )


async def test_a_condition_that_raises_fails_its_task():
    wf = Workflow("raises")

    @wf.task(requires=["work"])
    def a(ctx):
        return 1

    @wf.task(requires=["work"], after=[a], when=lambda ctx: ctx.inputs["missing"])
    def b(ctx):
        return 2

    @wf.task(requires=["work"], after=[b])
    def c(ctx):
        return 3

    result, _ = await run(wf)
    st = status(result)
    assert st["b"] == "failed" and "KeyError" in result["task_results"]["b"]["error"]
    assert st["c"] == "skipped"


@pytest.mark.parametrize(
    ("rule", "outcomes", "expected"),
    [
        ("all_success", ("ok", "ok"), "completed"),
        ("all_success", ("ok", "fail"), "skipped"),
        ("all_done", ("fail", "skip"), "completed"),
        ("one_success", ("fail", "ok"), "completed"),
        ("one_success", ("fail", "skip"), "skipped"),
        ("none_failed", ("skip", "skip"), "completed"),
        ("none_failed", ("ok", "fail"), "skipped"),
        ("none_failed", ("ok", "upstream"), "skipped"),
        ("none_failed_min_one_success", ("ok", "skip"), "completed"),
        ("none_failed_min_one_success", ("skip", "skip"), "skipped"),
        ("none_failed_min_one_success", ("ok", "fail"), "skipped"),
    ],
)
async def test_trigger_rules_mean_what_they_mean_in_airflow(rule, outcomes, expected):
    wf = Workflow("rules")

    @wf.task(requires=["work"])
    def bad(ctx):
        raise RuntimeError("boom")

    deps = []
    for i, outcome in enumerate(outcomes):
        name = f"d{i}"
        if outcome == "ok":
            wf.task(lambda ctx: 1, task_id=name, requires=["work"])
        elif outcome == "fail":
            wf.task(lambda ctx: 1 / 0, task_id=name, requires=["work"])
        elif outcome == "skip":
            wf.task(lambda ctx: 1, task_id=name, requires=["work"], when=lambda ctx: False)
        else:  # skipped because something upstream failed
            wf.task(lambda ctx: 1, task_id=name, requires=["work"], after=[bad])
        deps.append(name)
    wf.task(lambda ctx: sorted(ctx.inputs), task_id="t", requires=["work"], after=deps,
            trigger=rule)
    result, _ = await run(wf)
    assert status(result)["t"] == expected, result["task_results"]["t"]


async def test_one_success_runs_without_waiting_for_the_other_dependencies():
    wf = Workflow("first")
    gate = asyncio.Event()

    @wf.task(requires=["work"])
    def fast(ctx):
        return "fast"

    @wf.task(requires=["work"])
    async def slow(ctx):
        await gate.wait()
        return "slow"

    @wf.task(requires=["work"], after=[fast, slow], trigger="one_success")
    def first(ctx):
        gate.set()  # only runs if it did not wait for slow
        return sorted(ctx.inputs)

    result, _ = await run(wf)
    assert result["task_results"]["first"]["result"] == ["fast"]
    assert status(result)["slow"] == "completed"


def test_bad_trigger_and_condition_are_refused():
    with pytest.raises(ValidationError, match="trigger must be one of 'all_success'"):
        WorkflowTask("a", "a", [], 0, 1.0, trigger="sometimes")
    with pytest.raises(ValidationError, match="when= malformed condition"):
        WorkflowTask("a", "a", [], 0, 1.0, when={"field": "x", "op": "~"})


async def test_a_skipped_chain_of_any_length_is_settled_without_recursion():
    wf = Workflow("long")
    wf.task(lambda ctx: 1, task_id="t0", requires=["work"], when=lambda ctx: False)
    for i in range(1, 3000):
        wf.task(lambda ctx: 1, task_id=f"t{i}", requires=["work"], after=[f"t{i - 1}"])
    result, _ = await run(wf)
    assert result["skipped_tasks"] == 3000


async def test_mapped_children_are_cached_each_under_its_own_item():
    wf = Workflow("cached", cache=True)

    @wf.task(requires=["work"])
    def items(ctx):
        return ["a", "b", "c"]

    @wf.task(requires=["work"], map=items)
    def upper(ctx):
        return ctx.item.upper()

    orch = orchestrator()
    started = []
    orch.subscribe(lambda e: started.append(e.task_id) if isinstance(e, TaskStarted) else None)
    await orch.create_workflow(wf)
    first = await orch.execute_workflow("cached")
    n = len(started)
    second = await orch.execute_workflow("cached")
    orch.close()
    assert first["task_results"]["upper"]["result"] == ["A", "B", "C"]
    assert second["task_results"]["upper"]["result"] == ["A", "B", "C"]
    assert n == 4 and len(started) == n  # the second run took every child from the cache
    assert all(second["task_results"][f"upper[{i}]"]["cached"] for i in range(3))


async def test_a_condition_reads_the_run_parameters():
    wf = Workflow("params", params={"mode": "fast"})

    @wf.task(requires=["work"], when={"field": "params.mode", "op": "==", "value": "full"})
    def full(ctx):
        return "full"

    orch = orchestrator()
    await orch.create_workflow(wf)
    skipped = await orch.execute_workflow("params")
    ran = await orch.execute_workflow("params", params={"mode": "full"})
    orch.close()
    assert skipped["task_results"]["full"]["status"] == "skipped"
    assert skipped["task_results"]["full"]["error"] == "condition params.mode == 'full' was false"
    assert ran["task_results"]["full"]["result"] == "full"


@pytest.mark.parametrize("policy", ["heft", "fastest", "round_robin"])
async def test_maps_run_under_every_policy(policy):
    from wfkit import simulate

    wf = Workflow("policies")

    @wf.task(requires=["work"])
    def items(ctx):
        return list(range(6))

    @wf.task(requires=["work"], map=items)
    async def each(ctx):
        await asyncio.sleep(0.001)
        return ctx.item

    @wf.task(requires=["work"], map=each)
    async def double(ctx):
        return ctx.item * 2

    @wf.task(requires=["work"], after=[double])
    def total(ctx):
        return sum(ctx.inputs["double"])

    orch = CollectiveAgentWorkflowOrchestrator(progress=False, policy=policy)
    for name in ("a", "b"):
        orch.register_agent(AgentProfile(name, name, ["work"], capacity=2))
    result, _ = await run(wf, orch)
    assert result["task_results"]["total"]["result"] == 30
    plan = simulate(wf, list(orch.agents.values()), policy=policy,
                    durations={"items": 1.0, "each": 2.0, "double": 1.0, "total": 1.0},
                    map_sizes={"each": 4})
    assert plan.makespan == pytest.approx(1 + 2 + 1 + 1)  # four children at once


async def test_the_readmes_map_example_runs(tmp_path, monkeypatch):
    import re
    import textwrap
    from glob import glob
    from pathlib import Path

    import pandas as pd

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                 if "map=files" in b)
    (tmp_path / "data").mkdir()
    for i in range(3):
        pd.DataFrame({"x": [i, None, i + 10]}).to_csv(tmp_path / "data" / f"{i}.csv", index=False)
    monkeypatch.chdir(tmp_path)
    wf = Workflow("readme")
    scope = {"wf": wf, "glob": glob, "pd": pd}
    exec(compile(textwrap.dedent(block), "README.md", "exec"), scope)
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "a", ["io", "analysis"], capacity=4))
    result, events = await run(wf, orch)
    assert result["status"] == "completed"
    combined = result["task_results"]["combine"]["result"]
    assert sorted(combined["x"]) == [0, 1, 2, 10, 11, 12]
    assert result["task_results"]["clean[2]"]["status"] == "completed"
    assert {(e.task_id, e.count) for e in events if isinstance(e, TaskMapped)} == {
        ("parse", 3), ("clean", 3)
    }
    assert result["task_results"]["publish"]["status"] == "completed"


async def test_fail_fast_stops_the_run_when_a_condition_raises():
    wf = Workflow("fast")

    @wf.task(requires=["work"])
    def a(ctx):
        return 1

    @wf.task(requires=["work"], after=[a], when=lambda ctx: 1 / 0)
    def b(ctx):
        return 2

    @wf.task(requires=["work"], after=[a])
    async def c(ctx):
        await asyncio.Event().wait()  # only fail_fast's cancellation ends it

    result, _ = await run(wf, fail_fast=True)
    st = status(result)
    assert st["b"] == "failed" and st["c"] == "cancelled" and result["status"] == "failed"
