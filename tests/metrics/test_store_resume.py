"""execute_workflow(resume=...) in one process: what reruns, what is reused, and the errors."""

from __future__ import annotations

import collections

import pytest

from wfkit import (
    AdvancedWorkflowMetrics,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    ResumeError,
    RunStore,
    WorkflowTask,
)
from wfkit.events import RunStarted


def task(tid, deps=None, **kw):
    return WorkflowTask(tid, tid, ["w"], 0, 1.0, deps, **kw)


class Work:
    """Actions that count their calls and fail while ``broken`` names them."""

    def __init__(self):
        self.calls = collections.Counter()
        self.broken = set()

    def __call__(self, ctx):
        self.calls[ctx.task_id] += 1
        if ctx.task_id in self.broken:
            raise RuntimeError(f"{ctx.task_id} is broken")
        return {"id": ctx.task_id, "sum": sum(v["sum"] for v in ctx.inputs.values()) + 1}


def diamond(work):
    return [task("a", action=work), task("b", ["a"], action=work), task("c", ["a"], action=work),
            task("d", ["b", "c"], action=work), task("e", action=work)]


def orchestrator(store):
    orch = CollectiveAgentWorkflowOrchestrator(store=store, progress=False)
    orch.register_agent(AgentProfile("ag", "agent", ["w"], capacity=3))
    return orch


async def test_resume_reruns_only_what_did_not_complete_under_the_same_run_id(tmp_path):
    work = Work()
    work.broken = {"c"}
    orch = orchestrator(tmp_path / "r.db")
    events = []
    orch.subscribe(events.append)
    metrics = AdvancedWorkflowMetrics().attach(orch)
    await orch.create_workflow("wf", diamond(work))
    first = await orch.execute_workflow("wf")
    assert first.status == "failed" and first.task_results["d"]["status"] == "skipped"

    work.broken = set()  # the user fixes the bug, then resumes
    second = await orch.execute_workflow("wf", resume="latest")
    assert second.status == "completed" and second.run_id == first.run_id
    assert work.calls == {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}
    assert {t for t, r in second.task_results.items() if r["resumed"]} == {"a", "b", "e"}
    started = [e for e in events if isinstance(e, RunStarted)]
    assert started[1].resumed and set(started[1].resumed) == {"a", "b", "e"}
    assert second.results()["d"] == {"id": "d", "sum": 5}  # fed by the stored results of b

    in_memory = metrics.workflow_frame()  # one run, resumed: one row, one execution summarised
    assert in_memory[["status", "successful_tasks", "resumed_tasks"]].values.tolist() == [
        ["completed", 5, 3]]
    assert metrics.get_workflow_summary()["wf"]["total_executions"] == 1

    store = orch.store
    runs = store.workflow_frame()
    assert len(runs) == 1
    assert runs.iloc[0][["status", "successful_tasks", "resumed_tasks"]].tolist() == [
        "completed", 5, 3]
    tasks = store.task_frame()
    assert sorted(tasks[tasks.status == "completed"]["task_id"]) == ["a", "b", "c", "d", "e"]
    assert tasks[tasks.status == "failed"]["task_id"].tolist() == ["c"]
    store.close()


async def test_resume_by_run_id_and_after_a_restart_of_the_process(tmp_path):
    work = Work()
    work.broken = {"d"}
    orch = orchestrator(tmp_path / "r.db")
    await orch.create_workflow("wf", diamond(work))
    old = await orch.execute_workflow("wf")
    work.broken = set()
    await orch.execute_workflow("wf")  # a newer, complete run
    orch.store.close()

    # A fresh orchestrator and store, as in a restarted kernel; resume the older run by id.
    orch2 = orchestrator(RunStore(tmp_path / "r.db"))
    await orch2.create_workflow("wf", diamond(work))
    before = work.calls.copy()
    again = await orch2.execute_workflow("wf", resume=old.run_id)
    assert again.run_id == old.run_id and again.status == "completed"
    assert work.calls - before == {"d": 1}
    # resuming a completed run reuses everything
    latest = await orch2.execute_workflow("wf", resume="latest")
    assert latest.status == "completed" and all(r["resumed"] for r in latest.task_results.values())
    assert work.calls - before == {"d": 1}
    orch2.store.close()


async def test_a_task_whose_result_was_not_stored_runs_again_on_resume(tmp_path):
    import threading

    calls = collections.Counter()

    def lock(ctx):
        calls["lock"] += 1
        return threading.Lock()

    def boom(ctx):
        calls["boom"] += 1
        if calls["boom"] == 1:
            raise RuntimeError("once")
        return "ok"

    orch = orchestrator(tmp_path / "r.db")
    await orch.create_workflow("w", [task("lock", action=lock), task("boom", action=boom)])
    with pytest.warns(UserWarning, match="'lock'"):
        await orch.execute_workflow("w")
    with pytest.warns(UserWarning, match="'lock'"):
        result = await orch.execute_workflow("w", resume="latest")
    assert result.status == "completed" and calls == {"lock": 2, "boom": 2}
    orch.store.close()


async def test_resume_errors_say_what_to_do(tmp_path):
    work = Work()
    no_store = CollectiveAgentWorkflowOrchestrator(progress=False)
    no_store.register_agent(AgentProfile("ag", "agent", ["w"]))
    await no_store.create_workflow("wf", diamond(work))
    with pytest.raises(ResumeError, match=r"resume= needs a run store"):
        await no_store.execute_workflow("wf", resume="latest")

    orch = orchestrator(tmp_path / "r.db")
    await orch.create_workflow("wf", diamond(work))
    with pytest.raises(ResumeError, match=r"nothing to resume: .*r\.db holds no run of workflow "
                                          r"'wf'; run it once without resume="):
        await orch.execute_workflow("wf", resume="latest")
    with pytest.raises(ResumeError, match=r"no run 'nope' in the store"):
        await orch.execute_workflow("wf", resume="nope")
    with pytest.raises(ResumeError, match=r"takes 'latest' or a run id"):
        await orch.execute_workflow("wf", resume=42)

    run = await orch.execute_workflow("wf")
    await orch.create_workflow("other", [task("x", action=work)])
    with pytest.raises(ResumeError, match=r"is a run of workflow 'wf', not 'other'"):
        await orch.execute_workflow("other", resume=run.run_id)

    await orch.create_workflow("wf", [*diamond(work), task("new", ["d"], action=work)])
    with pytest.raises(ResumeError, match=r"tasks of workflow 'wf' changed since it ran "
                                          r"\(added: 'new'\)"):
        await orch.execute_workflow("wf", resume="latest")
    await orch.create_workflow("wf", diamond(work)[:4])
    with pytest.raises(ResumeError, match=r"removed: 'e'"):
        await orch.execute_workflow("wf", resume="latest")
    rewired = diamond(work)
    rewired[3] = task("d", ["b"], action=work)
    await orch.create_workflow("wf", rewired)
    with pytest.raises(ResumeError, match=r"dependencies changed: 'd'"):
        await orch.execute_workflow("wf", resume=run.run_id)
    calls = sum(work.calls.values())
    await orch.create_workflow("wf", diamond(work))  # the same tasks again: fine
    await orch.execute_workflow("wf", resume=run.run_id)
    assert sum(work.calls.values()) == calls
    orch.store.close()
