"""A run's ``task_results`` rows: plain dicts of one shape, compact for large runs."""

import copy
import json
import pickle
import platform
import sys

import pytest

from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, WorkflowTask

ROW_KEYS = [
    "task_id", "agent_id", "status", "result", "error", "attempts", "execution_time",
    "started_at", "finished_at", "resumed", "cached", "exception", "traceback",
]


async def _work(ctx):
    if ctx.task.task_id == "bad":
        raise ValueError("no good")
    return {"done": ctx.task.task_id}


async def _result():
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "A", ["work"], capacity=2, handler=_work))
    tasks = [
        WorkflowTask("ok", "ok", ["work"], 0, 1.0),
        WorkflowTask("bad", "bad", ["work"], 0, 1.0),
        WorkflowTask("after", "after", ["work"], 0, 1.0, ["bad"]),
    ]
    await orch.create_workflow("w", tasks)
    result = await orch.execute_workflow("w")
    orch.close()
    return result


async def test_rows_are_plain_dicts_with_the_documented_keys_in_order():
    rows = (await _result())["task_results"]
    assert list(rows) == ["ok", "bad", "after"]
    for row in rows.values():
        assert type(row) is dict
        assert list(row) == ROW_KEYS
    ok, bad, after = rows["ok"], rows["bad"], rows["after"]
    assert ok["status"] == "completed" and ok["result"] == {"done": "ok"}
    assert ok["agent_id"] == "a" and ok["attempts"] == 1 and ok["error"] is None
    assert ok["execution_time"] == ok["finished_at"] - ok["started_at"]
    assert bad["status"] == "failed" and "no good" in bad["error"]
    assert isinstance(bad["exception"], ValueError) and "ValueError" in bad["traceback"]
    assert after["status"] == "skipped" and after["attempts"] == 0
    assert after["started_at"] is None and after["execution_time"] == 0.0


async def test_rows_behave_as_dicts_copied_pickled_and_written():
    rows = (await _result())["task_results"]
    ok = rows["ok"]
    assert ok == dict(ok) == {**ok} == copy.deepcopy(ok)
    assert pickle.loads(pickle.dumps(ok)) == ok
    assert json.loads(json.dumps(ok)) == ok
    ok["note"] = "mine"  # a row is the caller's to change
    ok.pop("cached")
    assert list(ok)[-1] == "note" and "cached" not in ok
    assert list(rows["bad"]) == ROW_KEYS  # the other rows are unchanged


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="CPython's layout")
async def test_rows_share_one_table_of_keys():
    # 100,000 rows of 13 keys each: a table of keys per row would double their memory.
    rows = (await _result())["task_results"]
    for row in rows.values():
        assert sys.getsizeof(row) < sys.getsizeof({**row})


def _stepping(clock, seconds):
    """An action that takes ``seconds`` of the manual clock and returns its task's id."""
    async def action(ctx):
        clock.advance(seconds)
        return ctx.task.task_id
    return action


async def _plain_rows(extra=()):
    from wfkit.clock import ManualClock

    clock = ManualClock(start=1000.0)
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, clock=clock)
    orch.register_agent(AgentProfile("a", "A", ["work"], capacity=1))
    tasks = [
        WorkflowTask("one", "one", ["work"], 0, 1.0, action=_stepping(clock, 2.0)),
        WorkflowTask("two", "two", ["work"], 0, 1.0, ["one"], action=_stepping(clock, 3.0)),
        *extra,
    ]
    await orch.create_workflow("w", tasks)
    result = await orch.execute_workflow("w")
    orch.close()
    return result["task_results"]


def _row(tid, started, ended):
    return {
        "task_id": tid, "agent_id": "a", "status": "completed", "result": tid, "error": None,
        "attempts": 1, "execution_time": ended - started, "started_at": started,
        "finished_at": ended, "resumed": False, "cached": False, "exception": None,
        "traceback": None,
    }


async def test_a_run_where_every_task_completed_has_exact_rows():
    # nothing skipped, resumed or cached: the rows of the common large run
    rows = await _plain_rows()
    assert rows == {"one": _row("one", 1000.0, 1002.0), "two": _row("two", 1002.0, 1005.0)}
    assert [list(r) for r in rows.values()] == [ROW_KEYS, ROW_KEYS]


async def test_a_completed_row_is_the_same_when_another_task_was_skipped():
    async def fail(ctx):
        raise ValueError("no")

    rows = await _plain_rows([
        WorkflowTask("bad", "bad", ["work"], 0, 1.0, ["two"], action=fail),
        WorkflowTask("after", "after", ["work"], 0, 1.0, ["bad"], action=fail),
    ])
    assert rows["one"] == _row("one", 1000.0, 1002.0)
    assert rows["two"] == _row("two", 1002.0, 1005.0)
    assert rows["after"]["status"] == "skipped" and rows["bad"]["status"] == "failed"
