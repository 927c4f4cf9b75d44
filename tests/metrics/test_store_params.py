"""Run parameters and sub-workflow parents in the run store and the in-memory frames."""

import sqlite3

from wfkit import (
    AdvancedWorkflowMetrics,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    RunStore,
    Workflow,
)


def workflow():
    wf = Workflow("sales", params={"year": 2007})

    @wf.task(requires=["work"])
    def pick(ctx):
        return ctx.params["year"]

    return wf


async def run_once(store=None, **params):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, store=store)
    orch.register_agent(AgentProfile("a", "A", ["work"]))
    metrics = AdvancedWorkflowMetrics().attach(orch)
    await orch.create_workflow(workflow())
    result = await orch.execute_workflow("sales", params=params or None)
    orch.close()
    return result, metrics


async def test_the_recorder_frame_has_params_and_parents():
    result, metrics = await run_once(year=2010)
    frame = metrics.workflow_frame()
    assert frame["params"].tolist() == [{"year": 2010}]
    assert frame["parent_run_id"].isna().all() and frame["parent_task_id"].isna().all()
    assert str(frame["parent_run_id"].dtype) == "string"


async def test_a_store_written_before_params_gains_the_columns_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.db"
    await run_once(store=path)
    with sqlite3.connect(path) as conn:  # make it the older layout: no params, no parents
        for column in ("params", "parent_run_id", "parent_task_id"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    with RunStore(path) as store:
        old = store.workflow_frame()
        assert old["params"].tolist() == [{}]
        assert store.run_params(old["run_id"][0]) is None
    result, _ = await run_once(store=path, year=2011)
    with RunStore(path) as store:
        frame = store.workflow_frame()
        assert frame["params"].tolist() == [{}, {"year": 2011}]
        assert store.run_params(result.run_id) == {"year": 2011}
