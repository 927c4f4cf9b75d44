"""Versioned shared state: snapshots, optimistic writes, every conflict strategy, events."""

from __future__ import annotations

import asyncio
import threading

import pytest

from wfkit import CoordinationError, ValidationError
from wfkit.coordination import DELETE, SharedState
from wfkit.events import SharedStateChanged, SharedStateConflict


async def session_state(manager, strategy=None, initial=None):
    sid = await manager.create_coordination_session(
        ["alice", "bob"], "collaborative", conflict_strategy=strategy, shared_state=initial
    )
    return sid, manager.sessions[sid].shared_state


async def test_reads_are_private_snapshots_with_versions(manager):
    _, state = await session_state(manager, initial={"doc": {"title": "x"}})
    snap = state.read()
    assert (snap.version, snap.data) == (0, {"doc": {"title": "x"}})
    snap.data["doc"]["title"] = "mutated"  # a copy: the state does not change
    state["doc"]["title"] = "also a copy"
    assert state["doc"] == {"title": "x"}
    out = state.write("alice", {"doc": {"title": "y"}, "n": 1}, base_version=0)
    assert (out.status, out.version, out.applied) == ("applied", 1, ("doc", "n"))
    assert snap.version == 0 and state.version == 1
    assert dict(state) == {"doc": {"title": "y"}, "n": 1}
    out = state.write("bob", {}, deletes=["n"], base_version=1)
    assert out.status == "applied" and "n" not in state and state.version == 2
    assert state.write("bob", {}, base_version=2).status == "unchanged"
    assert state.version == 2


async def test_direct_item_assignment_is_a_versioned_write(manager):
    _, state = await session_state(manager)
    state["k"] = [1, 2]
    del state["k"]
    assert state.version == 2
    with pytest.raises(KeyError):
        del state["k"]
    assert [h["participant"] for h in state.history()] == ["user", "user"]
    assert state.history()[1]["changes"] == {"k": "<deleted>"}


async def test_200_concurrent_updates_end_at_exactly_200(manager):
    _, state = await session_state(manager, initial={"counter": 0})

    async def increment(data):
        value = data["counter"]
        await asyncio.sleep(0)  # read, yield, write: the classic lost-update window
        data["counter"] = value + 1

    outcomes = await asyncio.gather(
        *(state.update(f"p{i % 7}", increment) for i in range(200))
    )
    assert state["counter"] == 200
    assert state.version == 200
    assert sorted(o.version for o in outcomes) == list(range(1, 201))
    assert state.retries > 0  # the window was real: updates collided and were re-run
    assert sum(o.attempts - 1 for o in outcomes) == state.retries
    assert [h["changes"]["counter"] for h in state.history()] == list(range(1, 201))


async def test_update_sync_from_threads_loses_nothing(manager):
    _, state = await session_state(manager, initial={"counter": 0})
    start = threading.Barrier(8, timeout=10)

    def work(i):
        start.wait()
        for _ in range(50):
            state.update_sync(f"t{i}", lambda d: {**d, "counter": d["counter"] + 1})

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        await asyncio.to_thread(t.join, 20)
    assert state["counter"] == 400
    assert state.version == 400


async def test_update_accepts_sync_async_and_returned_dicts(manager):
    _, state = await session_state(manager, initial={"a": 1, "b": 2})

    async def replace(d):
        return {"a": d["a"] + 10}  # b removed

    out = await state.update("alice", replace)
    assert out.applied == ("a", "b") and dict(state) == {"a": 11}
    out = await state.update("alice", lambda d: d)  # no change: no new version
    assert out.status == "unchanged" and state.version == 1
    with pytest.raises(ValidationError, match="must return the new state as a dict"):
        await state.update("alice", lambda d: 42)
    with pytest.raises(ValidationError, match="update_sync\\(\\) got an async fn"):
        state.update_sync("alice", replace)


