"""The engine: concurrency, ordering, retries, timeouts, isolation, cancellation, events.

Concurrency is asserted from recorded start/end order and event order, never from how long
something took on the wall clock; retry delays and timeouts run on a :class:`ManualClock`.
"""

import asyncio
import itertools
import threading

import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    PolicyError,
    TaskTimeoutError,
    WorkflowTask,
    simulated_handler,
)
from wfkit.clock import ManualClock
from wfkit.events import (
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
)


def task(tid, deps=None, caps=("work",), priority=0, estimate=1.0, **kw):
    return WorkflowTask(tid, tid, list(caps), priority, estimate, deps, **kw)


class Recorder:
    """A handler that records (task, agent, start, end), start and end as ticks of one
    counter. The first handlers wait until ``hold`` of them run at once."""

    def __init__(self, hold=1):
        self.intervals = []
        self.running = 0
        self.peak = 0
        self.per_agent = {}
        self.peak_per_agent = {}
        self.ticks = itertools.count()
        self.hold = hold
        self.full = asyncio.Event()

    async def __call__(self, ctx):
        start = next(self.ticks)
        self.running += 1
        self.peak = max(self.peak, self.running)
        a = ctx.agent.agent_id
        self.per_agent[a] = self.per_agent.get(a, 0) + 1
        self.peak_per_agent[a] = max(self.peak_per_agent.get(a, 0), self.per_agent[a])
        if self.running >= self.hold:
            self.full.set()
        try:
            await asyncio.wait_for(self.full.wait(), 10)
        finally:
            self.running -= 1
            self.per_agent[a] -= 1
        self.intervals.append((ctx.task.task_id, a, start, next(self.ticks)))
        return {"task": ctx.task.task_id, "inputs": dict(ctx.inputs), "attempt": ctx.attempt}


def orchestrator(*agents, **kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001, **kw)
    for a in agents:
        orch.register_agent(a)
    return orch


async def run(orch, tasks, **kw):
    await orch.create_workflow("w", tasks)
    return await orch.execute_workflow("w", **kw)


async def test_independent_tasks_run_concurrently_within_capacity():
    rec = Recorder(hold=3)
    orch = orchestrator(
        AgentProfile("a", "A", ["work"], capacity=2, handler=rec),
        AgentProfile("b", "B", ["work"], capacity=1, handler=rec),
    )
    result = await run(orch, [task(f"t{i}") for i in range(9)])
    assert result["successful_tasks"] == 9 and result["status"] == "completed"
    assert rec.peak == 3  # every slot used at once, never more
    assert rec.peak_per_agent == {"a": 2, "b": 1}
    # the first three intervals overlap pairwise
    first = sorted(rec.intervals, key=lambda i: i[2])[:3]
    assert max(i[2] for i in first) < min(i[3] for i in first)
    assert all(a.current_load == 0 for a in orch.agents.values())


async def test_dependencies_feed_inputs_and_order():
    rec = Recorder()
    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=4, handler=rec))
    result = await run(
        orch,
        [task("a", estimate=0), task("b", ["a"], estimate=0), task("c", ["a", "b"], estimate=0)],
    )
    c = result["task_results"]["c"]["result"]
    assert set(c["inputs"]) == {"a", "b"}
    assert c["inputs"]["b"]["inputs"] == {"a": result["task_results"]["a"]["result"]}
    ends = {t: e for t, _, _, e in rec.intervals}
    starts = {t: s for t, _, s, _ in rec.intervals}
    assert starts["b"] >= ends["a"] and starts["c"] >= ends["b"]


async def test_priority_then_critical_path_then_insertion_order():
    order = []

    async def h(ctx):
        order.append(ctx.task.task_id)

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=1, handler=h))
    tasks = [
        task("low", priority=1),
        task("high", priority=5),
        task("tie_short", priority=3, estimate=1),
        task("tie_long", priority=3, estimate=1),
        task("after_long", ["tie_long"], priority=0, estimate=5),
        task("tie_short_2", priority=3, estimate=1),
    ]
    await run(orch, tasks)
    # high first; among priority 3, tie_long heads a longer remaining path; then insertion order
    assert order[:4] == ["high", "tie_long", "tie_short", "tie_short_2"]
    assert order[4:] == ["low", "after_long"] or order[4:] == ["after_long", "low"]
    assert order.index("after_long") > order.index("tie_long")


