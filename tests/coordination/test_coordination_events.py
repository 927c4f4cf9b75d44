"""The coordination frames come from events: a recorder on a bus that only forwards a
manager's events builds the same changes and resource frames as the manager, and they say
what the state's and the resource table's own records say."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from wfkit import AdvancedWorkflowMetrics, CoordinationType, ResourceTimeoutError
from wfkit.coordination import DELETE
from wfkit.events import EventBus


async def spin(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
def foreign(manager):
    bus = EventBus()
    recorder = AdvancedWorkflowMetrics().attach(bus)
    manager.subscribe(bus.emit)
    return recorder


async def test_the_changes_frame_is_built_from_events(manager, foreign):
    first = await manager.create_coordination_session(["alice", "bob"],
                                                      CoordinationType.COLLABORATIVE)
    second = await manager.create_coordination_session(["alice"], "collaborative")
    one, two = manager.sessions[first].shared_state, manager.sessions[second].shared_state
    two.write("alice", {"z": 1}, base_version=0)  # the second session changes first
    one.write("alice", {"x": 1, "y": [1, 2]}, base_version=0)
    one.write("bob", {"x": 2}, base_version=0)  # stale: merged by the session's strategy
    one.write("alice", {"y": DELETE}, base_version=one.version)

    frame = manager.changes_frame()
    assert frame.equals(foreign.changes_frame(order=manager.sessions))
    assert frame["session_id"].tolist() == [first, first, second]  # sessions in their order
    mine = frame[frame["session_id"] == first]
    assert mine["changes"].tolist()[0] == {"x": 1, "y": [1, 2]}
    assert mine["changes"].tolist()[-1] == {"y": "<deleted>"}
    # what the state's own history says, column for column
    own = one.history() + two.history()
    for column in ("session_id", "version", "participant", "keys", "changes", "strategy"):
        got = [None if v is pd.NA else v for v in frame[column].tolist()]
        assert got == [row[column] for row in own], column
    assert [t.timestamp() for t in frame["timestamp"]] == pytest.approx(
        [row["timestamp"] for row in own])
    assert manager.changes_frame(second)["keys"].tolist() == [("z",)]


async def test_the_resource_frame_is_built_from_events(manager, foreign):
    holder = await manager.acquire_resource("db", "a")
    waiting = asyncio.ensure_future(manager.acquire_resource("db", "b"))
    gives_up = asyncio.ensure_future(manager.acquire_resource("db", "c", timeout=0.01))
    await spin()
    with pytest.raises(ResourceTimeoutError):
        await gives_up  # a holds it throughout: c's wait times out
    cancelled = asyncio.ensure_future(manager.acquire_resource("db", "d"))
    await spin()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    holder.release()
    (await waiting).release()
    async with manager.resource("queue", "a"):
        pass

    frame = manager.resource_frame()
    assert frame.equals(foreign.resource_frame(order=manager.resources))
    assert frame[["resource_id", "participant", "outcome"]].values.tolist() == [
        ["db", "c", "timeout"], ["db", "d", "cancelled"], ["db", "a", "released"],
        ["db", "b", "released"], ["queue", "a", "released"]]
    # what the resource table's own record says
    own = manager._resources.rows()
    assert sorted(own, key=lambda r: (r["resource_id"], r["ended_at"])) == own
    for column in ("resource_id", "participant", "outcome"):
        assert frame[column].tolist() == [r[column] for r in own], column
    for column in ("requested_at", "ended_at"):
        assert [t.timestamp() for t in frame[column]] == pytest.approx(
            [r[column] for r in own]), column
    for column in ("waited", "held"):
        assert frame[column].fillna(-1).tolist() == pytest.approx(
            [-1 if r[column] is None else r[column] for r in own]), column
    assert manager.resource_frame("queue")["participant"].tolist() == ["a"]
