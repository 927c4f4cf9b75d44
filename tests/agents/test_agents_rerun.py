"""Re-running notebook cells is always safe: tasks and agents are replaced, an edited
Workflow runs as it is now (or fails naming what changed), a decorated task stays a function
and pickles by reference."""

import asyncio
import copy
import logging
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wfkit
from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    CycleError,
    DuplicateTaskError,
    ValidationError,
    WorkflowChangedError,
    WorkflowTask,
)

README = Path(__file__).resolve().parents[2] / "README.md"

# A module-level workflow, as a user's module would define it.
module_wf = wfkit.Workflow("module")


@module_wf.task(requires=["w"])
def double(ctx):
    return 2 * ctx.inputs.get("x", 21)


def orchestrator(**kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, **kw)
    orch.register_agent(AgentProfile("a", "A", ["w"], capacity=2))
    return orch


def test_decorating_again_replaces_the_task_and_says_so_once(caplog):
    wf = wfkit.Workflow("sales")

    @wf.task(requires=["w"])
    def load(ctx):
        return 1

    @wf.task(requires=["w"], after=[load])
    def clean(ctx):
        return ctx.inputs["load"]

    with caplog.at_level(logging.INFO, logger="wfkit"):

        @wf.task(requires=["w"], priority=5, retries=2)  # the cell re-run, edited
        def load(ctx):  # noqa: F811
            return 2

    assert [t.task_id for t in wf.tasks] == ["load", "clean"]
    assert wf["load"].action is load.fn and wf["load"].priority == 5 and wf["load"].retries == 2
    assert wf["clean"].dependencies == ["load"]
    msgs = [r.getMessage() for r in caplog.records if "redefined" in r.getMessage()]
    assert msgs == ["workflow 'sales': task 'load' redefined"]


def test_add_still_refuses_a_duplicate_unless_replace():
    wf = wfkit.Workflow("w")
    wf.add(WorkflowTask("a", "", ["w"], 0, 1.0))
    with pytest.raises(DuplicateTaskError, match="'a'"):
        wf.add(WorkflowTask("a", "", ["w"], 0, 1.0))
    new = wf.add(WorkflowTask("a", "new", ["w"], 0, 1.0), replace=True)
    assert wf["a"] is new and len(wf) == 1


def test_a_redefinition_that_closes_a_cycle_is_refused_and_the_old_task_stays():
    wf = wfkit.Workflow("w")

    @wf.task(requires=["w"])
    def a(ctx):
        return 1

    @wf.task(requires=["w"], after=[a])
    def b(ctx):
        return 2

    old = wf["a"]
    with pytest.raises(CycleError):
        wf.task(requires=["w"], after=["b"], task_id="a")(lambda ctx: 3)
    assert wf["a"] is old


async def test_register_agent_replaces_an_idle_agent_and_refuses_one_at_work():
    orch = orchestrator()
    new = AgentProfile("a", "A2", ["w"], capacity=3)
    assert orch.register_agent(new) is new and orch.agents["a"] is new

    started, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx):
        started.set()
        await release.wait()

    wf = wfkit.Workflow("busy")
    wf.task(requires=["w"])(slow)
    run = asyncio.ensure_future(orch.execute_workflow(wf))
    await started.wait()
    run_id = orch.workflows["busy"]["runs"][-1]
    with pytest.raises(ValidationError, match=rf"agent 'a' cannot be replaced while it runs work "
                                              rf"\(run {run_id} of workflow 'busy'\)"):
        orch.register_agent(AgentProfile("a", "A3", ["w"]))
    release.set()
    assert (await run).status == "completed"
    orch.register_agent(AgentProfile("a", "A3", ["w"]))
    assert orch.agents["a"].name == "A3"


async def test_execute_workflow_takes_the_workflow_and_runs_its_current_definition(caplog):
    orch = orchestrator()
    wf = wfkit.Workflow("sales")

    @wf.task(requires=["w"])
    def load(ctx):
        return 1

    result = await orch.execute_workflow(wf)  # no create_workflow needed
    assert result.status == "completed" and list(result.task_results) == ["load"]

    await orch.create_workflow(wf)

    @wf.task(requires=["w"], after=[load])  # added after create_workflow: never skipped
    def report(ctx):
        return ctx.inputs["load"] + 1

    with caplog.at_level(logging.INFO, logger="wfkit"):
        result = await orch.execute_workflow("sales")
    assert result.task_results["report"]["result"] == 2
    assert result["total_tasks"] == 2
    assert any("added ['report']" in r.getMessage() for r in caplog.records)
    assert [t.task_id for t in orch.workflows["sales"]["tasks"]] == ["load", "report"]
    assert len(orch.workflows["sales"]["runs"]) == 2  # the history stays


async def test_an_edit_that_cannot_run_names_the_added_removed_and_changed_tasks():
    orch = orchestrator()
    wf = wfkit.Workflow("sales")

    @wf.task(requires=["w"])
    def load(ctx):
        return 1

    await orch.create_workflow(wf)

    @wf.task(requires=["gpu"])  # no agent has it
    def train(ctx):
        return 2

    @wf.task(requires=["w"])
    def load(ctx):  # noqa: F811
        return 3

    with pytest.raises(WorkflowChangedError) as info:
        await orch.execute_workflow("sales")
    err = info.value
    assert (err.added, err.removed, err.changed) == (["train"], [], ["load"])
    assert re.search(r"added: 'train'; removed: none; changed: 'load'", str(err))
    assert "'train' needs gpu" in str(err)


def test_a_decorated_task_is_callable_and_pickles_by_reference():
    wf = wfkit.Workflow("w")

    @wf.task(requires=["w"])
    def add_one(ctx, extra=0):
        return ctx + 1 + extra

    assert add_one(1) == 2 and add_one.fn(1, extra=1) == 3
    assert isinstance(add_one, WorkflowTask)
    assert pickle.loads(pickle.dumps(double)) is double  # module level: by reference
    clone = copy.copy(double)
    assert clone is not double and clone.action is double.action
    deep = copy.deepcopy(double)
    assert deep is not double and deep.action is double.action
    with pytest.raises(ValidationError, match="has no action"):
        WorkflowTask("x", "", ["w"], 0, 1.0)(None)


async def test_module_level_decorated_tasks_run_on_processes():
    executor = wfkit.ProcessExecutor(max_workers=1)
    try:
        orch = orchestrator(executor=executor)
        result = await orch.execute_workflow(module_wf)
    finally:
        executor.close()
    assert result.status == "completed", result.task_results["double"]["error"]
    assert result.task_results["double"]["result"] == 42


def _readme_blocks():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    module = next(b for b in blocks if b.lstrip(" ").startswith("# cpu_tasks.py"))
    run = next(b for b in blocks if "from cpu_tasks import wf" in b)
    return textwrap.dedent(module), textwrap.dedent(run)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_the_readmes_cpu_bound_example_runs_on_processes(tmp_path, method):
    module, run = _readme_blocks()
    (tmp_path / "cpu_tasks.py").write_text(module)
    run = run.replace("wfkit.ProcessExecutor()", f"wfkit.ProcessExecutor(mp_context={method!r})")
    run = run.replace("result = await ", "result = wfkit.run_sync(").replace(
        "execute_workflow(wf)", "execute_workflow(wf))"
    )
    script = textwrap.dedent(
        """
        import os, wfkit
        __RUN__
        print(result["status"], result["task_results"]["total"]["result"])
        print(sorted({r["agent_id"] for r in result["task_results"].values()}))
        orch.executor.close()
        """
    ).replace("__RUN__", run.replace("\n", "\n"))
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "completed 9592"