async def test_same_inputs_give_the_same_schedule():
    def build():
        return [task(f"t{i}", [f"t{j}" for j in range(max(0, i - 3), i, 2)], priority=i % 3)
                for i in range(30)]

    schedules = []
    for _ in range(2):
        events = []
        orch = orchestrator(
            AgentProfile("a", "A", ["work"], capacity=2, handler=simulated_handler(0)),
            AgentProfile("b", "B", ["work"], capacity=2, handler=simulated_handler(0)),
        )
        orch.subscribe(lambda e, ev=events: ev.append(e))
        await run(orch, build())
        schedules.append([(e.task_id, e.agent_id) for e in events if isinstance(e, TaskStarted)])
    assert schedules[0] == schedules[1]


async def test_no_head_of_line_blocking():
    """A ready task for a busy agent never holds back a ready task another free agent can run."""
    gate = asyncio.Event()
    started = []

    async def slow(ctx):
        started.append(ctx.task.task_id)
        if ctx.task.task_id == "blocker":
            await gate.wait()

    async def quick(ctx):
        started.append(ctx.task.task_id)
        gate.set()  # would never run if 'waits' (higher priority) blocked the queue

    orch = orchestrator(
        AgentProfile("x", "X", ["x"], capacity=1, handler=slow),
        AgentProfile("y", "Y", ["y"], capacity=1, handler=quick),
    )
    result = await asyncio.wait_for(
        run(orch, [
            task("blocker", caps=["x"], priority=10),
            task("waits", caps=["x"], priority=9),
            task("other", caps=["y"], priority=0),
        ]),
        timeout=10,
    )
    assert result["status"] == "completed"
    assert started.index("other") < started.index("waits")


async def test_sync_handlers_run_in_threads_without_blocking_the_loop():
    released = threading.Event()
    threads = []

    def blocking(ctx):
        threads.append(threading.current_thread().name)
        # Only the event loop can release us: this deadlocks if the loop is blocked.
        if not released.wait(timeout=10):
            raise RuntimeError("the event loop was blocked")
        return "done"

    async def releaser(ctx):
        released.set()
        return "released"

    orch = orchestrator(
        AgentProfile("s", "Sync", ["sync"], handler=blocking),
        AgentProfile("a", "Async", ["async"], handler=releaser),
    )
    result = await run(orch, [task("block", caps=["sync"]), task("release", caps=["async"])])
    assert result["task_results"]["block"]["result"] == "done"
    assert threads and threads[0] != threading.main_thread().name


async def test_action_overrides_handler_and_sync_actions_get_ctx():
    orch = orchestrator(AgentProfile("a", "A", ["work"], handler=simulated_handler(0)))
    result = await run(orch, [
        task("one", action=lambda ctx: (ctx.task.task_id, ctx.attempt, ctx.agent.agent_id)),
        task("two", ["one"], action=lambda ctx: ctx.inputs["one"]),
    ])
    assert result["task_results"]["two"]["result"] == ("one", 1, "a")
    assert result["task_results"]["two"]["agent_id"] == "a"


async def test_retries_with_exponential_backoff():
    calls = []

    def flaky(ctx):
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return "ok"

    events = []
    clock = ManualClock()
    orch = CollectiveAgentWorkflowOrchestrator(
        progress=False, backoff=0.01, max_backoff=1, clock=clock
    )
    orch.register_agent(AgentProfile("a", "A", ["work"], handler=flaky))
    orch.subscribe(events.append)
    runner = asyncio.create_task(run(orch, [task("t", retries=3)]))
    for attempt in (1, 2):  # each retry waits for its delay on the clock, then runs
        await clock.scheduled(1)
        retrying = [e for e in events if isinstance(e, TaskRetrying)][-1]
        assert calls == [1, 2][:attempt] and clock.next_due() == pytest.approx(retrying.delay)
        clock.advance(retrying.delay - 1e-6)
        await asyncio.sleep(0)
        assert calls == [1, 2][:attempt]  # not a moment early
        clock.advance(1e-6)
    result = await runner
    r = result["task_results"]["t"]
    assert (r["status"], r["attempts"], r["result"], r["error"]) == ("completed", 3, "ok", None)
    assert calls == [1, 2, 3]
    delays = [e.delay for e in events if isinstance(e, TaskRetrying)]
    assert [e.attempt for e in events if isinstance(e, TaskRetrying)] == [2, 3]
    assert 0.005 <= delays[0] <= 0.01 and 0.01 <= delays[1] <= 0.02  # doubled, with jitter
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert [f.final for f in failed] == [False, False]
    started = [e.timestamp for e in events if isinstance(e, TaskStarted)]
    assert [b - a for a, b in zip(started, started[1:], strict=False)] == pytest.approx(delays, abs=1e-6)
    assert orch.agents["a"].performance_metrics["tasks_failed"] == 2


