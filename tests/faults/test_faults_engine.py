"""Faults injected into the engine: every run ends, nothing is lost, errors are messages.

Each test injects faults (a task raising an odd ``BaseException``, a policy that raises, a
subscriber that raises, a task that ignores its timeout, a task that calls ``sys.exit``) and
checks that every run it starts ends, with the fault recorded. The module keeps a tally,
written at the end of the module and checked there: faults injected, runs started and ended,
and tracebacks where an error message was due (asyncio's "exception was never retrieved",
"Exception in callback", "Task was destroyed but it is pending", or a traceback on a CLI's
stderr). The goal: every run ends, 0 lost, 0 tracebacks.

Concurrency is asserted from recorded start/end times and counts, never from how long
something took on the wall clock; timeouts here only bound a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
import threading

import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    PolicyError,
    WorkflowTask,
)
from wfkit.agents.policies import Policy
from wfkit.events import RunFinished, RunStarted, TaskFailed
from wfkit.optimization.policies import Heft
from wfkit.runsync import run_sync

HANG = 60  # seconds: only a bound on a hang, never an expectation

TALLY = {
    "faults injected": 0,
    "runs started": 0,
    "runs ended": 0,
    "tracebacks where an error message was due": 0,
}


def inject(n: int = 1) -> None:
    TALLY["faults injected"] += n


class _AsyncioErrors(logging.Handler):
    """Counts what asyncio logs at ERROR: an exception nobody handled, a task destroyed
    pending. Each is a traceback where the run should have said what went wrong."""

    def emit(self, record: logging.LogRecord) -> None:
        TALLY["tracebacks where an error message was due"] += 1


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    handler = _AsyncioErrors(level=logging.ERROR)
    logging.getLogger("asyncio").addHandler(handler)
    yield TALLY
    logging.getLogger("asyncio").removeHandler(handler)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = "engine faults: " + ", ".join(f"{k} {v}" for k, v in TALLY.items())
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    assert TALLY["runs ended"] == TALLY["runs started"], line
    assert TALLY["tracebacks where an error message was due"] == 0, line


def count_runs(event) -> None:
    if isinstance(event, RunStarted):
        TALLY["runs started"] += 1
    elif isinstance(event, RunFinished):
        TALLY["runs ended"] += 1


def task(tid, deps=None, caps=("work",), priority=0, estimate=1.0, **kw):
    return WorkflowTask(tid, tid, list(caps), priority, estimate, deps, **kw)


def orchestrator(*agents, **kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001, **kw)
    for a in agents:
        orch.register_agent(a)
    orch.subscribe(count_runs)
    return orch


async def run(orch, tasks, **kw):
    await orch.create_workflow("w", tasks)
    return await asyncio.wait_for(orch.execute_workflow("w", **kw), HANG)


def peak_per_agent(intervals):
    """The most tasks each agent ran at once, from recorded (agent, start, end) intervals;
    at equal times an end comes before a start (the slot was free again)."""
    points = sorted(
        [(s, 1, a) for a, s, _ in intervals] + [(e, -1, a) for a, _, e in intervals],
        key=lambda p: (p[0], p[1]),
    )
    now: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _, delta, agent in points:
        now[agent] = now.get(agent, 0) + delta
        peak[agent] = max(peak.get(agent, 0), now[agent])
    return peak


# -- runs that share agents ------------------------------------------------------------------


class SharedWork:
    """The handler of the shared agents: records each task's interval. The first tasks wait
    until every slot of every agent is taken at once, so the runs really overlap."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0
        self.full = asyncio.Event()
        self.intervals: list[tuple[str, float, float]] = []

    async def __call__(self, ctx):
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.running += 1
        if self.running >= self.slots:
            self.full.set()
        try:
            if ctx.task.task_id == "hold":
                await asyncio.Event().wait()  # only the run's cancellation ends it
            await asyncio.wait_for(self.full.wait(), HANG)
            await asyncio.sleep(0)
        finally:
            self.running -= 1
            self.intervals.append((ctx.agent.agent_id, start, loop.time()))
        return ctx.task.task_id


def shared_workflow(i: int):
    return [
        task(f"r{i}"),
        task(f"s{i}"),
        task(f"x{i}", [f"r{i}"]),
        task(f"y{i}", [f"s{i}"]),
        task(f"z{i}", [f"x{i}", f"y{i}"]),
    ]


