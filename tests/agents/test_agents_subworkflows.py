"""Sub-workflows: ctx.run_workflow runs another workflow from inside a task.

Concurrency and nesting are asserted from recorded events and statuses, never from timing.
"""

import asyncio

import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    CycleError,
    RunStore,
    SubWorkflowCycleError,
    WfkitError,
    Workflow,
    WorkflowFailedError,
)
from wfkit.events import RunFinished, RunStarted, TaskCancelled, TaskStarted


def orchestrator(capacity=4, **kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001, **kw)
    orch.register_agent(AgentProfile("a", "A", ["work"], capacity=capacity))
    return orch


def inner_workflow():
    inner = Workflow("inner", params={"n": 1})

    @inner.task(requires=["work"])
    def double(ctx):
        return ctx.params["n"] * 2

    @inner.task(requires=["work"], after=[double])
    def plus_one(ctx):
        return ctx.inputs["double"] + 1

    return inner


async def test_a_task_runs_a_sub_workflow_and_gets_its_result_with_parent_ids(tmp_path):
    inner = inner_workflow()
    outer = Workflow("outer")

    @outer.task(requires=["work"])
    async def call(ctx):
        result = await ctx.run_workflow(inner, params={"n": 20})
        return result.results()["plus_one"]

    orch = orchestrator(store=tmp_path / "runs.db")
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow(outer)
    result = await orch.execute_workflow("outer")
    assert result.status == "completed", result.task_results["call"]["error"]
    assert result.results() == {"call": 41}
    assert result["parent_run_id"] is None
    started = {e.workflow_id: e for e in events if isinstance(e, RunStarted)}
    child = started["inner"]
    assert (child.parent_run_id, child.parent_task_id) == (result.run_id, "call")
    assert child.params == {"n": 20}
    assert (started["outer"].parent_run_id, started["outer"].parent_task_id) == (None, None)
    # the child's RunResult says so too
    child_result = orch.workflows["inner"]["last_result"]
    assert (child_result["parent_run_id"], child_result["parent_task_id"]) == (result.run_id, "call")
    orch.close()
    with RunStore(tmp_path / "runs.db") as store:
        runs = store.workflow_frame().set_index("workflow_id")
        assert runs.loc["inner", "parent_run_id"] == result.run_id
        assert runs.loc["inner", "parent_task_id"] == "call"
        assert runs.loc["inner", "params"] == {"n": 20}
        assert runs["parent_run_id"].isna()["outer"]


async def test_a_failed_child_fails_the_calling_task_unless_it_catches_it():
    broken = Workflow("broken")

    @broken.task(requires=["work"])
    def boom(ctx):
        raise RuntimeError("kaput")

    outer = Workflow("outer")

    @outer.task(requires=["work"])
    async def careless(ctx):
        await ctx.run_workflow(broken)

    @outer.task(requires=["work"], after=[careless])
    def never(ctx):
        return 1

    @outer.task(requires=["work"])
    async def careful(ctx):
        try:
            await ctx.run_workflow("broken")
        except WorkflowFailedError as exc:
            return f"recovered from {exc.failures[0][0]}"

    orch = orchestrator(capacity=1)
    await orch.create_workflow(broken)
    await orch.create_workflow(outer)
    async with asyncio.timeout(120):  # a guard: a child waiting for its caller's slot hangs
        result = await orch.execute_workflow("outer")
    tr = result.task_results
    assert tr["careless"]["status"] == "failed"
    assert isinstance(tr["careless"]["exception"], WorkflowFailedError)
    assert "workflow 'broken'" in tr["careless"]["error"] and "kaput" in tr["careless"]["error"]
    assert tr["never"]["status"] == "skipped"
    assert tr["careful"] == {**tr["careful"], "status": "completed", "result": "recovered from boom"}


