"""Sessions: each coordination type, dependencies, conditions, the background loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from wfkit import (
    CollaborationTask,
    CoordinationError,
    CoordinationType,
    TaskTimeoutError,
)


def echo(tag):
    async def handler(ctx):
        return f"{tag}({ctx.previous})"

    return handler


def failing(message="boom"):
    async def handler(ctx):
        raise RuntimeError(message)

    return handler


async def test_sequential_runs_in_order_and_passes_previous(manager):
    order = []

    def make(name):
        async def handler(ctx):
            order.append(name)
            assert ctx.participant == name
            assert ctx.task.task_id == "t"
            return f"{name}<-{ctx.previous}"

        return handler

    for name in ("a", "b", "c"):
        manager.register_participant(name, make(name))
    sid = await manager.create_coordination_session(["c", "a", "b"], CoordinationType.SEQUENTIAL)
    await manager.add_collaboration_task(sid, CollaborationTask("t", "chain"))
    result = await manager.run_session(sid)
    assert order == ["c", "a", "b"]  # the session's order, not registration order
    rec = result["task_results"]["t"]
    assert rec["status"] == "completed"
    assert rec["result"] == "b<-a<-c<-None"
    assert rec["results"] == {"c": "c<-None", "a": "a<-c<-None", "b": "b<-a<-c<-None"}
    assert result["status"] == "completed"
    assert manager.sessions[sid].status == "completed"
    assert manager.sessions[sid].tasks["t"].status == "completed"
    assert manager.sessions[sid].tasks["t"].results["c"] == "c<-None"


async def test_sequential_failure_stops_the_task_and_skips_dependents(manager):
    calls = []

    async def a(ctx):
        calls.append("a")
        return 1

    async def c(ctx):
        calls.append("c")
        return 3

    manager.register_participant("a", a)
    manager.register_participant("b", failing("b broke"))
    manager.register_participant("c", c)
    sid = await manager.create_coordination_session(["a", "b", "c"], "sequential")
    await manager.add_collaboration_task(sid, CollaborationTask("t1", "chain"))
    await manager.add_collaboration_task(sid, CollaborationTask("t2", "after", ["a"], ["t1"]))
    await manager.add_collaboration_task(sid, CollaborationTask("t3", "after t2", ["a"], ["t2"]))
    result = await manager.run_session(sid)
    assert calls == ["a"]  # c never ran, and neither did t2 / t3
    t1 = result["task_results"]["t1"]
    assert t1["status"] == "failed"
    assert t1["participants"]["a"]["status"] == "completed"
    assert t1["participants"]["b"]["status"] == "failed"
    assert "RuntimeError: b broke" in t1["participants"]["b"]["error"]
    assert t1["participants"]["c"]["status"] == "not_run"
    assert t1["error"] == "b: RuntimeError: b broke"
    assert result["task_results"]["t2"]["status"] == "skipped"
    assert result["task_results"]["t2"]["reason"] == "dependency 't1' failed"
    assert result["task_results"]["t3"]["reason"] == "dependency 't2' was skipped"
    assert result["status"] == "failed"
    assert (result["failed_tasks"], result["skipped_tasks"]) == (1, 2)


async def test_parallel_runs_everyone_at_once_and_reports_partial_failures(manager):
    arrived = []
    gate = asyncio.Event()

    def make(name):
        async def handler(ctx):
            arrived.append(name)
            if len(arrived) == 3:
                gate.set()
            await gate.wait()  # only returns if all three are running at the same time
            if name == "b":
                raise ValueError("b cannot")
            return name.upper()

        return handler

    for name in "abc":
        manager.register_participant(name, make(name))
    sid = await manager.create_coordination_session(list("abc"), CoordinationType.PARALLEL)
    await manager.add_collaboration_task(sid, CollaborationTask("t", "together"))
    result = await asyncio.wait_for(manager.run_session(sid), 10)
    rec = result["task_results"]["t"]
    assert rec["status"] == "failed"
    assert rec["results"] == {"a": "A", "c": "C"}
    assert rec["failed_participants"] == ["b"]
    assert {n: p["status"] for n, p in rec["participants"].items()} == {
        "a": "completed",
        "b": "failed",
        "c": "completed",
    }
    assert rec["participants"]["b"]["error"] == "ValueError: b cannot"
    assert isinstance(rec["participants"]["b"]["exception"], ValueError)


async def test_dependencies_order_tasks_and_pass_inputs(manager):
    seen = {}

    async def worker(ctx):
        seen[ctx.task.task_id] = dict(ctx.inputs)
        return {"task": ctx.task.task_id, "inputs": sorted(ctx.inputs)}

    manager.register_participant("w", worker)
    sid = await manager.create_coordination_session(["w"], CoordinationType.PARALLEL)
    await manager.add_collaboration_task(sid, CollaborationTask("extract", "e"))
    await manager.add_collaboration_task(sid, CollaborationTask("clean", "c", [], ["extract"]))
    await manager.add_collaboration_task(sid, CollaborationTask("stats", "s", [], ["extract"]))
    await manager.add_collaboration_task(
        sid, CollaborationTask("report", "r", [], ["clean", "stats"])
    )
    result = await manager.run_session(sid)
    assert result["completed_tasks"] == 4
    assert seen["extract"] == {}
    assert seen["clean"] == {"extract": {"w": {"task": "extract", "inputs": []}}}
    assert set(seen["report"]) == {"clean", "stats"}
    tr = result["task_results"]
    assert tr["report"]["started_at"] >= max(tr["clean"]["finished_at"], tr["stats"]["finished_at"])
    assert tr["clean"]["started_at"] >= tr["extract"]["finished_at"]


async def test_conditional_declarative_and_callable_conditions(manager):
    async def scorer(ctx):
        await ctx.update(lambda d: {**d, "score": 0.9})
        return 0.9

    async def approve(ctx):
        return "approved"

    async def reject(ctx):
        return "rejected"

    manager.register_participant("scorer", scorer)
    manager.register_participant("approver", approve)
    manager.register_participant("rejecter", reject)
    sid = await manager.create_coordination_session(
        ["scorer", "approver", "rejecter"], CoordinationType.CONDITIONAL
    )
    await manager.add_collaboration_task(sid, CollaborationTask("score", "s", ["scorer"]))
    await manager.add_collaboration_task(
        sid,
        CollaborationTask(
            "approve", "a", ["approver"], ["score"],
            condition={"field": "shared.score", "op": ">=", "value": 0.8},
        ),
    )
    await manager.add_collaboration_task(
        sid,
        CollaborationTask(
            "reject", "r", ["rejecter"], ["score"],
            condition={"not": {"field": "shared.score", "op": ">=", "value": 0.8}},
        ),
    )

    def high_input(shared, inputs):
        return inputs["score"] > 0.5

    async def async_no(shared, inputs):
        await asyncio.sleep(0)
        return False

    await manager.add_collaboration_task(
        sid, CollaborationTask("by_input", "i", ["approver"], ["score"], condition=high_input)
    )
    await manager.add_collaboration_task(
        sid, CollaborationTask("never", "n", ["approver"], ["score"], condition=async_no)
    )
    await manager.add_collaboration_task(
        sid, CollaborationTask("after_never", "n2", ["approver"], ["never"])
    )
    result = await manager.run_session(sid)
    tr = result["task_results"]
    assert tr["approve"]["status"] == "completed"
    assert tr["approve"]["result"] == "approved"
    assert tr["reject"]["status"] == "skipped"
    assert tr["reject"]["reason"].startswith("condition is false: {'not':")
    assert tr["by_input"]["status"] == "completed"
    assert tr["never"]["status"] == "skipped"
    assert tr["never"]["reason"] == "condition async_no(shared, inputs) returned False"
    assert tr["after_never"]["reason"] == "dependency 'never' was skipped"
    assert result["status"] == "completed"  # skips are not failures


async def test_condition_that_raises_fails_the_task(manager):
    manager.register_participant("p", echo("p"))
    sid = await manager.create_coordination_session(["p"], CoordinationType.CONDITIONAL)

    def broken(shared, inputs):
        raise KeyError("missing")

    await manager.add_collaboration_task(sid, CollaborationTask("t", "x", condition=broken))
    result = await manager.run_session(sid)
    assert result["task_results"]["t"]["status"] == "failed"
    assert result["task_results"]["t"]["error"] == "KeyError: 'missing'"


async def test_collaborative_participants_share_state_at_once(manager):
    async def contributor(ctx):
        for _ in range(25):
            async def add(d):
                await asyncio.sleep(0)  # interleave with the others: real conflicts happen
                d.setdefault("log", []).append(ctx.participant)
                d["total"] = d.get("total", 0) + 1

            await ctx.update(add)
        return ctx.read().version

    for name in ("ann", "bob", "cyd", "dee"):
        manager.register_participant(name, contributor)
    sid = await manager.create_coordination_session(
        ["ann", "bob", "cyd", "dee"], CoordinationType.COLLABORATIVE
    )
    await manager.add_collaboration_task(sid, CollaborationTask("build", "together"))
    result = await manager.run_session(sid)
    assert result["task_results"]["build"]["status"] == "completed"
    assert result["shared_state"]["total"] == 100
    assert sorted(result["shared_state"]["log"]) == sorted(
        [n for n in ("ann", "bob", "cyd", "dee") for _ in range(25)]
    )
    assert result["version"] == 100
    assert result["task_results"]["build"]["shared_version"] == 100
    assert manager.sessions[sid].shared_state.retries > 0  # they did collide, nothing was lost
    frame = manager.changes_frame(sid)
    assert list(frame["version"]) == list(range(1, 101))
    assert frame["participant"].value_counts().to_dict() == {
        "ann": 25, "bob": 25, "cyd": 25, "dee": 25,
    }


async def test_sync_handlers_run_in_threads_without_blocking_the_loop(manager):
    loop_thread = threading.get_ident()
    threads = {}
    release = threading.Event()

    def blocking(ctx):
        threads[ctx.participant] = threading.get_ident()
        assert release.wait(10)
        ctx.update_sync(lambda d: {**d, ctx.participant: True})
        return ctx.participant

    async def unblocker(ctx):
        # Runs on the loop while the sync one blocks its thread: proof the loop is free.
        while "s" not in threads:
            await asyncio.sleep(0.001)
        release.set()
        return "freed"

    manager.register_participant("s", blocking)
    manager.register_participant("u", unblocker)
    sid = await manager.create_coordination_session(["s", "u"], CoordinationType.PARALLEL)
    await manager.add_collaboration_task(sid, CollaborationTask("t", "mixed"))
    result = await asyncio.wait_for(manager.run_session(sid), 20)
    assert result["task_results"]["t"]["results"] == {"s": "s", "u": "freed"}
    assert threads["s"] != loop_thread
    assert result["shared_state"] == {"s": True}


async def test_participant_timeout(manager):
    async def slow(ctx):
        await asyncio.sleep(30)

    manager.register_participant("slow", slow)
    manager.register_participant("fast", echo("fast"))
    sid = await manager.create_coordination_session(["fast", "slow"], "parallel")
    await manager.add_collaboration_task(sid, CollaborationTask("t", "x", timeout=0.05))
    result = await manager.run_session(sid)
    parts = result["task_results"]["t"]["participants"]
    assert parts["fast"]["status"] == "completed"
    assert parts["slow"]["status"] == "failed"
    assert isinstance(parts["slow"]["exception"], TaskTimeoutError)
    assert "did not finish within its timeout of 0.05 s" in parts["slow"]["error"]


async def test_cancelling_run_session_cancels_participants_and_marks_tasks(manager):
    started = asyncio.Event()
    cancelled = []

    async def forever(ctx):
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(ctx.participant)
            raise

    manager.register_participant("x", forever)
    manager.register_participant("y", forever)
    sid = await manager.create_coordination_session(["x", "y"], "parallel")
    await manager.add_collaboration_task(sid, CollaborationTask("t", "hang"))
    await manager.add_collaboration_task(sid, CollaborationTask("next", "after", ["x"], ["t"]))
    run = asyncio.ensure_future(manager.run_session(sid))
    await started.wait()
    await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(cancelled) == ["x", "y"]
    session = manager.sessions[sid]
    assert session.status == "cancelled"
    assert session.tasks["t"].status == "cancelled"
    assert session.tasks["next"].status == "pending"
    rec = manager.task_result(sid, "t")
    assert {p["status"] for p in rec["participants"].values()} == {"cancelled"}
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_run_session_twice_runs_only_new_tasks(manager):
    calls = []

    async def worker(ctx):
        calls.append(ctx.task.task_id)
        return len(calls)

    manager.register_participant("w", worker)
    sid = await manager.create_coordination_session(["w"], "sequential")
    await manager.add_collaboration_task(sid, CollaborationTask("a", "a"))
    await manager.run_session(sid)
    await manager.add_collaboration_task(sid, CollaborationTask("b", "b", [], ["a"]))
    assert manager.sessions[sid].status == "active"
    result = await manager.run_session(sid)
    assert calls == ["a", "b"]
    assert result["task_results"]["b"]["result"] == 2
    assert result["completed_tasks"] == 2


async def test_background_coordination_processes_queued_tasks_until_stop(manager):
    done = asyncio.Queue()

    async def worker(ctx):
        await done.put((ctx.session_id, ctx.task.task_id))
        return ctx.task.task_id

    manager.register_participant("w", worker)
    s1 = await manager.create_coordination_session(["w"], "sequential")
    await manager.add_collaboration_task(s1, CollaborationTask("queued_before_start", "q"))
    await manager.start_coordination()
    await manager.start_coordination()  # idempotent
    assert manager.coordinating
    assert await asyncio.wait_for(done.get(), 10) == (s1, "queued_before_start")
    s2 = await manager.create_coordination_session(["w"], "parallel")
    await manager.add_collaboration_task(s2, CollaborationTask("added_later", "l"))
    assert await asyncio.wait_for(done.get(), 10) == (s2, "added_later")
    await manager.add_collaboration_task(
        s1, CollaborationTask("follow_up", "f", [], ["queued_before_start"])
    )
    assert await asyncio.wait_for(done.get(), 10) == (s1, "follow_up")
    await asyncio.wait_for(manager.stop(), 10)
    assert not manager.coordinating
    assert manager.session_result(s1)["task_results"]["follow_up"]["status"] == "completed"
    # After stop nothing is processed any more.
    await manager.add_collaboration_task(s2, CollaborationTask("after_stop", "x"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert done.empty()
    assert manager.sessions[s2].tasks["after_stop"].status == "pending"
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_stop_waits_for_running_sessions_and_cancel_stops_them(manager):
    release = asyncio.Event()
    started = asyncio.Event()

    async def worker(ctx):
        started.set()
        await release.wait()
        return "done"

    manager.register_participant("w", worker)
    sid = await manager.create_coordination_session(["w"], "sequential")
    await manager.add_collaboration_task(sid, CollaborationTask("t", "t"))
    await manager.start_coordination()
    await started.wait()
    stopping = asyncio.ensure_future(manager.stop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()  # graceful: waits for the running task
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert manager.sessions[sid].tasks["t"].status == "completed"

    started.clear()
    release.clear()
    await manager.add_collaboration_task(sid, CollaborationTask("t2", "t2"))
    await manager.start_coordination()
    await started.wait()
    await asyncio.wait_for(manager.stop(cancel=True), 10)
    assert manager.sessions[sid].tasks["t2"].status == "cancelled"
    assert manager.sessions[sid].status == "cancelled"


async def test_background_records_missing_handlers_as_task_failures(manager):
    sid = await manager.create_coordination_session(["ghost"], "sequential")
    await manager.add_collaboration_task(sid, CollaborationTask("t", "t"))
    await manager.start_coordination()
    for _ in range(50):
        if manager.sessions[sid].tasks["t"].status != "pending":
            break
        await asyncio.sleep(0.01)
    await manager.stop()
    rec = manager.task_result(sid, "t")
    assert rec["status"] == "failed"
    assert "'ghost' of task 't' have no handler" in rec["error"]


async def test_run_session_without_handlers_is_a_clear_error(manager):
    sid = await manager.create_coordination_session(["nobody"], "sequential")
    await manager.add_collaboration_task(sid, CollaborationTask("t", "t"))
    with pytest.raises(CoordinationError, match=r"'nobody' have no handler; call register_participant"):
        await manager.run_session(sid)
    assert manager.sessions[sid].tasks["t"].status == "pending"


async def test_result_frame_has_a_row_per_participant(manager):
    manager.register_participant("a", echo("a"))
    manager.register_participant("b", failing())
    sid = await manager.create_coordination_session(["a", "b"], "parallel")
    await manager.add_collaboration_task(sid, CollaborationTask("t", "t"))
    await manager.add_collaboration_task(sid, CollaborationTask("u", "u", [], ["t"]))
    result = await manager.run_session(sid)
    frame = result.frame()
    assert list(frame["participant"][:2]) == ["a", "b"]
    assert frame["participant"].isna().tolist() == [False, False, True]
    assert list(frame["status"][:2]) == ["completed", "failed"]
    assert list(frame["task_status"]) == ["failed", "failed", "skipped"]
    assert frame.iloc[2]["error"] == "dependency 't' failed"
    assert str(frame["started_at"].dtype).startswith("datetime64")
    assert "0/2 completed, 1 failed, 1 skipped" in repr(result)


# -- sessions publish task events: their frames come from a recorder ------------------------


def _plain(v):
    import pandas as pd

    return None if v is None or v is pd.NaT or v is pd.NA or v != v else v


def _turns(rows, participant, status):
    """(task, participant) -> (status, error, started, finished) of a frame's rows."""
    return {
        (r.task_id, _plain(getattr(r, participant))): (
            status(r), _plain(r.error), _plain(r.started_at), _plain(r.finished_at))
        for r in rows.itertuples()
    }


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
async def test_a_session_frame_is_what_its_events_say(manager, mode):
    from wfkit import AdvancedWorkflowMetrics
    from wfkit.events import EventBus, RunFinished, RunStarted

    bus = EventBus()
    foreign = AdvancedWorkflowMetrics().attach(bus)  # sees nothing but the events
    events = []
    manager.subscribe(bus.emit)
    manager.subscribe(events.append)
    manager.register_participant("a", echo("a"))
    manager.register_participant("b", failing("b broke"))
    manager.register_participant("c", echo("c"))
    sid = await manager.create_coordination_session(["a", "b", "c"], mode)
    await manager.add_collaboration_task(sid, CollaborationTask("t1", "all three"))
    await manager.add_collaboration_task(sid, CollaborationTask("t2", "after", ["a"], ["t1"]))
    await manager.add_collaboration_task(  # its condition raises: it fails before any turn
        sid, CollaborationTask("t3", "gated", ["a"], [], condition=lambda shared, inputs: 1 / 0))
    result = await manager.run_session(sid)

    start = next(e for e in events if isinstance(e, RunStarted))
    assert start.workflow_id == sid and start.task_ids == ("t1", "t2", "t3")
    assert start.dependencies() == {"t1": (), "t2": ("t1",), "t3": ()}
    end = next(e for e in events if isinstance(e, RunFinished))
    assert (end.status, end.total_tasks, end.successful_tasks, end.failed_tasks,
            end.skipped_tasks) == ("failed", 3, 0, 2, 1)

    frame = manager.task_frame(sid)
    assert frame.equals(foreign.task_frame())
    assert manager.metrics.workflow_frame().equals(foreign.workflow_frame())
    # the session's own record of each turn says what the events said
    got = _turns(frame, "agent_id", lambda r: r.status)
    named = {"not_run": "skipped"}
    own = _turns(result.frame(), "participant",
                 lambda r: named.get(r.status, r.status) if _plain(r.participant) else r.task_status)
    assert set(got) == set(own)
    for key, (status, error, started, finished) in own.items():
        assert got[key][0] == status, key
        if status in ("completed", "failed") and key[1] is not None:  # a turn that ran
            assert got[key] == (status, error, started, finished), key
        elif key[1] is None:  # a task that ended without a turn
            ended = result["task_results"][key[0]]["finished_at"]
            assert got[key][1] == error and got[key][3].timestamp() == pytest.approx(ended), key
    if mode == "sequential":
        assert got[("t1", "c")][:2] == ("skipped", "participant 'b' failed before its turn")
    else:
        assert got[("t1", "c")][0] == "completed"