def raising_after(n: int):
    """A policy that chooses normally for ``n`` calls, then raises."""
    calls = [0]

    def policy(t, cands):
        calls[0] += 1
        if calls[0] > n:
            raise RuntimeError("the policy broke")
        return cands[0]

    return policy


@pytest.mark.parametrize("runs", [2, 10])
async def test_concurrent_runs_on_shared_agents_all_end_within_capacity(runs):
    work = SharedWork(slots=3)
    orch = orchestrator(
        AgentProfile("a", "A", ["work"], capacity=2, handler=work),
        AgentProfile("b", "B", ["work"], capacity=1, handler=work),
    )
    for i in range(runs):
        await orch.create_workflow(f"w{i}", shared_workflow(i))
    # The breaking run starts last, when the others hold every slot; its policy breaks on its
    # second choice, which it makes when another run has freed a slot.
    await orch.create_workflow("broken", [task("hold", priority=9), task("next")])
    inject()
    calls = [orch.execute_workflow(f"w{i}") for i in range(runs)]
    calls.append(orch.execute_workflow("broken", policy=raising_after(1)))
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), HANG)
    broken = results.pop()
    assert isinstance(broken, RuntimeError) and "the policy broke" in str(broken)
    assert orch.workflows["broken"]["status"] == "failed"
    assert [r["status"] for r in results] == ["completed"] * runs
    assert all(r["successful_tasks"] == 5 for r in results)
    peak = peak_per_agent(work.intervals)
    assert peak == {"a": 2, "b": 1}  # every slot was used at once, and never more
    assert orch.pool.load(orch.agents["a"]) == orch.pool.load(orch.agents["b"]) == 0
    assert orch.agents["a"].current_load == orch.agents["b"].current_load == 0


async def test_one_policy_instance_drives_overlapping_runs_each_on_its_own_plan():
    # A Heft instance keeps a plan per run: two overlapping runs of different workflows
    # must not follow each other's plan.
    gate = asyncio.Event()

    async def h(ctx):
        if ctx.task.task_id == "p0":
            await gate.wait()
        return ctx.agent.agent_id

    orch = orchestrator(
        AgentProfile("a", "A", ["work"], capacity=1, handler=h),
        AgentProfile("b", "B", ["work"], capacity=1, handler=h),
    )
    await orch.create_workflow("p", [task("p0"), task("p1", ["p0"])])
    await orch.create_workflow("q", [task("q0"), task("q1", ["q0"])])
    policy = Heft()
    first = asyncio.create_task(orch.execute_workflow("p", policy=policy))
    await asyncio.sleep(0)
    second = orch.execute_workflow("q", policy=policy)
    done_q = await asyncio.wait_for(second, HANG)
    gate.set()
    done_p = await asyncio.wait_for(first, HANG)
    assert done_p["status"] == done_q["status"] == "completed"
    assert set(policy.schedule.task_ids) in ({"p0", "p1"}, {"q0", "q1"})


async def test_a_policy_error_in_one_run_leaves_the_other_runs_alone():
    gate = asyncio.Event()

    async def h(ctx):
        if ctx.task.task_id == "slow":
            await gate.wait()
        return 1

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=1, handler=h))
    await orch.create_workflow("ok", [task("slow"), task("after")])
    await orch.create_workflow("bad", [task("t")])
    inject()
    ok = asyncio.create_task(orch.execute_workflow("ok"))
    await asyncio.sleep(0)
    bad = asyncio.create_task(orch.execute_workflow("bad", policy=raising_after(0)))
    await asyncio.sleep(0)
    gate.set()  # 'slow' frees the agent: 'ok' dispatches 'after', 'bad' is woken and breaks
    with pytest.raises(RuntimeError, match="the policy broke"):
        await asyncio.wait_for(bad, HANG)
    assert (await asyncio.wait_for(ok, HANG))["successful_tasks"] == 2


# -- what a task raises ------------------------------------------------------------------------


class Odd(BaseException):
    """A BaseException that is neither KeyboardInterrupt nor SystemExit."""