async def test_three_levels_nest_on_agents_of_capacity_one():
    leaf = Workflow("leaf", params={"x": 0})

    @leaf.task(requires=["work"])
    def square(ctx):
        return ctx.params["x"] ** 2

    mid = Workflow("mid", params={"x": 0})

    @mid.task(requires=["work"])
    async def both(ctx):
        a = await ctx.run_workflow(leaf, params={"x": ctx.params["x"]})
        b = await ctx.run_workflow(leaf, params={"x": ctx.params["x"] + 1})
        return a.results()["square"] + b.results()["square"]

    top = Workflow("top")

    @top.task(requires=["work"])
    async def start(ctx):
        return (await ctx.run_workflow(mid, params={"x": 3})).results()["both"]

    @top.task(requires=["work"])
    def sibling(ctx):  # independent: it gets the slot while 'start' waits, or after
        return "ran"

    orch = orchestrator(capacity=1)
    agent = orch.agents["a"]
    events, loads = [], []

    def watch(e):
        events.append(e)
        loads.append(orch.pool.load(agent))

    orch.subscribe(watch)
    async with asyncio.timeout(120):  # a guard: without the lent slot this would hang
        result = await orch.execute_workflow(top)
    assert result.status == "completed", result
    assert result.results() == {"start": 9 + 16, "sibling": "ran"}
    runs = {e.run_id: e for e in events if isinstance(e, RunStarted)}
    assert sorted(e.workflow_id for e in runs.values()) == ["leaf", "leaf", "mid", "top"]
    for e in runs.values():  # each child names its caller, up to the top
        if e.workflow_id != "top":
            caller = runs[e.parent_run_id].workflow_id
            assert caller == {"mid": "top", "leaf": "mid"}[e.workflow_id]
    # five tasks ran on one slot: never more than one held at once, and none left held
    assert sum(isinstance(e, TaskStarted) for e in events) == 5
    assert max(loads) == 1 and orch.pool.load(agent) == 0


async def test_a_workflow_that_runs_itself_fails_at_once_naming_the_chain():
    selfish = Workflow("selfish")

    @selfish.task(requires=["work"])
    async def again(ctx):
        await ctx.run_workflow("selfish")

    a, b = Workflow("a"), Workflow("b")

    @a.task(requires=["work"])
    async def to_b(ctx):
        await ctx.run_workflow("b")

    @b.task(requires=["work"])
    async def to_a(ctx):
        await ctx.run_workflow("a")

    orch = orchestrator()
    for wf in (selfish, a, b):
        await orch.create_workflow(wf)
    direct = await orch.execute_workflow("selfish")
    error = direct.task_results["again"]["exception"]
    assert isinstance(error, SubWorkflowCycleError) and isinstance(error, CycleError)
    assert error.cycle == ["selfish", "selfish"]
    assert "selfish -> selfish" in str(error)
    indirect = await orch.execute_workflow("a")
    assert indirect.status == "failed"
    # b's task failed on the cycle, b failed, so a's task failed on b
    failure = indirect.task_results["to_b"]["exception"]
    assert isinstance(failure, WorkflowFailedError)
    cause = failure.result.task_results["to_a"]["exception"]
    assert isinstance(cause, SubWorkflowCycleError)
    assert cause.cycle == ["a", "b", "a"] and cause.task_id == "to_a"
    assert str(cause).startswith(
        "workflow 'a' would run itself through sub-workflows: a -> b -> a (task 'to_a' of 'b')"
    )


async def test_cancelling_the_parent_cancels_the_children():
    started = asyncio.Event()
    leaf = Workflow("leaf")

    @leaf.task(requires=["work"])
    async def forever(ctx):
        started.set()
        await asyncio.Event().wait()

    outer = Workflow("outer")

    @outer.task(requires=["work"])
    async def call(ctx):
        await ctx.run_workflow(leaf)

    orch = orchestrator()
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow(outer)
    running = asyncio.ensure_future(orch.execute_workflow("outer"))
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    finished = {e.workflow_id: e.status for e in events if isinstance(e, RunFinished)}
    assert finished == {"leaf": "cancelled", "outer": "cancelled"}
    cancelled = {(e.workflow_id, e.task_id) for e in events if isinstance(e, TaskCancelled)}
    assert cancelled == {("leaf", "forever"), ("outer", "call")}
    assert orch._active == {}


async def test_children_of_one_workflow_run_side_by_side():
    inner = inner_workflow()
    outer = Workflow("outer", params={"ns": [1, 2, 3]})

    @outer.task(requires=["work"])
    async def fan(ctx):
        results = await asyncio.gather(
            *(ctx.run_workflow(inner, params={"n": n}) for n in ctx.params["ns"])
        )
        return [r.results()["plus_one"] for r in results]

    orch = orchestrator(capacity=1)
    agent = orch.agents["a"]
    events, loads = [], []

    def watch(e):
        events.append(e)
        loads.append(orch.pool.load(agent))

    orch.subscribe(watch)
    await orch.create_workflow(outer)
    async with asyncio.timeout(120):  # a guard, as above
        result = await orch.execute_workflow("outer")
    assert result.results() == {"fan": [3, 5, 7]}
    # the one task lent its one slot once for its three children, and took it back once
    assert max(loads) == 1 and orch.pool.load(agent) == 0
    children = [e for e in events if isinstance(e, RunStarted) and e.workflow_id == "inner"]
    assert len({e.run_id for e in children}) == 3
    assert {e.parent_task_id for e in children} == {"fan"}
    # a top-level run of a workflow that is running is still refused
    await orch.create_workflow(inner)