async def test_update_max_retries(manager):
    _, state = await session_state(manager, initial={"n": 0})

    async def slow(d):
        state.write("bob", {"other": state.version}, base_version=state.version)  # always beat it
        return {**d, "n": 1}

    with pytest.raises(CoordinationError, match="lost the race 3 times \\(max_retries=2\\)"):
        await state.update("alice", slow, max_retries=2)


async def test_stale_write_on_other_keys_merges(manager):
    _, state = await session_state(manager, "first_writer_wins", {"a": 0, "b": 0})
    state.write("alice", {"a": 1}, base_version=0)
    out = state.write("bob", {"b": 2}, base_version=0)
    assert (out.status, out.conflict) == ("merged", None)
    assert dict(state) == {"a": 1, "b": 2}
    out = state.write("bob", {"a": 1}, base_version=0)  # the same value: no conflict
    assert out.status == "merged" and out.conflict is None
    assert manager.conflicts == {}
    assert [h["strategy"] for h in state.history()] == [None, "merge", "merge"]


async def test_merge_strategy_applies_the_rest_and_records_the_clash(manager):
    sid, state = await session_state(manager, None, {"title": "t0", "body": "b0", "tags": []})
    state.write("alice", {"title": "alice's"}, base_version=0)
    out = state.write("bob", {"title": "bob's", "body": "bob's body"}, base_version=0)
    assert out.status == "conflict" and not out.ok
    assert out.applied == ("body",)
    c = out.conflict
    assert c.conflict_id in manager.conflicts and c.status == "pending"
    assert c.keys == ("title",)
    assert c.current == {"title": "alice's"} and c.incoming == {"title": "bob's"}
    assert c.participants == ("alice", "bob")
    assert c.strategy == "merge" and c.base_version == 0 and c.version == 1
    assert state["title"] == "alice's" and state["body"] == "bob's body"
    assert manager.pending_conflicts(sid) == [c]
    assert await manager.resolve_conflict(c.conflict_id, "bob") is True
    assert state["title"] == "bob's"
    assert c.status == "resolved" and c.resolution == {"title": "bob's"}
    assert c.resolved_by == "manual"
    assert await manager.resolve_conflict(c.conflict_id, "alice") is False  # already resolved
    assert state["title"] == "bob's"
    last = state.history()[-1]
    assert (last["participant"], last["strategy"]) == ("bob", "manual")