async def test_any_base_exception_from_a_task_fails_that_attempt():
    cancelled_elsewhere = asyncio.get_running_loop().create_future()
    cancelled_elsewhere.cancel()

    async def odd_async(ctx):
        raise Odd("async odd")

    def odd_sync(ctx):
        raise Odd("sync odd")

    async def own_cancel(ctx):
        await cancelled_elsewhere  # someone else cancelled what it waited for

    def own_cancel_sync(ctx):
        raise asyncio.CancelledError("sync cancel")

    def generator_exit(ctx):
        raise GeneratorExit

    flaky_calls = []

    async def flaky(ctx):
        flaky_calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise Odd("first attempt only")
        return "second time"

    actions = {
        "odd_async": odd_async, "odd_sync": odd_sync, "own_cancel": own_cancel,
        "own_cancel_sync": own_cancel_sync, "generator_exit": generator_exit,
    }
    tasks = [task(tid, action=fn) for tid, fn in actions.items()]
    tasks += [task("after", ["odd_async"], action=flaky), task("flaky", action=flaky, retries=1)]
    tasks += [task("timed", action=odd_async, timeout=30)]
    inject(len(actions) + 2)
    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=3))
    result = await run(orch, tasks)
    tr = result["task_results"]
    assert result["status"] == "failed"
    for tid in [*actions, "timed"]:
        assert tr[tid]["status"] == "failed", tid
        assert tr[tid]["exception"] is not None
    assert tr["odd_async"]["error"] == "Odd: async odd"
    assert tr["odd_sync"]["error"] == "Odd: sync odd"
    assert tr["own_cancel"]["error"].startswith("CancelledError")
    assert tr["own_cancel_sync"]["error"] == "CancelledError: sync cancel"
    assert tr["generator_exit"]["error"].startswith("GeneratorExit")
    assert tr["after"]["status"] == "skipped"
    assert tr["flaky"]["status"] == "completed" and flaky_calls == [1, 2]
    assert tr["flaky"]["result"] == "second time"
    assert orch.pool.load(orch.agents["a"]) == 0


async def test_the_runs_own_cancellation_still_cancels():
    started = asyncio.Event()

    async def forever(ctx):
        started.set()
        await asyncio.Event().wait()

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2, handler=forever))
    await orch.create_workflow("w", [task("t"), task("u")])
    running = asyncio.create_task(orch.execute_workflow("w"))
    await asyncio.wait_for(started.wait(), HANG)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert orch.workflows["w"]["status"] == "cancelled"
    assert orch.pool.load(orch.agents["a"]) == 0


async def test_a_subscriber_raising_a_base_exception_does_not_hang_the_run():
    seen = []

    def bad_subscriber(event):
        seen.append(type(event).__name__)
        raise Odd("subscriber broke")

    def cancelling_subscriber(event):
        raise asyncio.CancelledError

    async def h(ctx):
        return 1

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2, handler=h))
    orch.subscribe(bad_subscriber)
    orch.subscribe(cancelling_subscriber)
    inject(2)
    result = await run(orch, [task("t"), task("u", ["t"])])
    assert result["status"] == "completed" and result["successful_tasks"] == 2
    assert seen.count("TaskCompleted") == 2 and seen[-1] == "RunFinished"


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("sync", [True, False])
def test_an_interrupt_or_exit_from_a_task_cancels_the_run_then_propagates(kind, sync):
    # run_sync drives its own loop, as a script does: an exception of these two kinds that
    # escaped an asyncio task would stop that loop with the run still pending.
    held = threading.Event()

    def raises_sync(ctx):
        raise kind(3) if kind is SystemExit else kind()

    async def raises_async(ctx):
        raises_sync(ctx)

    async def other(ctx):
        held.set()
        await asyncio.Event().wait()

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2))
    events = []
    orch.subscribe(events.append)
    inject()

    async def main():
        await orch.create_workflow("w", [
            task("other", action=other, priority=5),
            task("boom", action=raises_sync if sync else raises_async),
        ])
        return await orch.execute_workflow("w")

    with pytest.raises(kind) as caught:
        run_sync(main())
    if kind is SystemExit:
        assert caught.value.code == 3
    assert held.is_set()
    assert [e.status for e in events if isinstance(e, RunFinished)] == ["cancelled"]
    assert not [e for e in events if isinstance(e, TaskFailed)]
    assert orch.workflows["w"]["status"] == "cancelled"
    assert orch.pool.load(orch.agents["a"]) == 0
    orch.close()