async def test_retries_exhausted_then_failed():
    def broken(ctx):
        raise ValueError("bad data")

    orch = orchestrator(AgentProfile("a", "A", ["work"], handler=broken))
    result = await run(orch, [task("t", retries=2)])
    r = result["task_results"]["t"]
    assert (r["status"], r["attempts"]) == ("failed", 3)
    assert r["error"] == "ValueError: bad data"
    assert isinstance(r["exception"], ValueError)
    assert result["status"] == "failed"


async def test_timeout_async_and_sync():
    clock = ManualClock()
    let_go = threading.Event()

    async def hang(ctx):
        await asyncio.Event().wait()  # forever

    def sync_hang(ctx):
        let_go.wait(10)

    orch = orchestrator(
        AgentProfile("a", "A", ["a"], handler=hang),
        AgentProfile("s", "S", ["s"], handler=sync_hang),
        clock=clock,
    )
    runner = asyncio.create_task(run(orch, [
        task("slow", caps=["a"], timeout=0.05),
        task("slow_sync", caps=["s"], timeout=0.05),
    ]))
    await clock.scheduled(2)  # both attempts are timed
    clock.advance(0.049)
    await asyncio.sleep(0)
    assert not runner.done()
    clock.advance(0.001)
    result = await runner
    let_go.set()
    for tid in ("slow", "slow_sync"):
        r = result["task_results"][tid]
        assert r["status"] == "failed"
        assert isinstance(r["exception"], TaskTimeoutError)
        assert f"task {tid!r} did not finish within its timeout of 0.05 s" in r["error"]


async def test_failure_isolation_skips_dependents_only():
    def work(ctx):
        if ctx.task.task_id == "bad":
            raise RuntimeError("boom")
        return ctx.task.task_id

    events = []
    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2, handler=work))
    orch.subscribe(events.append)
    result = await run(orch, [
        task("root"),
        task("bad", ["root"]),
        task("child", ["bad"]),
        task("grandchild", ["child", "root"]),
        task("side", ["root"]),
        task("side2", ["side"]),
    ])
    status = {t: r["status"] for t, r in result["task_results"].items()}
    assert status == {
        "root": "completed", "bad": "failed", "child": "skipped", "grandchild": "skipped",
        "side": "completed", "side2": "completed",
    }
    assert result["task_results"]["child"]["error"] == "dependency 'bad' failed"
    assert result["task_results"]["grandchild"]["error"] == "dependency 'child' was skipped"
    assert (result["failed_tasks"], result["skipped_tasks"], result["successful_tasks"]) == (1, 2, 3)
    assert result["success_rate"] == 0.5
    assert sorted(e.task_id for e in events if isinstance(e, TaskSkipped)) == ["child", "grandchild"]
    wf = orch.workflows["w"]
    assert wf["status"] == "failed" and wf["failed_tasks"] == ["bad"]
    assert sorted(wf["completed_tasks"]) == ["root", "side", "side2"]


