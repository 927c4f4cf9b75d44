"""Subscribers learn everything from events: a recorder or a run store fed only by a bus that
forwards another orchestrator's events reproduces what one attached to it records."""

from __future__ import annotations

import pytest

from wfkit import (
    AdvancedWorkflowMetrics,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    ResumeError,
    RunStore,
    WorkflowTask,
)
from wfkit.events import EventBus, RunStarted, TaskSpec


def task(tid, deps=None, **kw):
    return WorkflowTask(tid, f"does {tid}", ["w"], 2, 1.5, deps, **kw)


async def ok(ctx):
    return ctx.task_id


def diamond():
    return [task("a", action=ok, group="load"), task("b", ["a"], action=ok),
            task("c", ["a"], action=ok, retries=2), task("d", ["b", "c"], action=ok)]


def orchestrator(**kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, **kw)
    orch.register_agent(AgentProfile("ag", "agent", ["w", "x"], capacity=2))
    return orch


async def test_run_started_carries_the_run_task_graph():
    orch = orchestrator()
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow("wf", diamond())
    await orch.execute_workflow("wf")
    start = next(e for e in events if isinstance(e, RunStarted))
    assert [t.task_id for t in start.tasks] == list(start.task_ids) == ["a", "b", "c", "d"]
    assert start.tasks[3] == TaskSpec("d", ("b", "c"), ("w",), None, "does d", 2, 1.5, None, 0,
                                      None)
    assert start.tasks[0].group == "load" and start.tasks[2].retries == 2
    assert start.dependencies() == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    # a hand-made event without a graph says so
    assert RunStarted("r", 1.0, "w", ("x",), ()).dependencies() is None


async def test_a_store_fed_only_by_a_foreign_bus_reproduces_the_run(tmp_path):
    bus = EventBus()
    foreign = RunStore(tmp_path / "foreign.db").attach(bus)  # never sees the orchestrator
    orch = orchestrator(store=tmp_path / "own.db")
    orch.subscribe(bus.emit)
    await orch.create_workflow("wf", diamond())
    run = await orch.execute_workflow("wf")

    own = orch.store
    drop = ["duration"]
    assert foreign.workflow_frame().equals(own.workflow_frame())
    assert foreign.task_frame().drop(columns=drop).equals(own.task_frame().drop(columns=drop))
    # the graph came with RunStarted: the trace has every dependency
    doc = foreign.to_wfformat(run.run_id)
    parents = {t["id"]: sorted(t["parents"]) for t in doc["workflow"]["specification"]["tasks"]}
    assert parents == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    foreign.close()

    # and a resume from the foreign file checks the dependencies as they are now
    again = orchestrator(store=tmp_path / "foreign.db")
    rewired = diamond()
    rewired[3] = task("d", ["b"], action=ok)
    await again.create_workflow("wf", rewired)
    with pytest.raises(ResumeError, match=r"dependencies changed: 'd'"):
        await again.execute_workflow("wf", resume=run.run_id)
    await again.create_workflow("wf", diamond())
    resumed = await again.execute_workflow("wf", resume=run.run_id)
    assert resumed.status == "completed" and resumed.run_id == run.run_id
    again.store.close()
    own.close()


async def test_a_recorder_fed_only_by_a_foreign_bus_records_what_an_attached_one_does():
    bus = EventBus()
    foreign = AdvancedWorkflowMetrics().attach(bus)
    orch = orchestrator()
    attached = AdvancedWorkflowMetrics().attach(orch)
    orch.subscribe(bus.emit)
    await orch.create_workflow("wf", diamond())
    await orch.execute_workflow("wf")
    assert foreign.workflow_frame().equals(attached.workflow_frame())
    assert foreign.task_frame().equals(attached.task_frame())
    assert foreign.agent_load_frame().equals(attached.agent_load_frame())


async def test_recorders_and_stores_ignore_a_workflow_being_created(tmp_path):
    from wfkit.events import WorkflowCreated

    seen = []
    orch = orchestrator(store=tmp_path / "own.db")
    metrics = AdvancedWorkflowMetrics().attach(orch)
    orch.subscribe(seen.append)
    await orch.create_workflow("wf", diamond())
    assert [type(e) for e in seen] == [WorkflowCreated]  # both saw it, and kept no trace
    assert metrics.workflow_frame().empty and metrics.task_frame().empty
    assert orch.store.workflow_frame().empty and orch.store.task_frame().empty
    await orch.execute_workflow("wf")
    assert metrics.workflow_frame()["total_tasks"].tolist() == [4]
    assert orch.store.workflow_frame()["total_tasks"].tolist() == [4]


def test_subscribers_may_come_and_go_while_an_event_is_delivered():
    """The bus calls the subscribers it had when the event came (a copy made when they
    change, not per event): one that leaves or joins during a delivery counts from the next."""
    bus = EventBus()
    seen: list[tuple[str, float]] = []
    unsubscribe: dict[str, object] = {}

    def first(ev):
        seen.append(("first", ev.timestamp))
        if ev.timestamp == 1.0:
            unsubscribe["second"]()  # type: ignore[operator]
            unsubscribe["third"] = bus.subscribe(lambda e: seen.append(("third", e.timestamp)))

    unsubscribe["first"] = bus.subscribe(first)
    unsubscribe["second"] = bus.subscribe(lambda e: seen.append(("second", e.timestamp)))
    ev = RunStarted("r", 1.0, "w", (), ())
    bus.emit(ev)
    bus.emit(RunStarted("r", 2.0, "w", (), ()))
    assert seen == [("first", 1.0), ("second", 1.0), ("first", 2.0), ("third", 2.0)]
    unsubscribe["first"]()  # type: ignore[operator]
    unsubscribe["third"]()  # type: ignore[operator]
    assert not bus and len(bus) == 0
    bus.emit(ev)
    assert len(seen) == 4


async def test_a_runs_graph_is_built_only_for_a_subscriber_that_reads_it():
    """``RunStarted.tasks`` is made on first read: a run followed by subscribers that never
    read it (a dashboard, a progress bar) builds no TaskSpec, which at 100,000 tasks were as
    many objects for the garbage collector to walk in the middle of the run."""
    import dataclasses
    import pickle

    orch = orchestrator()
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow("wf", diamond())
    await orch.execute_workflow("wf")
    graph = orch.task_graph("wf")
    assert graph._specs is None  # nobody read it
    start = next(e for e in events if isinstance(e, RunStarted))
    assert start.tasks is graph.specs() and graph._specs is not None  # read: made, and kept
    assert start.dependencies() == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}

    # every way to read an event sees the value itself
    from wfkit.events import later

    calls = []

    def make():
        calls.append(1)
        return graph.specs()

    def lazy():
        return RunStarted("r", 1.0, "wf", start.task_ids, (), tasks=later(make))

    assert lazy() == RunStarted("r", 1.0, "wf", start.task_ids, (), tasks=graph.specs())
    assert hash(lazy()) == hash(dataclasses.replace(lazy()))
    assert pickle.loads(pickle.dumps(lazy())).tasks == graph.specs()
    assert "TaskSpec(task_id='d'" in repr(lazy())
    one = lazy()
    calls.clear()
    assert one.tasks is one.tasks and len(calls) == 1  # made once per event
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.tasks = ()