class CountingPolicy(Policy):
    """A user policy with per-run state kept on itself in ``prepare``."""

    name = "counting"

    def prepare(self, tasks, agents):
        self.mine = set(tasks)

    def select(self, task, candidates):
        if task.task_id not in self.mine:
            raise PolicyError(f"{task.task_id!r} is not a task of this run")
        return candidates[0]


async def test_a_user_policy_instance_is_copied_for_each_run():
    gate = asyncio.Event()

    async def h(ctx):
        if ctx.task.task_id == "p0":
            await gate.wait()
        return 1

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=4, handler=h))
    await orch.create_workflow("p", [task("p0"), task("p1", ["p0"])])
    await orch.create_workflow("q", [task("q0"), task("q1", ["q0"])])
    policy = CountingPolicy()
    first = asyncio.create_task(orch.execute_workflow("p", policy=policy))
    await asyncio.sleep(0)
    assert (await asyncio.wait_for(orch.execute_workflow("q", policy=policy), HANG))[
        "status"
    ] == "completed"
    gate.set()
    assert (await asyncio.wait_for(first, HANG))["status"] == "completed"
    assert not hasattr(policy, "mine")  # the caller's instance kept no run's state


# -- a task that exits the process -------------------------------------------------------------

EXIT_TASKS = '''
import asyncio
import sys
import threading


async def wait(ctx):
    await asyncio.Event().wait()


def stuck(ctx):
    threading.Event().wait()  # a thread nothing will ever release


def leave(ctx):
    sys.exit(3)


async def leave_async(ctx):
    sys.exit(4)
'''

EXIT_SPEC = """\
workflow: exits
agents: {{a: {{capabilities: [x], capacity: 3}}}}
tasks:
  wait: {{requires: [x], action: "exit_tasks:wait", priority: 5}}
  stuck: {{requires: [x], action: "exit_tasks:stuck", priority: 5}}
  leave: {{requires: [x], action: "exit_tasks:{leave}"}}
  never: {{requires: [x], after: [leave], action: "exit_tasks:wait"}}
"""

NOT_A_MESSAGE = ("Traceback", "Task was destroyed", "never retrieved", "Exception in callback")


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "wfkit", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=HANG)


def count_cli_run(out) -> None:
    TALLY["runs started"] += 1
    TALLY["runs ended"] += 1  # the command returned (subprocess.run would have timed out)
    if any(marker in out.stderr for marker in NOT_A_MESSAGE):
        TALLY["tracebacks where an error message was due"] += 1


@pytest.mark.parametrize(("leave", "code"), [("leave", 3), ("leave_async", 4)])
def test_sys_exit_in_a_task_under_wfkit_run_cancels_marks_the_store_and_exits(
    tmp_path, leave, code
):
    (tmp_path / "exit_tasks.py").write_text(EXIT_TASKS)
    (tmp_path / "spec.yaml").write_text(EXIT_SPEC.format(leave=leave))
    inject()
    out = cli("run", "spec.yaml", "--store", "runs.db", cwd=tmp_path)
    count_cli_run(out)
    assert out.returncode == code, out.stderr
    assert not [m for m in NOT_A_MESSAGE if m in out.stderr], out.stderr
    with sqlite3.connect(tmp_path / "runs.db") as db:
        rows = db.execute("SELECT status, cancelled_tasks, finished_at FROM runs").fetchall()
    assert len(rows) == 1
    status, cancelled, finished_at = rows[0]
    assert status == "cancelled" and finished_at is not None
    assert cancelled == 4  # all: 'stuck' still runs in its thread, and the process exits


# -- timeouts that must free the worker --------------------------------------------------------


