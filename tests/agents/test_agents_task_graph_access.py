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
