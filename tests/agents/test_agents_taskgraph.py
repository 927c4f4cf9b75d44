"""TaskGraph (a workflow's structure, built once) and the run state that works on its numbers."""

import asyncio
import gc

import pytest

from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, CycleError, WorkflowTask
from wfkit.agents.dispatch import RunState
from wfkit.agents.engine import WorkflowRun
from wfkit.agents.policies import LeastLoaded
from wfkit.errors import DuplicateTaskError, UnknownDependencyError
from wfkit.events import EventBus
from wfkit.executors.local import ThreadExecutor
from wfkit.graph import TaskGraph, topological_order


def task(tid, deps=None, caps=("work",), priority=0, estimate=1.0):
    return WorkflowTask(tid, tid, list(caps), priority, estimate, deps)


def test_dependencies_first_numbers_tasks_in_insertion_order():
    g = TaskGraph([task("a"), task("b", ["a"]), task("c", ["a", "b"]), task("d")])
    assert g.ids == ["a", "b", "c", "d"]
    assert list(g.order) == [0, 1, 2, 3]
    assert g.dependents("a") == ["b", "c"] and g.dependents("c") == []
    assert g.indegree == [0, 1, 2, 0] and g.roots == [0, 3]


def test_dependencies_named_later_are_sorted_topologically():
    tasks = [task("c", ["a", "b"]), task("b", ["a"]), task("a"), task("x", ["c"])]
    g = TaskGraph(tasks)
    order = [g.ids[i] for i in g.order]
    assert order == topological_order(g.tasks) == ["a", "b", "c", "x"]
    assert g.dependents("a") == ["c", "b"]  # insertion order of the dependents
    assert g.index == {"c": 0, "b": 1, "a": 2, "x": 3}


def test_wide_fan_out_keeps_every_dependent_in_order():
    leaves = [task(f"t{i}", ["root"]) for i in range(40)]
    g = TaskGraph([task("root"), *leaves, task("sink", [t.task_id for t in leaves])])
    assert g.dependents("root") == [f"t{i}" for i in range(40)]
    assert all(g.dependents(f"t{i}") == ["sink"] for i in range(40))
    assert g.indegree[-1] == 40


def test_bad_graphs_fail_as_the_orchestrator_reports_them():
    with pytest.raises(CycleError) as info:
        TaskGraph([task("a", ["a"])])
    assert info.value.cycle == ["a"]
    with pytest.raises(CycleError):
        TaskGraph([task("a", ["b"]), task("b", ["a"])])
    with pytest.raises(DuplicateTaskError):
        TaskGraph([task("a"), task("a")])
    with pytest.raises(UnknownDependencyError, match="'ghost'"):
        TaskGraph([task("a"), task("b", ["ghost"])])


def test_the_structure_holds_nothing_for_the_cyclic_collector():
    """Tuples of plain values leave the collector's view; lists would be promoted and scanned
    by every full collection while the workflow lives."""
    n = 2_000
    tasks = [task("t0")] + [task(f"t{i}", [f"t{i - 1}", "t0"]) for i in range(1, n)]
    g = TaskGraph(tasks)
    gc.collect()
    assert not any(gc.is_tracked(b) for b in g.below)
    assert isinstance(g.indegree, list) and isinstance(g.order, range)


def test_a_skipped_task_stays_skipped_when_its_other_dependency_completes():
    g = TaskGraph([task("bad"), task("slow"), task("after", ["bad", "slow"])])
    agents = [AgentProfile("w", "W", ["work"], capacity=2)]
    state = RunState(g, agents, LeastLoaded())
    assert sorted(t.task_id for t, _ in state.assign()) == ["bad", "slow"]
    assert state.fail("bad") == [("after", "dependency 'bad' failed")]
    state.complete("slow")
    assert state.assign() == [] and state.done
    assert state.finished == {"bad": "failed", "after": "skipped", "slow": "completed"}


def test_resumed_dependents_are_not_run_again_when_a_dependency_reruns():
    g = TaskGraph([task("a"), task("b", ["a"]), task("c", ["b"])])
    agents = [AgentProfile("w", "W", ["work"], capacity=1)]
    state = RunState(g, agents, LeastLoaded(), completed=["b"])
    ran = []
    while not state.done:
        batch = state.assign()
        assert batch, "the run stalled"
        for t, _ in batch:
            ran.append(t.task_id)
            state.complete(t.task_id)
    assert "b" not in ran and state.finished["b"] == "completed"


async def test_run_records_hold_nothing_for_the_cyclic_collector():
    async def noop(ctx):
        return None

    n = 2_000
    tasks = [task(f"t{i}", [f"t{i - 1}"] if i else None) for i in range(n)]
    agent = AgentProfile("w", "W", ["work"], capacity=4, handler=noop)
    run = WorkflowRun(
        workflow_id="w",
        run_id="r",
        graph=TaskGraph(tasks),
        agents=[agent],
        policy=LeastLoaded(),
        bus=EventBus(),
        executor=ThreadExecutor(),
    )
    result = await run.execute()
    assert result["successful_tasks"] == n and len(run.records) == n
    gc.collect()
    assert not any(gc.is_tracked(r) for r in run.records.values())
    assert [r["attempts"] for r in result["task_results"].values()] == [1] * n


async def test_tasks_listed_after_their_dependents_run_in_dependency_order():
    order = []

    async def h(ctx):
        order.append(ctx.task.task_id)
        await asyncio.sleep(0)

    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "A", ["work"], capacity=1, handler=h))
    tasks = [
        task("report", ["clean", "load"]),
        task("clean", ["load"]),
        task("other", priority=1),
        task("load", priority=1),
    ]
    await orch.create_workflow("w", tasks)
    result = await orch.execute_workflow("w")
    assert result["successful_tasks"] == 4
    # priority 1 first; "load" heads the longer path; ties then go by insertion order
    assert order == ["load", "other", "clean", "report"]


async def test_every_entry_point_checks_dependencies_the_same_way():
    """A workflow, the builder, the graph and a coordination session share one check."""
    from wfkit import CollaborationTask, CoordinationCollaborationManager, Workflow
    from wfkit.graph import TaskGraph, check_tasks

    tasks = [WorkflowTask("a", "a", ["x"], 0, 1.0), WorkflowTask("b", "b", ["x"], 0, 1.0, ["ghost", "a"])]
    errors = []
    for check in (lambda: TaskGraph(tasks), lambda: check_tasks(tasks)):
        with pytest.raises(UnknownDependencyError) as info:
            check()
        errors.append(info.value)
    wf = Workflow("w")
    wf.add(tasks[0])
    with pytest.raises(UnknownDependencyError) as info:
        wf.add(tasks[1])
    errors.append(info.value)
    assert {(e.task_id, tuple(e.missing), str(e)) for e in errors} == {
        ("b", ("ghost",), "task 'b' depends on unknown task(s) 'ghost': add them to the "
                          "workflow or remove them from its dependencies")}
    with pytest.raises(UnknownDependencyError, match="depends on 'a', which session") as info:
        async with CoordinationCollaborationManager() as manager:
            manager.register_participant("p", lambda ctx: None)
            sid = await manager.create_coordination_session(["p"], "sequential")
            await manager.add_collaboration_task(sid, CollaborationTask("b", "b", dependencies=["a"]))
    assert (info.value.task_id, info.value.missing) == ("b", ["a"])
    # a task depending on itself is a cycle once it replaces a task of that id
    with pytest.raises(CycleError):
        wf.add(WorkflowTask("a", "a", ["x"], 0, 1.0, ["a"]), replace=True)
    assert [t.dependencies for t in wf.tasks] == [[]]  # rolled back