async def test_sync_tasks_stuck_past_their_timeout_do_not_hold_capacity(caplog):
    release = threading.Event()
    ran = []

    def sleeper(ctx):
        ran.append(ctx.task.task_id)
        release.wait(HANG)  # ignores its timeout: a thread cannot be interrupted
        return "late"

    def quick(ctx):
        return "quick"

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2))
    tasks = [
        task("sleep1", action=sleeper, priority=9, timeout=0.2),
        task("sleep2", action=sleeper, priority=9, timeout=0.2),
        task("quick", action=quick, timeout=HANG),
    ]
    inject(2)
    caplog.set_level(logging.WARNING, logger="wfkit.executors")
    try:
        result = await run(orch, tasks)
        tr = result["task_results"]
        assert sorted(ran) == ["sleep1", "sleep2"]
        assert tr["quick"]["status"] == "completed" and tr["quick"]["result"] == "quick"
        for tid in ("sleep1", "sleep2"):
            assert tr[tid]["status"] == "failed"
            assert "did not finish within its timeout of 0.2 s" in tr[tid]["error"]
        assert sorted(orch.executor.stuck) == ["sleep1", "sleep2"]
        warned = " ".join(r.getMessage() for r in caplog.records)
        assert "'sleep1'" in warned and "'sleep2'" in warned
    finally:
        release.set()
    for _ in range(HANG * 100):  # the threads return once released; then nothing is stuck
        if not orch.executor.stuck:
            break
        await asyncio.sleep(0.01)
    assert orch.executor.stuck == []
    orch.close()


async def test_an_async_task_that_swallows_its_timeout_is_recorded_as_timed_out():
    finished = []

    async def stubborn(ctx):
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            pass  # swallowed: it carries on after its timeout
        await asyncio.sleep(0)
        finished.append(ctx.task.task_id)
        return "too late"

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2))
    inject()
    result = await run(orch, [task("stubborn", action=stubborn, timeout=0.05),
                              task("after", ["stubborn"], action=stubborn)])
    tr = result["task_results"]
    assert finished == ["stubborn"]
    assert tr["stubborn"]["status"] == "failed" and tr["stubborn"]["result"] is None
    assert "did not finish within its timeout of 0.05 s" in tr["stubborn"]["error"]
    assert "ignored its cancellation" in tr["stubborn"]["error"]
    assert "result was discarded" in tr["stubborn"]["error"]
    assert tr["after"]["status"] == "skipped"


# -- secrets in what a task raises ---------------------------------------------------------------

KNOWN = "k-live-0123456789"  # the API key of an endpoint registered in this process
SECRETS = ("hunter2", "SEKRET123", KNOWN)


async def test_secrets_in_a_task_error_are_masked_in_json_store_and_report(tmp_path):
    from wfkit.app.jsonout import to_json
    from wfkit.app.report import write_report
    from wfkit.integration import IntegrationEndpoint, IntegrationOrchestrator
    from wfkit.metrics.store import RunStore

    integration = IntegrationOrchestrator()
    integration.register_endpoint(IntegrationEndpoint(
        "api", "API", "api",
        {"url": "http://127.0.0.1:9/orders", "headers": {"X-Api-Key": KNOWN}},
    ))
    url = "https://bob:hunter2@api.example.com/v1/orders?api_key=SEKRET123&page=2"

    def leaks(ctx):
        raise ConnectionError(f"GET {url} with key {KNOWN} failed")

    def returns(ctx):
        return f"{url} {KNOWN}"  # a result is the user's: kept as returned

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2),
                        store=str(tmp_path / "runs.db"))
    inject()
    result = await run(orch, [task("leaks", action=leaks), task("returns", action=returns)])
    orch.close()
    tr = result["task_results"]
    assert tr["returns"]["result"] == f"{url} {KNOWN}"
    error, tb = tr["leaks"]["error"], tr["leaks"]["traceback"]
    assert error == (
        "ConnectionError: GET https://bob:***@api.example.com/v1/orders?api_key=***&page=2 "
        "with key *** failed"
    )
    assert "ConnectionError: GET https://bob:***@" in tb

    shown = json.dumps(to_json(result)["task_results"]["leaks"])
    with RunStore(tmp_path / "runs.db") as store:
        stored = store.task_frame(result["run_id"]).to_string()
        stored += " ".join(store.tracebacks(result["run_id"]).values())
    report = write_report(tmp_path / "runs.db", tmp_path / "report.html").read_text()
    for where, text in {"--json": shown, "store": stored, "report": report}.items():
        assert "***" in text, where
        for secret in SECRETS:
            assert secret not in text, (where, secret)


class Stubborn:
    """An async task that ignores every cancellation until the test lets it go."""

    def __init__(self) -> None:
        self.let_go = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def __call__(self, ctx):
        self.tasks.append(asyncio.current_task())
        while not self.let_go.is_set():
            try:
                await self.let_go.wait()
            except asyncio.CancelledError:
                pass  # ignored, every time
        return "much too late"

    async def release(self) -> None:
        self.let_go.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), HANG)


