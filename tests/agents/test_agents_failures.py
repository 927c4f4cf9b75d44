"""Failures are loud where they should be and point at the user's line: raise_for_status,
WorkflowFailedError, run_sync(raise_on_failure=True), task_results[...]["traceback"]."""

import inspect
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import wfkit
from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    WfkitError,
    WorkflowFailedError,
)
from wfkit.events import TaskFailed
from wfkit.tracebacks import user_frame


def _line_of(fn, text):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def clean(ctx):
    df = pd.DataFrame({"revenue": [1, 2]})
    return df["revenu"].sum()  # the user's typo: pandas raises the KeyError deep inside


def report(ctx):
    return ctx.inputs["clean"]


def ok(ctx):
    return 1


async def _run(tasks, **kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001)
    orch.register_agent(AgentProfile("a", "A", ["w"], capacity=2))
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow("sales", tasks)
    return await orch.execute_workflow("sales", **kw), events


def _wf():
    wf = wfkit.Workflow("sales")
    wf.task(requires=["w"])(ok)
    wf.task(requires=["w"], retries=1)(clean)
    wf.task(requires=["w"], after=["clean"])(report)
    return wf


async def test_raise_for_status_names_the_task_its_error_and_the_users_line():
    result, _ = await _run(_wf().tasks)
    assert result.status == "failed"
    with pytest.raises(WorkflowFailedError) as info:
        result.raise_for_status()
    err = info.value
    assert isinstance(err, WfkitError)
    line = _line_of(clean, 'df["revenu"]')
    msg = str(err)
    assert "task 'clean' failed: KeyError: 'revenu'" in msg
    assert f"{__file__}:{line}" in msg
    assert 'return df["revenu"].sum()' in msg
    assert "1 failed, 1 skipped" in msg
    # the first failure is the cause, with its traceback
    assert isinstance(err.__cause__, KeyError)
    assert err.__cause__ is result.task_results["clean"]["exception"]
    assert err.failures[0][0] == "clean"
    assert err.failures[0][2].lineno == line
    assert err.result is result and err.run_id == result.run_id


async def test_a_completed_run_returns_itself():
    wf = wfkit.Workflow("sales")
    wf.task(requires=["w"])(ok)
    result, _ = await _run(wf.tasks)
    assert result.raise_for_status() is result


async def test_the_full_traceback_is_a_string_in_the_task_results_and_the_event():
    result, events = await _run(_wf().tasks)
    tb = result.task_results["clean"]["traceback"]
    assert isinstance(tb, str)
    assert tb.startswith("Traceback (most recent call last)")
    assert "KeyError: 'revenu'" in tb and "pandas" in tb  # the whole story, library frames too
    assert result.task_results["ok"]["traceback"] is None
    assert result.task_results["report"]["traceback"] is None  # skipped, never ran
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert [e.final for e in failed] == [False, True]  # retried once
    line = _line_of(clean, 'df["revenu"]')
    assert all(e.where.startswith(f"{__file__}:{line} in clean:") for e in failed)
    assert failed[-1].traceback == tb
    # the text alone gives the same frame (a store or a worker process hands back text)
    assert user_frame(tb) == user_frame(result.task_results["clean"]["exception"])


def test_user_frame_reads_a_worker_processes_traceback_text():
    text = textwrap.dedent(
        '''\
        Traceback (most recent call last):
          File "/usr/lib/python3.11/concurrent/futures/process.py", line 256, in _process_worker
            r = call_item.fn(*call_item.args, **call_item.kwargs)
          File "/home/me/project/cpu_tasks.py", line 7, in crunch
            return total / count
                   ~~~~~~^~~~~~~
        ZeroDivisionError: division by zero
        '''
    )
    frame = user_frame(text)
    assert frame.filename == "/home/me/project/cpu_tasks.py"
    assert frame.lineno == 7 and frame.name == "crunch"
    assert frame.line == "return total / count"
    assert str(frame) == "/home/me/project/cpu_tasks.py:7 in crunch: return total / count"
    assert user_frame("TaskTimeoutError: task 'x' did not finish") is None
    assert user_frame(None) is None


def test_run_sync_raise_on_failure_makes_a_script_fail_at_the_users_line(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(
        """
        import wfkit
        wf = wfkit.Workflow("s")

        @wf.task(requires=["x"])
        def load(ctx):
            return {"revenue": 3}

        @wf.task(requires=["x"], after=[load])
        def clean(ctx):
            return ctx.inputs["load"]["revenu"]

        orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
        orch.register_agent(wfkit.AgentProfile("x", "X", ["x"]))
        wfkit.run_sync(orch.create_workflow(wf))
        wfkit.run_sync(orch.execute_workflow("s"), raise_on_failure=True)
        print("not reached")
        """
    ))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "not reached" not in out.stdout
    assert "wfkit.errors.WorkflowFailedError: workflow 's'" in out.stderr
    assert "task 'clean' failed: KeyError: 'revenu'" in out.stderr
    line = script.read_text().splitlines().index('    return ctx.inputs["load"]["revenu"]') + 1
    assert f"at {script}:{line} in clean" in out.stderr
    assert 'return ctx.inputs["load"]["revenu"]' in out.stderr
    # the cause's traceback is printed above it
    assert "The above exception was the direct cause" in out.stderr


async def test_run_sync_raise_on_failure_returns_a_completed_result():
    wf = wfkit.Workflow("sales")
    wf.task(requires=["w"])(ok)
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "A", ["w"]))
    await orch.create_workflow(wf)
    result = wfkit.run_sync(orch.execute_workflow("sales"), raise_on_failure=True)
    assert result.status == "completed"
    with pytest.raises(wfkit.ValidationError, match="needs an awaitable that returns a RunResult"):
        wfkit.run_sync(orch.create_workflow(wf), raise_on_failure=True)


async def test_a_failure_in_a_worker_process_points_at_the_users_line():
    wf = wfkit.Workflow("sales")
    wf.task(requires=["w"])(clean)
    executor = wfkit.ProcessExecutor(max_workers=1)
    try:
        orch = CollectiveAgentWorkflowOrchestrator(progress=False, executor=executor)
        orch.register_agent(AgentProfile("a", "A", ["w"]))
        await orch.create_workflow(wf)
        result = await orch.execute_workflow("sales")
    finally:
        executor.close()
    line = _line_of(clean, 'df["revenu"]')
    with pytest.raises(WorkflowFailedError, match=rf"at {__file__}:{line} in clean"):
        result.raise_for_status()
    assert user_frame(result.task_results["clean"]["traceback"]).lineno == line


def connect(ctx):
    raise ConnectionError("cannot reach db"); "postgresql://app:hunter2@db/sales"  # noqa: E702


async def test_the_users_line_in_the_event_is_masked_like_the_traceback():
    wf = wfkit.Workflow("sales")
    wf.task(requires=["w"])(connect)
    result, events = await _run(wf.tasks)
    where = next(e for e in events if isinstance(e, TaskFailed)).where
    assert where.startswith(f"{__file__}:{_line_of(connect, 'hunter2')} in connect")
    assert "hunter2" not in where and "hunter2" not in result.task_results["connect"]["traceback"]
