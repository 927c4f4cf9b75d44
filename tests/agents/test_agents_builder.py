"""The interactive builder: @wf.task, after=, analysis views."""

import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    DuplicateTaskError,
    UnknownDependencyError,
    ValidationError,
    Workflow,
    WorkflowTask,
)


def build():
    wf = Workflow("etl")

    @wf.task(requires=["io"], estimate=2)
    def extract(ctx):
        """Pull the rows."""
        return [1, 2, 3]

    @wf.task(requires=["cpu"], after=[extract], estimate=5, priority=3)
    def transform(ctx):
        return [x * 10 for x in ctx.inputs["extract"]]

    @wf.task(requires=["io"], after="extract", task_id="audit")
    def audit_rows(ctx):
        return len(ctx.inputs["extract"])

    @wf.task(requires=["io"], after=[transform, audit_rows], retries=1, timeout=5)
    def load(ctx):
        return sum(ctx.inputs["transform"]) + ctx.inputs["audit"]

    return wf


def test_decorator_builds_tasks():
    wf = build()
    assert [t.task_id for t in wf.tasks] == ["extract", "transform", "audit", "load"]
    assert isinstance(wf["transform"], WorkflowTask)
    assert wf["extract"].description == "Pull the rows."
    assert wf["load"].dependencies == ["transform", "audit"]
    assert (wf["load"].retries, wf["load"].timeout) == (1, 5)
    assert wf["transform"].priority == 3


def test_analysis_views():
    wf = build()
    assert wf.critical_path() == ["extract", "transform", "load"]
    g = wf.to_networkx()
    assert set(g.edges) == {("extract", "transform"), ("extract", "audit"),
                            ("transform", "load"), ("audit", "load")}
    assert g.nodes["transform"]["capabilities"] == ["cpu"]


def test_builder_errors():
    wf = build()
    with pytest.raises(DuplicateTaskError):  # @wf.task replaces; add() needs replace=True
        wf.add(WorkflowTask("extract", "", ["io"], 0, 1.0))
    with pytest.raises(UnknownDependencyError, match="'nowhere'"):
        wf.task(lambda ctx: None, task_id="x", after=["nowhere"])
    with pytest.raises(ValidationError, match="after= takes task ids"):
        wf.task(lambda ctx: None, task_id="y", after=[42])


async def test_run_a_built_workflow():
    wf = build()
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("io", "IO", ["io"], capacity=2))
    orch.register_agent(AgentProfile("cpu", "CPU", ["cpu"]))
    assert await orch.create_workflow(wf) == "etl"
    result = await orch.execute_workflow("etl")
    assert result["task_results"]["load"]["result"] == 63
    assert result.results()["audit"] == 3
    frame = result.frame()
    assert list(frame.task_id) == ["extract", "transform", "audit", "load"]
    assert str(frame.started_at.dtype) == "datetime64[ns, UTC]"


def test_a_task_carries_its_group_and_rejects_an_empty_one():
    wf = Workflow("grouped")

    @wf.task(group="mDiffFit")
    def fit(ctx):
        return 1

    assert wf["fit"].group == "mDiffFit"
    with pytest.raises(ValidationError, match="group must be a non-empty string"):
        WorkflowTask("t", "d", [], 0, 1.0, group="")