async def test_a_task_that_ignores_every_cancellation_cannot_hold_a_run_open(
    monkeypatch, caplog
):
    import wfkit.agents.engine as engine

    monkeypatch.setattr(engine, "CANCEL_GRACE", 0.1)
    caplog.set_level(logging.WARNING, logger="wfkit.engine")
    stubborn = Stubborn()
    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2))
    inject(2)
    try:
        # after its timeout
        result = await run(orch, [task("stubborn", action=stubborn, timeout=0.05)])
        error = result["task_results"]["stubborn"]["error"]
        assert result["task_results"]["stubborn"]["status"] == "failed"
        assert "did not finish within its timeout" in error and "ignored its cancellation" in error
        # when its run is cancelled
        started = asyncio.Event()

        async def starts(ctx):
            started.set()
            return await stubborn(ctx)

        await orch.create_workflow("c", [task("stuck", action=starts),
                                        task("next", ["stuck"], action=starts)])
        running = asyncio.create_task(orch.execute_workflow("c"))
        await asyncio.wait_for(started.wait(), HANG)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(running, HANG)
        assert orch.workflows["c"]["status"] == "cancelled"
        assert orch.pool.load(orch.agents["a"]) == 0
        warned = [r.getMessage() for r in caplog.records]
        assert sum("ignored its cancellation" in m for m in warned) == 2
        assert any("'stubborn'" in m for m in warned) and any("'stuck'" in m for m in warned)
    finally:
        await stubborn.release()


async def test_stuck_threads_are_replaced_only_up_to_max_stuck(caplog):
    from wfkit import ThreadExecutor

    release = threading.Event()
    ran = []

    def sleeper(ctx):
        ran.append(ctx.task.task_id)
        release.wait(HANG)

    executor = ThreadExecutor(max_stuck=1)
    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=1), executor=executor)
    tasks = [task(f"s{i}", action=sleeper, priority=9 - i, timeout=0.1) for i in range(3)]
    inject(3)
    caplog.set_level(logging.WARNING, logger="wfkit.executors")
    try:
        result = await run(orch, tasks)
        # s0 stuck, s1 on its replacement and stuck too; no third thread for s2: it timed out
        # waiting, without ever running
        assert ran == ["s0", "s1"]
        assert [result["task_results"][f"s{i}"]["status"] for i in range(3)] == ["failed"] * 3
        assert sorted(executor.stuck) == ["s0", "s1"]
        assert any("sync tasks now wait for a thread" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
    for _ in range(HANG * 100):
        if not executor.stuck:
            break
        await asyncio.sleep(0.01)
    assert executor.stuck == [] and ran == ["s0", "s1"]
    executor.close()


async def test_a_fault_before_a_tasks_work_begins_fails_that_task_not_the_run(monkeypatch):
    """Building an attempt's context (its inputs, parameters, mapped item) happens before its
    work starts; a fault there must settle the attempt like any failure, never leave the run
    waiting for it. Injected: no real input makes our own item lookup raise on demand."""
    from wfkit import Workflow
    from wfkit.agents.engine import WorkflowRun

    real = WorkflowRun._set_item

    def broken(self, ctx, task):
        if task.map_index == 1:
            raise LookupError("item 1 could not be read")
        real(self, ctx, task)

    monkeypatch.setattr(WorkflowRun, "_set_item", broken)
    inject()
    wf = Workflow("w")

    @wf.task(requires=["work"])
    def items(ctx):
        return [10, 20, 30]

    @wf.task(requires=["work"], map=items)
    def double(ctx):
        return ctx.item * 2

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2))
    result = await asyncio.wait_for(orch.execute_workflow(wf), HANG)
    tr = result["task_results"]
    assert tr["double[1]"]["status"] == "failed"
    assert tr["double[1]"]["error"] == "LookupError: item 1 could not be read"
    assert [tr[f"double[{i}]"]["result"] for i in (0, 2)] == [20, 60]
    assert tr["double"]["status"] == "failed" and result["status"] == "failed"
    assert orch.pool.load(orch.agents["a"]) == 0
