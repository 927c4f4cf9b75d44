"""ProcessExecutor: real worker processes, real pickling, real process deaths."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from support import dead, run, wait_for

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    ProcessExecutor,
    TaskNotSendableError,
    ValidationError,
    WorkerLostError,
    WorkflowTask,
)
from wfkit.events import TaskFailed, TaskRetrying, TaskStarted

REPO = Path(__file__).resolve().parents[2]


# -- work shipped to the processes (module level: standard pickle sends it by reference) -----


def describe(ctx):
    return {
        "pid": os.getpid(),
        "task": ctx.task.task_id,
        "action": ctx.task.action,
        "agent": ctx.agent.agent_id,
        "handler": ctx.agent.handler,
        "inputs": dict(ctx.inputs),
        "attempt": ctx.attempt,
        "run_id": ctx.run_id,
        "workflow_id": ctx.workflow_id,
    }


def add_inputs(ctx):
    return sum(v for v in ctx.inputs.values()) + 1


def scaled(factor, ctx):
    return factor * len(ctx.inputs)


def rendezvous(folder, ctx):
    """Wait until the other task has started too: only possible if both run at once."""
    me = ctx.task.task_id
    other = "left" if me == "right" else "right"
    Path(folder, me).write_text(str(os.getpid()))
    deadline = time.monotonic() + 20
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me} never saw {other} running at the same time")
        time.sleep(0.01)
    return os.getpid()


def flaky(ctx):
    if ctx.attempt == 1:
        raise ValueError("first attempt fails")
    return ctx.attempt


def dies_first(ctx):
    if ctx.attempt == 1:
        os._exit(3)  # the worker process dies mid-task
    return "survived"


def always_dies(ctx):
    os._exit(4)


def returns_lock(ctx):
    return threading.Lock()


def sleeper(folder, ctx):
    # written beside the folder, then renamed into it: a reader never sees an empty pid file
    staged = Path(f"{folder}-{ctx.task.task_id}.pid")
    staged.write_text(str(os.getpid()))
    os.replace(staged, Path(folder, ctx.task.task_id))
    time.sleep(60)
    return "never"


async def make_lock(ctx):  # runs on the event loop: its result never travels
    return threading.Lock()


def agent(executor=None, capacity=2, handler=None, caps=("cpu",), agent_id="a"):
    return AgentProfile(
        agent_id, agent_id, list(caps), capacity=capacity, handler=handler, executor=executor
    )


def task(tid, action, deps=(), **kw):
    return WorkflowTask(tid, tid, ["cpu"], 0, 1.0, list(deps), action=action, **kw)


@pytest.fixture
def pool():
    executor = ProcessExecutor(max_workers=2)
    yield executor
    executor.close()


# -- results, context, dependencies ------------------------------------------------------------


async def test_work_runs_in_another_process_with_a_light_context(pool):
    result, _ = await run([task("a", add_inputs), task("b", describe, ["a"])], executor=pool)
    assert result.status == "completed"
    info = result.task_results["b"]["result"]
    assert info["pid"] != os.getpid()
    assert info["task"] == "b" and info["action"] is None  # the task travels without its action
    assert info["agent"] == "a" and info["handler"] is None
    assert info["inputs"] == {"a": 1}
    assert info["attempt"] == 1
    assert info["run_id"] == result.run_id and info["workflow_id"] == "wf"


async def test_dependencies_and_partials(pool):
    tasks = [
        task("a", add_inputs),
        task("b", add_inputs, ["a"]),
        task("c", add_inputs, ["a"]),
        task("d", add_inputs, ["b", "c"]),
        task("e", functools.partial(scaled, 10), ["a", "b", "c"]),
    ]
    result, _ = await run(tasks, executor=pool)
    assert result.results() == {"a": 1, "b": 2, "c": 2, "d": 5, "e": 30}


async def test_cpu_work_runs_in_parallel_processes(pool, tmp_path):
    tasks = [task(t, functools.partial(rendezvous, str(tmp_path))) for t in ("left", "right")]
    result, _ = await run(tasks, executor=pool)
    assert result.status == "completed", result.task_results
    pids = {r["result"] for r in result.task_results.values()}
    assert len(pids) == 2 and os.getpid() not in pids


async def test_agent_executor_overrides_the_default(tmp_path):
    procs = ProcessExecutor(max_workers=1)
    try:
        tasks = [
            WorkflowTask("heavy", "", ["cpu"], 0, 1.0, action=describe),
            WorkflowTask("light", "", ["io"], 0, 1.0, action=lambda ctx: os.getpid()),
        ]
        agents = [agent(procs, agent_id="cruncher"), agent(None, caps=["io"], agent_id="waiter")]
        result, _ = await run(tasks, executor=None, agents=agents)
        assert result.status == "completed"
        assert result.task_results["heavy"]["result"]["pid"] != os.getpid()
        assert result.task_results["light"]["result"] == os.getpid()  # threads, this process
    finally:
        procs.close()


# -- what cannot be sent -----------------------------------------------------------------------


async def test_a_lambda_is_refused_before_anything_runs(pool):
    tasks = [task("fine", add_inputs), task("anon", lambda ctx: 1, ["fine"])]
    with pytest.raises(
        TaskNotSendableError,
        match=r"task 'anon' cannot be sent to a worker process: its action .*<lambda>.* "
        r"cannot be pickled .*top level of a module",
    ) as info:
        await run(tasks, executor=pool)
    assert info.value.task_id == "anon" and info.value.executor == "processes"


async def test_a_closure_handler_is_refused_and_nothing_runs(pool):
    def local_handler(ctx):
        return 1

    events = []
    orch = CollectiveAgentWorkflowOrchestrator(executor=pool, progress=False)
    orch.register_agent(agent(handler=local_handler, agent_id="worker"))
    orch.subscribe(events.append)
    await orch.create_workflow("wf", [WorkflowTask("t", "", ["cpu"], 0, 1.0)])
    with pytest.raises(
        TaskNotSendableError,
        match=r"task 't' .* agent 'worker''s handler .*local_handler.* cannot be pickled",
    ):
        await orch.execute_workflow("wf")
    assert [type(e).__name__ for e in events] == ["WorkflowCreated"]  # no run, no task


async def test_async_work_is_not_shipped(pool):
    async def local_async(ctx):  # a closure, but it runs on the event loop
        return "loop"

    result, _ = await run([task("t", local_async)], executor=pool)
    assert result.results() == {"t": "loop"}


async def test_unpicklable_input_names_the_dependency(pool):
    tasks = [task("lock", make_lock), task("use", add_inputs, ["lock"])]
    result, _ = await run(tasks, executor=pool)
    tr = result.task_results["use"]
    assert tr["status"] == "failed"
    assert isinstance(tr["exception"], TaskNotSendableError)
    assert "the result(s) of 'lock' (lock)" in tr["error"]


async def test_unpicklable_return_value_is_explained(pool):
    result, _ = await run([task("t", returns_lock)], executor=pool)
    tr = result.task_results["t"]
    assert tr["status"] == "failed"
    assert "TaskNotSendableError: task 't' returned a lock that cannot be sent back" in tr["error"]


# -- retries, lost workers, timeouts, cancellation ---------------------------------------------


async def test_failures_are_retried(pool):
    result, events = await run([task("t", flaky, retries=1)], executor=pool)
    assert result.task_results["t"]["status"] == "completed"
    assert result.task_results["t"]["attempts"] == 2
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert [(e.attempt, e.final) for e in failed] == [(1, False)]
    assert failed[0].error == "ValueError: first attempt fails"


@pytest.mark.slow  # a worker process dies mid-task
async def test_a_dead_worker_process_is_a_free_retry(pool):
    result, events = await run([task("t", dies_first), task("u", describe, ["t"])], executor=pool)
    assert result.status == "completed"
    assert result.task_results["u"]["result"]["inputs"] == {"t": "survived"}
    assert result.task_results["t"]["attempts"] == 2  # retries=0, yet it was retried
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert len(failed) == 1 and not failed[0].final
    assert failed[0].error.startswith("WorkerLostError: the worker process running task 't' died")
    assert any(isinstance(e, TaskRetrying) for e in events)


@pytest.mark.slow  # worker processes die, one after another
async def test_a_task_that_keeps_killing_its_worker_fails():
    executor = ProcessExecutor(max_workers=1, lost_worker_retries=1)
    try:
        result, events = await run([task("t", always_dies, retries=1)], executor=executor)
    finally:
        executor.close()
    tr = result.task_results["t"]
    assert tr["status"] == "failed" and isinstance(tr["exception"], WorkerLostError)
    # one free retry for the lost worker, then the task's own retry, then it fails for good
    assert tr["attempts"] == 3
    assert [e.final for e in events if isinstance(e, TaskFailed)] == [False, False, True]


async def test_a_timed_out_task_stops_its_process(pool, tmp_path):
    work = functools.partial(sleeper, str(tmp_path))
    result, _ = await run([task("slow", work, timeout=1.0)], executor=pool)
    assert result.task_results["slow"]["status"] == "failed"
    assert "TaskTimeoutError" in result.task_results["slow"]["error"]
    pid = int((tmp_path / "slow").read_text())
    await wait_for(lambda: dead(pid), f"process {pid} to be stopped", timeout=20.0)


async def test_cancelling_the_run_stops_running_work(pool, tmp_path):
    work = functools.partial(sleeper, str(tmp_path))
    orch = CollectiveAgentWorkflowOrchestrator(executor=pool, progress=False)
    orch.register_agent(agent(capacity=2))
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow("wf", [task("s1", work), task("s2", work)])
    running = asyncio.ensure_future(orch.execute_workflow("wf"))
    await wait_for(lambda: len(list(tmp_path.iterdir())) == 2, "both tasks to start")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    pids = [int(p.read_text()) for p in tmp_path.iterdir()]
    await wait_for(lambda: all(map(dead, pids)), "the worker processes to stop", timeout=20.0)
    assert orch.workflows["wf"]["status"] == "cancelled"
    assert {e.task_id for e in events if isinstance(e, TaskStarted)} == {"s1", "s2"}
    # the executor is usable again: a fresh pool replaces the stopped one
    result, _ = await run([task("again", add_inputs)], executor=pool)
    assert result.results() == {"again": 1}


# -- notebooks: functions defined in __main__ ---------------------------------------------------

NOTEBOOK = textwrap.dedent(
    """
    import asyncio
    from wfkit import (AgentProfile, CollectiveAgentWorkflowOrchestrator, ProcessExecutor,
                       TaskNotSendableError, WorkflowTask)

    ex = ProcessExecutor(max_workers=1, mp_context=METHOD)
    orch = CollectiveAgentWorkflowOrchestrator(executor=ex, progress=False)
    orch.register_agent(AgentProfile("a", "a", ["cpu"]))

    async def once():
        await orch.create_workflow("wf", [WorkflowTask("t", "", ["cpu"], 0, 1.0, action=cell)])
        return (await orch.execute_workflow("wf")).results()["t"]

    def cell(ctx):
        return "first definition"
    try:
        print(asyncio.run(once()))
    except TaskNotSendableError as exc:
        print("refused:", exc)

    def cell(ctx):  # the user edits the cell and runs it again
        return "second definition"
    try:
        print(asyncio.run(once()))
    except TaskNotSendableError as exc:
        print("refused:", exc)
    ex.close()
    """
)


def run_as_notebook(method: str) -> list[str]:
    """``python -c`` has a ``__main__`` without a file, as a notebook kernel does."""
    code = NOTEBOOK.replace("METHOD", repr(method))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_notebook_functions_follow_redefinition_with_fork():
    assert run_as_notebook("fork") == ["first definition", "second definition"]


def test_notebook_functions_are_refused_with_spawn():
    lines = run_as_notebook("spawn")
    assert len(lines) == 2
    assert lines[0].startswith("refused: task 't' cannot be sent to a worker process: its action")
    assert "defined in this notebook, which 'spawn' worker processes cannot import" in lines[0]
    assert "mp_context='fork'" in lines[0]


# -- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, r"max_workers=...\) must be an int >= 1 or None, got 0"),
        ({"mp_context": "teleport"}, r"mp_context='teleport'\): unknown start method; use one of"),
        ({"lost_worker_retries": -1}, r"lost_worker_retries=...\) must be an int >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        ProcessExecutor(**kwargs)