async def test_run_workflow_outside_the_engine_says_what_is_wrong():
    from wfkit import TaskContext, WorkflowTask

    ctx = TaskContext(WorkflowTask("t", "t", [], 0, 1.0), AgentProfile("a", "A", []), {}, 1, "r")
    with pytest.raises(WfkitError, match=r"ctx.run_workflow\(\) needs the orchestrator"):
        await ctx.run_workflow("x")


async def test_the_readmes_example_runs_on_one_slot():
    import re
    import textwrap
    from pathlib import Path

    import wfkit

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                 if "ctx.run_workflow(sales" in b)
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a1", "Analyst", ["analysis"], capacity=1))
    code = textwrap.dedent(block) + "\nouter_result = await orch.execute_workflow(outer)\n"
    scope = {"wfkit": wfkit, "orch": orch}
    wrapped = "async def _main():\n" + textwrap.indent(code, "    ") + "\n    return locals()"
    exec(compile(wrapped, "README.md", "exec"), scope)
    async with asyncio.timeout(120):  # a guard, as above
        done = await scope["_main"]()
    assert done["result"].params == {"year": 2010, "region": "EU"}
    assert done["result"].results() == {"report": "EU 2010"}
    assert done["outer_result"].results() == {"regions": ["EU 2007", "US 2007"]}


async def test_a_caller_that_times_out_cancels_its_child_and_gets_its_slot_back():
    started = asyncio.Event()
    slow = Workflow("slow")

    @slow.task(requires=["work"])
    async def hang(ctx):
        started.set()
        await asyncio.Event().wait()

    outer = Workflow("outer")

    @outer.task(requires=["work"], timeout=0.5)
    async def impatient(ctx):
        await ctx.run_workflow(slow)

    @outer.task(requires=["work"])
    def other(ctx):  # needs the one slot too: it is not left held
        return "ran"

    orch = orchestrator(capacity=1)
    events = []
    orch.subscribe(events.append)
    async with asyncio.timeout(120):  # a guard
        result = await orch.execute_workflow(outer)
    assert started.is_set()
    assert result.task_results["impatient"]["status"] == "failed"
    assert "TaskTimeoutError" in result.task_results["impatient"]["error"]
    finished = {e.workflow_id: e.status for e in events if isinstance(e, RunFinished)}
    assert finished["slow"] == "cancelled"
    assert result.task_results["other"]["result"] == "ran"
    assert orch.pool.load(orch.agents["a"]) == 0


async def test_a_run_on_another_orchestrator_is_a_child_but_not_part_of_the_chain():
    same_name = Workflow("job")

    @same_name.task(requires=["work"])
    def leaf(ctx):
        return "leaf"

    other = orchestrator()
    outer = Workflow("job")  # the same id, on another orchestrator: not a cycle

    @outer.task(requires=["work"])
    async def call(ctx):
        return (await other.execute_workflow(same_name)).results()["leaf"]

    orch = orchestrator(capacity=1)
    seen = []
    other.subscribe(lambda e: seen.append(e) if isinstance(e, RunStarted) else None)
    result = await orch.execute_workflow(outer)
    assert result.results() == {"call": "leaf"}
    assert (seen[0].parent_run_id, seen[0].parent_task_id) == (result.run_id, "call")


async def test_work_a_task_left_behind_starts_top_level_runs_and_borrows_no_slot():
    leaf = Workflow("leaf")

    @leaf.task(requires=["work"])
    def one(ctx):
        return 1

    left_behind = []
    go = asyncio.Event()
    outer = Workflow("outer")

    @outer.task(requires=["work"])
    async def fire_and_forget(ctx):
        async def later():
            await go.wait()
            return await ctx.run_workflow(leaf)  # the task has ended by then

        left_behind.append(asyncio.ensure_future(later()))
        return "done"

    orch = orchestrator(capacity=1)
    seen = []
    orch.subscribe(lambda e: seen.append(e) if isinstance(e, RunStarted) else None)
    result = await orch.execute_workflow(outer)
    assert result.results() == {"fire_and_forget": "done"}
    go.set()
    child = await left_behind[0]
    assert child.results() == {"one": 1}
    assert (seen[-1].workflow_id, seen[-1].parent_run_id) == ("leaf", None)
    assert orch.pool.load(orch.agents["a"]) == 0