async def test_manual_strategy_holds_the_write_until_resolved(manager):
    _, state = await session_state(manager, "manual", {"x": 0, "y": 0})
    state.write("alice", {"x": 1}, base_version=0)
    out = state.write("bob", {"x": 2, "y": 5}, base_version=0)
    assert out.status == "held" and out.applied == ()
    c = out.conflict
    assert c.held == {"y": 5} and c.incoming == {"x": 2} and c.current == {"x": 1}
    assert dict(state) == {"x": 1, "y": 0}  # nothing applied yet
    waiter = asyncio.ensure_future(c.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert await manager.resolve_conflict(c.conflict_id, "incoming") is True
    assert await asyncio.wait_for(waiter, 5) == {"x": 2, "y": 5}
    assert dict(state) == {"x": 2, "y": 5}
    assert await c.wait() == {"x": 2, "y": 5}  # resolved already: returns at once


async def test_manual_resolution_forms(manager):
    _, state = await session_state(manager, "manual", {"x": 0, "y": 0})

    def clash(value):
        base = state.version
        state.write("alice", {"x": value}, base_version=base)
        return state.write("bob", {"x": -value, "y": value}, base_version=base).conflict

    c1 = clash(1)
    assert await manager.resolve_conflict(c1.conflict_id, "current") is True
    assert dict(state) == {"x": 1, "y": 0}  # the held write was dropped
    c2 = clash(2)
    assert await manager.resolve_conflict(c2.conflict_id, {"x": 99, "y": DELETE}) is True
    assert dict(state) == {"x": 99}
    c3 = clash(3)
    with pytest.raises(ValidationError, match="outside the conflict; it may set \\['x', 'y'\\]"):
        await manager.resolve_conflict(c3.conflict_id, {"z": 1})
    with pytest.raises(ValidationError, match="use 'current' \\(keep 'alice'.s value\\)"):
        await manager.resolve_conflict(c3.conflict_id, "carol")
    with pytest.raises(ValidationError, match="cannot resolve"):
        await manager.resolve_conflict(c3.conflict_id, 42)
    assert c3.status == "pending"  # a bad resolution changes nothing
    assert await manager.resolve_conflict("conflict-999", "current") is False
    assert await manager.resolve_conflict(None, "current") is False


async def test_same_participant_on_both_sides_needs_a_side_name(manager):
    _, state = await session_state(manager, "manual", {"x": 0})
    state.write("alice", {"x": 1}, base_version=0)
    c = state.write("alice", {"x": 2}, base_version=0).conflict
    with pytest.raises(ValidationError, match="both sides of conflict-1 are 'alice'"):
        await manager.resolve_conflict(c.conflict_id, "alice")
    assert await manager.resolve_conflict(c.conflict_id, "incoming")
    assert state["x"] == 2


async def test_last_writer_wins(manager):
    _, state = await session_state(manager, "last_writer_wins", {"x": 0, "y": 0})
    state.write("alice", {"x": 1}, base_version=0)
    out = state.write("bob", {"x": 2, "y": 2}, base_version=0)
    assert out.status == "merged" and out.ok
    assert dict(state) == {"x": 2, "y": 2}
    assert out.conflict.status == "resolved" and out.conflict.resolution == {"x": 2}
    assert out.conflict.resolved_by == "last_writer_wins"
    assert await manager.resolve_conflict(out.conflict.conflict_id, "current") is False
    assert state.history()[-1]["strategy"] == "last_writer_wins"


async def test_first_writer_wins(manager):
    _, state = await session_state(manager, "first_writer_wins", {"x": 0, "y": 0})
    state.write("alice", {"x": 1}, base_version=0)
    out = state.write("bob", {"x": 2, "y": 2}, base_version=0)
    assert out.status == "rejected" and not out.ok and out.version == 1
    assert dict(state) == {"x": 1, "y": 0}
    assert out.conflict.status == "resolved" and out.conflict.resolution == {}


async def test_callable_strategy_decides_the_clashing_keys(manager):
    seen = []

    def keep_max(conflict):
        seen.append(conflict)
        return {k: max(conflict.current[k], conflict.incoming[k]) for k in conflict.keys}

    _, state = await session_state(manager, keep_max, {"hi": 0, "lo": 0, "note": ""})
    state.write("alice", {"hi": 5, "lo": 5}, base_version=0)
    out = state.write("bob", {"hi": 9, "lo": 1, "note": "bob"}, base_version=0)
    assert out.status == "merged"
    assert dict(state) == {"hi": 9, "lo": 5, "note": "bob"}
    assert out.applied == ("note", "hi")  # lo kept its current value: not rewritten
    assert seen[0].keys == ("hi", "lo")
    assert out.conflict.resolved_by == "keep_max"

    def bad(conflict):
        return {"elsewhere": 1}

    manager.sessions[_].shared_state.strategy = bad
    state.write("alice", {"hi": 10}, base_version=2)
    with pytest.raises(ValidationError, match="returned key\\(s\\) \\['elsewhere'\\] that are not in conflict"):
        state.write("bob", {"hi": 11}, base_version=2)

    def crash(conflict):
        raise RuntimeError("no idea")

    state.strategy = crash
    version = state.version
    with pytest.raises(CoordinationError, match="conflict strategy crash failed .*nothing of the write by 'bob' was applied"):
        state.write("bob", {"hi": 12}, base_version=2)
    assert state.version == version


async def test_every_change_and_conflict_is_an_event_and_a_frame_row(manager):
    events = []
    unsubscribe = manager.subscribe(events.append)
    sid, state = await session_state(manager, None, {"x": 0})
    state.write("alice", {"x": 1}, base_version=0)
    out = state.write("bob", {"x": 2, "y": 1}, base_version=0)
    await manager.resolve_conflict(out.conflict.conflict_id, {"x": 3})
    kinds = [(type(e).__name__, getattr(e, "version", None)) for e in events]
    assert kinds == [
        ("SharedStateChanged", 1),
        ("SharedStateConflict", None),
        ("SharedStateChanged", 2),
        ("SharedStateConflict", None),
        ("SharedStateChanged", 3),
    ]
    changed = [e for e in events if isinstance(e, SharedStateChanged)]
    assert [(e.participant, e.keys, e.strategy) for e in changed] == [
        ("alice", ("x",), None),
        ("bob", ("y",), "merge"),
        ("resolve_conflict", ("x",), "manual"),
    ]
    conflicts = [e for e in events if isinstance(e, SharedStateConflict)]
    assert [(e.conflict_id, e.resolved, e.strategy) for e in conflicts] == [
        ("conflict-1", False, "merge"),
        ("conflict-1", True, "manual"),
    ]
    assert all(e.session_id == sid and e.run_id == sid for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)

    frame = manager.changes_frame()
    assert list(frame.columns) == [
        "session_id", "version", "timestamp", "participant", "keys", "changes", "strategy",
    ]
    assert frame["participant"].tolist() == ["alice", "bob", "resolve_conflict"]
    assert frame["changes"].tolist() == [{"x": 1}, {"y": 1}, {"x": 3}]
    conflicts_frame = manager.conflicts_frame(sid)
    row = conflicts_frame.iloc[0]
    assert (row["conflict_id"], row["status"], row["strategy"]) == ("conflict-1", "resolved", "merge")
    assert row["current"] == {"x": 1} and row["incoming"] == {"x": 2}
    assert row["participants"] == ("alice", "bob") and row["resolution"] == {"x": 3}
    unsubscribe()
    state.write("alice", {"x": 4}, base_version=state.version)
    assert len(events) == 5


async def test_no_events_are_built_without_subscribers(monkeypatch):
    built = []
    import wfkit.coordination.shared_state as mod

    monkeypatch.setattr(mod, "SharedStateChanged", lambda *a: built.append(a))
    state = SharedState("alone")  # a state of its own, on a bus nobody listens to (a
    state.write("alice", {"x": 1}, base_version=0)  # manager's always has its recorder)
    assert built == []
    assert len(state.history()) == 1  # its own history is kept regardless


async def test_bad_writes_give_clear_errors(manager):
    _, state = await session_state(manager)
    with pytest.raises(ValidationError, match="base_version 5 is newer than the shared state"):
        state.write("alice", {"x": 1}, base_version=5)
    with pytest.raises(ValidationError, match="base_version must be the int version"):
        state.write("alice", {"x": 1}, base_version="0")
    with pytest.raises(ValidationError, match="participant must be a non-empty string"):
        state.write("", {"x": 1}, base_version=0)
    with pytest.raises(ValidationError, match="changes must be a dict"):
        state.write("alice", [("x", 1)], base_version=0)
    with pytest.raises(ValidationError, match="shared state keys must be strings"):
        state.write("alice", {1: 1}, base_version=0)
    with pytest.raises(ValidationError, match="unknown conflict_strategy 'newest'"):
        await manager.create_coordination_session(["a"], "parallel", conflict_strategy="newest")
    with pytest.raises(ValidationError, match="shared_state must be a dict"):
        await manager.create_coordination_session(["a"], "parallel", shared_state=[1])


def test_a_standalone_shared_state_keeps_its_own_conflicts():
    state = SharedState("solo", {"x": 0}, strategy="manual")
    state.write("a", {"x": 1}, base_version=0)
    out = state.write("b", {"x": 2}, base_version=0)
    assert list(state.conflicts) == [out.conflict.conflict_id]
    assert state.resolve(out.conflict.conflict_id, "b") is True
    assert state.resolve(out.conflict.conflict_id, "b") is False
    assert state["x"] == 2