async def test_fail_fast_cancels_the_rest():
    cancelled = []
    gate = asyncio.Event()

    async def work(ctx):
        if ctx.task.task_id == "bad":
            await gate.wait()
            raise RuntimeError("boom")
        try:
            gate.set()
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            cancelled.append(ctx.task.task_id)
            raise

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=3, handler=work))
    result = await asyncio.wait_for(
        run(orch, [task("bad", priority=9), task("long1"), task("long2"), task("later", ["long1"])],
            fail_fast=True),
        timeout=10,
    )
    status = {t: r["status"] for t, r in result["task_results"].items()}
    assert status == {"bad": "failed", "long1": "cancelled", "long2": "cancelled",
                      "later": "cancelled"}
    assert sorted(cancelled) == ["long1", "long2"]
    assert result["status"] == "failed"
    assert orch.agents["a"].current_load == 0


async def test_cancelling_the_run_cancels_every_running_task():
    started = asyncio.Event()
    running = []
    cleaned = []
    events = []

    async def work(ctx):
        running.append(ctx.task.task_id)
        if len(running) == 2:
            started.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            cleaned.append(ctx.task.task_id)

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2, handler=work))
    orch.subscribe(events.append)
    await orch.create_workflow("w", [task("x"), task("y"), task("z", ["x"])])
    runner = asyncio.create_task(orch.execute_workflow("w"))
    await started.wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert sorted(cleaned) == ["x", "y"]  # awaited before the cancellation propagated
    assert orch.workflows["w"]["status"] == "cancelled"
    assert orch.agents["a"].current_load == 0
    assert {t.task_id: t.status for t in orch.workflows["w"]["tasks"]} == {
        "x": "cancelled", "y": "cancelled", "z": "cancelled"}
    cancelled = [e for e in events if isinstance(e, TaskCancelled)]
    assert sorted(e.task_id for e in cancelled) == ["x", "y", "z"]
    assert [e.status for e in events if isinstance(e, RunFinished)] == ["cancelled"]
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


async def test_events_cover_every_transition_and_unsubscribe():
    events = []
    orch = orchestrator(AgentProfile("a", "A", ["work"], handler=simulated_handler(0)))
    stop = orch.subscribe(events.append)
    result = await run(orch, [task("a"), task("b", ["a"])])
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["WorkflowCreated", "RunStarted", "TaskStarted", "TaskCompleted",
                     "TaskStarted", "TaskCompleted", "RunFinished"]
    created, *ran = events
    assert created.workflow_id == "w" and created.tasks == 2 and created.run_id == ""
    assert all(e.run_id == result["run_id"] for e in ran)
    assert all(b.timestamp >= a.timestamp for a, b in zip(events, events[1:], strict=False))
    start = ran[0]
    assert isinstance(start, RunStarted) and start.task_ids == ("a", "b")
    done = ran[2]
    assert isinstance(done, TaskCompleted) and done.result["task_id"] == "a"
    finish = ran[-1]
    assert finish.status == "completed" and finish.participants == ("a",)
    stop()
    await orch.execute_workflow("w")
    assert len(events) == 7


async def test_task_events_are_the_public_frozen_classes_whoever_builds_them():
    """The engine builds its hot events with their compiled constructor directly (no
    ``type.__call__``): they are still exactly their classes, frozen, equal by value to one
    built the ordinary way, and picklable, from the first run on."""
    import dataclasses
    import pickle

    events = []
    orch = orchestrator(AgentProfile("a", "A", ["work"], handler=simulated_handler(0)))
    orch.subscribe(events.append)
    await run(orch, [task("a"), task("b", ["a"])])
    hot = [e for e in events if isinstance(e, TaskStarted | TaskCompleted)]
    assert [type(e) for e in hot] == [TaskStarted, TaskCompleted] * 2
    started, completed = hot[0], hot[1]
    assert started == TaskStarted(started.run_id, started.timestamp, "w", "a", "a", 1)
    assert completed == TaskCompleted(
        completed.run_id, completed.timestamp, "w", "a", "a", 1, started.timestamp,
        completed.result,
    )
    assert completed.cached is False and completed.started_at == started.timestamp
    with pytest.raises(dataclasses.FrozenInstanceError):
        started.attempt = 2
    assert pickle.loads(pickle.dumps(started)) == started
    assert dataclasses.asdict(started)["task_id"] == "a"


async def test_a_broken_subscriber_never_breaks_the_run(caplog):
    orch = orchestrator(AgentProfile("a", "A", ["work"], handler=simulated_handler(0)))
    orch.subscribe(lambda e: 1 / 0)
    result = await run(orch, [task("a")])
    assert result["status"] == "completed"
    assert "event subscriber" in caplog.text


