"""The orchestrator's workflow structure is read through ``task_graph(id)``: subscribers
(the dashboard, figures) never read its private per-workflow records."""

import ast
from pathlib import Path

import pytest

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, WorkflowTask
from wfkit.errors import UnknownWorkflowError
from wfkit.graph import TaskGraph


async def noop(ctx):
    return None


def tasks(n):
    return [WorkflowTask(f"t{i}", "", ["x"], 0, 1.0, [f"t{i - 1}"] if i else [], action=noop)
            for i in range(n)]


async def test_task_graph_is_the_workflow_structure_its_runs_use():
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "a", ["x"]))
    await orch.create_workflow("w", tasks(3))
    graph = orch.task_graph("w")
    assert isinstance(graph, TaskGraph)
    assert graph.ids == ["t0", "t1", "t2"] and graph.dependents("t0") == ["t1"]
    assert orch.task_graph("w") is graph  # built once, shared by runs
    result = await orch.execute_workflow("w")
    assert result["status"] == "completed" and orch.task_graph("w") is graph
    await orch.create_workflow("w", tasks(2))  # a new definition: a new structure
    assert orch.task_graph("w") is not graph and orch.task_graph("w").ids == ["t0", "t1"]


def test_an_unknown_workflow_is_named():
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    with pytest.raises(UnknownWorkflowError, match="no workflow 'nope'.*create_workflow"):
        orch.task_graph("nope")
    with pytest.raises(KeyError):  # what dict-minded callers catch
        orch.task_graph("nope")


PRIVATE_KEYS = {"_graph", "_source", "_version", "_cache"}  # the orchestrator's own records


def test_no_module_but_the_orchestrator_reads_its_private_workflow_records():
    root = Path(wfkit.__file__).parent
    readers = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() == "agents/orchestrator.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in PRIVATE_KEYS:
                readers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert readers == []


async def test_create_workflow_tells_its_subscribers_once_and_builds_nothing_unobserved(
        monkeypatch):
    from wfkit.agents import orchestrator as orchestrator_module
    from wfkit.agents.builder import Workflow
    from wfkit.events import Event, WorkflowCreated

    built = []

    def counted(*args):
        event = WorkflowCreated(*args)
        built.append(event)
        return event

    monkeypatch.setattr(orchestrator_module, "WorkflowCreated", counted)
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "a", ["x"]))
    await orch.create_workflow("quiet", tasks(2))
    assert built == []  # nobody listens: no event is built

    events: list[Event] = []
    orch.subscribe(events.append)
    await orch.create_workflow("w", tasks(3))
    await orch.create_workflow("w", tasks(5))  # re-created (a cell run again): told again
    created = [e for e in events if isinstance(e, WorkflowCreated)]
    assert [(e.run_id, e.workflow_id, e.tasks) for e in created] == [("", "w", 3), ("", "w", 5)]
    assert created == built

    events.clear()
    await orch.execute_workflow("w")  # a run of a created workflow creates nothing
    assert not any(isinstance(e, WorkflowCreated) for e in events)

    wf = Workflow("edited")
    wf.task(noop, task_id="one", requires=["x"])
    await orch.create_workflow(wf)
    wf.task(noop, task_id="two", requires=["x"], after=["one"])
    events.clear()
    await orch.execute_workflow(wf)  # the edit re-creates it, once, before its run starts
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("WorkflowCreated") == 1
    assert kinds.index("WorkflowCreated") < kinds.index("RunStarted")
    assert next(e for e in events if isinstance(e, WorkflowCreated)).tasks == 2