async def test_performance_metrics_are_learned():
    clock = ManualClock()

    async def h(ctx):
        clock.advance(0.01 if ctx.task.task_id == "x" else 0.03)  # the work takes this long
        if ctx.task.task_id == "bad":
            raise ValueError("no")

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=1, handler=h), clock=clock)
    await run(orch, [task("x", estimate=0.01), task("y", estimate=0.01), task("bad")])
    m = orch.agents["a"].performance_metrics
    assert (m["tasks_completed"], m["tasks_failed"]) == (2, 1)
    assert m["success_rate"] == pytest.approx(2 / 3)
    assert m["avg_duration"] == pytest.approx(0.02) and m["total_duration"] == pytest.approx(0.04)
    assert orch.agents["a"].learned_durations == pytest.approx({"x": 0.01, "y": 0.03})


async def test_policy_returning_a_foreign_agent_fails_clearly():
    outsider = AgentProfile("z", "Z", ["work"])
    orch = orchestrator(
        AgentProfile("a", "A", ["work"], handler=simulated_handler(0)),
        policy=lambda t, cands: outsider,
    )
    with pytest.raises(PolicyError, match="not one of the candidates it was offered \\(a\\)"):
        await run(orch, [task("t")])
    assert orch.workflows["w"]["status"] == "failed"


async def test_two_runs_share_agents():
    gate = asyncio.Event()

    async def h(ctx):
        if ctx.task.task_id == "first":
            await gate.wait()
        return ctx.task.task_id

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=1, handler=h))
    started = {"one": asyncio.Event(), "two": asyncio.Event()}
    orch.subscribe(lambda e: isinstance(e, RunStarted) and started[e.workflow_id].set())
    await orch.create_workflow("one", [task("first")])
    await orch.create_workflow("two", [task("second")])
    r1 = asyncio.create_task(orch.execute_workflow("one"))
    await started["one"].wait()  # a run dispatches as it starts: 'first' holds the agent
    r2 = asyncio.create_task(orch.execute_workflow("two"))
    await started["two"].wait()
    assert orch.agents["a"].current_load == 1  # 'second' waits for the shared agent
    gate.set()
    res = await asyncio.wait_for(asyncio.gather(r1, r2), timeout=5)
    assert [r["status"] for r in res] == ["completed", "completed"]


async def test_unavailable_agents_are_not_used():
    rec = Recorder()
    orch = orchestrator(
        AgentProfile("off", "Off", ["work"], availability=False, handler=rec),
        AgentProfile("on", "On", ["work"], handler=rec),
    )
    await run(orch, [task(f"t{i}", estimate=0) for i in range(4)])
    assert {a for _, a, _, _ in rec.intervals} == {"on"}


async def test_simulated_handler_returns_the_document_dict():
    orch = orchestrator(AgentProfile("a", "Agent A", ["work"], handler=simulated_handler(0.001)))
    result = await run(orch, [WorkflowTask("t", "Load data", ["work"], 1, 2.0)])
    assert result["task_results"]["t"]["result"] == {
        "task_id": "t", "agent_id": "a",
        "result": "Task Load data completed by Agent A", "execution_time": 0.002,
    }


async def test_attempts_go_through_the_loops_task_factory_when_it_has_one():
    # Without a factory the engine makes its asyncio tasks directly; with one, the factory
    # makes every attempt's task, as loop.create_task would have it.
    loop = asyncio.get_running_loop()
    made = []

    def factory(loop, coro, **kwargs):
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    orch = orchestrator(AgentProfile("a", "A", ["work"], capacity=2, handler=simulated_handler(0)))
    loop.set_task_factory(factory)
    try:
        result = await run(orch, [task("x"), task("y", ["x"]), task("z")])
    finally:
        loop.set_task_factory(None)
    assert result["successful_tasks"] == 3
    assert made.count("WorkflowRun._attempt") == 3
    plain = await orch.execute_workflow("w")  # no factory: the same run, made directly
    assert plain["successful_tasks"] == 3 and made.count("WorkflowRun._attempt") == 3
