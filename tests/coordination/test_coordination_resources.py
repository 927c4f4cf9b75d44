"""Shared resources: the document's contract, FIFO fairness under load, leases, timeouts,
deadlock detection, cancellation, statistics and events.

The manager runs on a :class:`ManualClock`: leases and timeouts run out when a test advances
the clock, and waits and holds are exact, never slept through.
"""

from __future__ import annotations

import asyncio

import pytest

from wfkit import (
    CoordinationCollaborationManager,
    CoordinationError,
    DeadlockError,
    LeaseExpiredError,
    ResourceTimeoutError,
    ValidationError,
)
from wfkit.clock import ManualClock
from wfkit.events import ResourceAcquired, ResourceLeaseExpired, ResourceReleased


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
async def manager(clock):
    m = CoordinationCollaborationManager(clock=clock)
    yield m
    await m.stop(cancel=True)
    m.close()


async def spin(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


def queue_is_consistent(manager, resource_id):
    """The table's wait-for index matches the queues exactly (the module's invariant)."""
    table = manager._resources
    counted: dict[str, dict[str, int]] = {}
    for rid, res in table._resources.items():
        if res.queue:
            assert res.holder is not None, f"{rid} has waiters but no holder"
        for w in res.queue:
            counted.setdefault(w.participant, {}).setdefault(rid, 0)
            counted[w.participant][rid] += 1
    assert counted == table._waiting
    return manager.resource_statistics(resource_id)["waiters"]


async def test_document_contract_acquire_release_and_fifo_handover(manager):
    events = []
    manager.subscribe(events.append)
    assert await manager.manage_shared_resource("db", "a", "acquire") is True
    assert await manager.manage_shared_resource("db", "a", "acquire") is True  # already holds
    assert await manager.manage_shared_resource("db", "b", "acquire") is False  # queued
    assert await manager.manage_shared_resource("db", "c", "acquire") is False
    assert await manager.manage_shared_resource("db", "b", "acquire") is False  # queued once
    assert queue_is_consistent(manager, "db") == ["b", "c"]
    assert await manager.manage_shared_resource("db", "c", "release") is False  # not the holder
    assert await manager.manage_shared_resource("db", "a", "release") is True
    stats = manager.resource_statistics("db")
    assert stats["holder"] == "b" and stats["waiters"] == ["c"]
    assert await manager.manage_shared_resource("db", "b", "acquire") is True  # handed over
    assert await manager.manage_shared_resource("db", "c", "cancel") is True
    assert await manager.manage_shared_resource("db", "c", "cancel") is False
    assert await manager.manage_shared_resource("db", "b", "release") is True
    assert manager.resource_statistics("db")["holder"] is None
    assert await manager.manage_shared_resource("nothing", "x", "release") is False
    assert [(type(e).__name__, e.participant) for e in events] == [
        ("ResourceAcquired", "a"),
        ("ResourceReleased", "a"),
        ("ResourceAcquired", "b"),
        ("ResourceWaitEnded", "c"),  # c gave up waiting: a row of the resource frame too
        ("ResourceReleased", "b"),
    ]
    assert all(e.run_id == manager.coordination_id for e in events)
    assert manager.resource_frame("db")[["participant", "outcome"]].values.tolist() == [
        ["a", "released"], ["c", "cancelled"], ["b", "released"]]


async def test_100_contenders_are_served_in_arrival_order_one_at_a_time(manager, clock):
    arrivals: list[int] = []
    served: list[int] = []
    inside = 0
    overlaps = 0
    first_in = asyncio.Event()

    async def contender(i):
        nonlocal inside, overlaps
        if i:
            await first_in.wait()
            for _ in range(i % 3):  # stagger arrivals so the order is not just creation order
                await asyncio.sleep(0)
        arrivals.append(i)
        async with manager.resource("printer", f"p{i}"):
            inside += 1
            if inside != 1:
                overlaps += 1
            served.append(i)
            first_in.set()
            clock.advance(0.001)  # each holds the printer for a millisecond
            await spin(2)  # let everyone else pile up while we hold it
            inside -= 1

    await asyncio.gather(*(contender(i) for i in range(100)))
    assert overlaps == 0
    assert served == arrivals
    assert arrivals != sorted(arrivals)  # the stagger did reorder arrivals
    stats = manager.resource_statistics("printer")
    assert stats["acquisitions"] == stats["releases"] == 100
    assert stats["holder"] is None and stats["waiters"] == []
    assert len(stats["wait_times"]) == 100 and stats["max_wait"] > 0
    assert stats["hold_times"] == [pytest.approx(0.001)] * 100
    assert stats["total_hold"] == pytest.approx(0.1)
    frame = manager.resource_frame("printer")
    assert frame["participant"].tolist() == [f"p{i}" for i in arrivals]
    assert (frame["outcome"] == "released").all()
    assert (frame["acquired_at"].diff().dropna().dt.total_seconds() > 0).all()


async def test_a_newcomer_cannot_barge_in_between_release_and_wake_up(manager):
    order = []
    first = await manager.acquire_resource("r", "holder")
    waiter = asyncio.ensure_future(_hold(manager, "r", "waiter", order))
    await spin()
    first.release()  # handed to "waiter" now, though it has not resumed yet
    assert manager.resource_statistics("r")["holder"] == "waiter"
    assert await manager.manage_shared_resource("r", "newcomer", "acquire") is False
    await waiter
    assert order == ["waiter"]
    assert manager.resource_statistics("r")["holder"] == "newcomer"


async def _hold(manager, rid, who, order, *, ticks=1, **kw):
    async with manager.resource(rid, who, **kw):
        order.append(who)
        await spin(ticks)


async def test_lease_expiry_hands_over_with_an_event(manager, clock):
    events = []
    manager.subscribe(events.append)
    dead = asyncio.Event()  # never set: the holder "died" inside its critical section
    holder_error = []

    async def dying_holder():
        try:
            async with manager.resource("lock", "crashy", lease=0.05):
                await dead.wait()
        except BaseException as exc:
            holder_error.append(exc)
            raise

    crashy = asyncio.ensure_future(dying_holder())
    await spin()
    patient = asyncio.ensure_future(_hold(manager, "lock", "patient", [], timeout=30))
    await clock.scheduled(2)  # the lease timer and the patient's timeout
    clock.advance(0.049)
    await spin()
    assert not patient.done() and manager.resource_statistics("lock")["holder"] == "crashy"
    clock.advance(0.001)
    stats = manager.resource_statistics("lock")
    assert stats["holder"] == "patient" and stats["lease_expiries"] == 1
    await patient
    names = [(type(e).__name__, e.participant) for e in events]
    assert names == [
        ("ResourceAcquired", "crashy"),
        ("ResourceLeaseExpired", "crashy"),
        ("ResourceReleased", "crashy"),
        ("ResourceAcquired", "patient"),
        ("ResourceReleased", "patient"),
    ]
    expired = next(e for e in events if isinstance(e, ResourceLeaseExpired))
    assert expired.lease == 0.05 and expired.resource_id == "lock"
    acquired = [e for e in events if isinstance(e, ResourceAcquired)]
    released = [e for e in events if isinstance(e, ResourceReleased)]
    assert acquired[1].timestamp == expired.timestamp == pytest.approx(acquired[0].timestamp + 0.05)
    assert released[0].held == pytest.approx(0.05) == acquired[1].waited
    # The late holder learns it lost the resource when it finally leaves.
    dead.set()
    with pytest.raises(LeaseExpiredError, match="'crashy' held resource 'lock' past its lease of 0.05 s"):
        await crashy
    frame = manager.resource_frame("lock")
    assert frame["outcome"].tolist() == ["expired", "released"]


async def test_renewing_a_lease_keeps_the_resource(manager, clock):
    async with manager.resource("r", "a", lease=0.05) as grant:
        for _ in range(4):  # 0.08 s in all: longer than the lease, renewed every 0.02 s
            clock.advance(0.02)
            assert grant.remaining() == pytest.approx(0.03)
            grant.renew()
            assert grant.remaining() == pytest.approx(0.05)
        assert grant.active
    assert manager.resource_statistics("r")["lease_expiries"] == 0
    with pytest.raises(CoordinationError, match="no longer holds 'r' \\(released\\)"):
        grant.renew()
    async with manager.resource("r", "b") as g2:
        with pytest.raises(ValidationError, match="has no lease to renew"):
            g2.renew()
        g2.renew(lease=5)
        assert g2.lease == 5 and 0 < g2.remaining() <= 5


async def test_timeout_raises_and_leaves_the_queue(manager, clock):
    await manager.manage_shared_resource("r", "holder", "acquire")
    order = []
    behind = asyncio.ensure_future(_hold(manager, "r", "behind", order))
    impatient = asyncio.ensure_future(_hold(manager, "r", "impatient", order, timeout=0.02))
    await clock.scheduled(1)
    clock.advance(0.02)
    with pytest.raises(ResourceTimeoutError, match="'impatient' waited 0.02 s for resource 'r'") as info:
        await impatient
    assert (info.value.resource_id, info.value.participant, info.value.timeout) == (
        "r", "impatient", 0.02,
    )
    assert queue_is_consistent(manager, "r") == ["behind"]
    with pytest.raises(ResourceTimeoutError, match="waited 0 s"):
        await manager.acquire_resource("r", "now_or_never", timeout=0)
    assert await manager.manage_shared_resource("r", "holder", "release")
    await behind
    assert order == ["behind"]
    stats = manager.resource_statistics("r")
    assert stats["timeouts"] == 2 and stats["acquisitions"] == 2


async def test_release_on_error_and_on_cancellation(manager):
    with pytest.raises(ZeroDivisionError):
        async with manager.resource("r", "a"):
            raise ZeroDivisionError("inside")
    assert manager.resource_statistics("r")["holder"] is None

    inside = asyncio.Event()

    async def holder():
        async with manager.resource("r", "b"):
            inside.set()
            await asyncio.Event().wait()

    t = asyncio.ensure_future(holder())
    await inside.wait()
    assert manager.resource_statistics("r")["holder"] == "b"
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert manager.resource_statistics("r")["holder"] is None


async def test_deadlock_between_two_participants(manager):
    a_r1 = await manager.acquire_resource("r1", "A")
    b_r2 = await manager.acquire_resource("r2", "B")
    a_waits = asyncio.ensure_future(manager.acquire_resource("r2", "A"))
    await spin()
    assert manager.resource_statistics("r2")["waiters"] == ["A"]
    with pytest.raises(DeadlockError) as info:
        await manager.acquire_resource("r1", "B")
    err = info.value
    assert err.cycle == ["B", "A"]
    assert err.edges == [("B", "r1", "A"), ("A", "r2", "B")]
    assert str(err) == (
        "deadlock: 'B' waits for 'r1' held by 'A'; 'A' waits for 'r2' held by 'B'. The request "
        "of 'B' for 'r1' was refused at once: release a held resource first, or acquire "
        "resources in one global order"
    )
    assert queue_is_consistent(manager, "r1") == []  # the refused request never queued
    assert manager.resource_statistics("r1")["deadlocks"] == 1
    # The document's call detects it too.
    with pytest.raises(DeadlockError, match="'B' waits for 'r1' held by 'A'"):
        await manager.manage_shared_resource("r1", "B", "acquire")
    # B backs off: A proceeds.
    b_r2.release()
    grant = await asyncio.wait_for(a_waits, 5)
    assert grant.participant == "A"
    grant.release()
    a_r1.release()


async def test_deadlock_between_three_participants(manager):
    held = [await manager.acquire_resource(f"r{i}", p) for i, p in enumerate("ABC", 1)]
    a_waits = asyncio.ensure_future(manager.acquire_resource("r2", "A"))  # A -> B
    b_waits = asyncio.ensure_future(manager.acquire_resource("r3", "B"))  # B -> C
    await spin()
    with pytest.raises(DeadlockError) as info:
        await manager.acquire_resource("r1", "C")  # C -> A closes C -> A -> B -> C
    assert info.value.cycle == ["C", "A", "B"]
    assert info.value.edges == [("C", "r1", "A"), ("A", "r2", "B"), ("B", "r3", "C")]
    assert "'C' waits for 'r1' held by 'A'; 'A' waits for 'r2' held by 'B'; 'B' waits for 'r3' held by 'C'" in str(info.value)
    # A request that does not close a cycle still waits normally: D -> A is fine.
    d_waits = asyncio.ensure_future(manager.acquire_resource("r1", "D"))
    await spin()
    assert manager.resource_statistics("r1")["waiters"] == ["D"]
    held[2].release()  # C gives up r3: B, then A, then D get through
    gb = await asyncio.wait_for(b_waits, 5)
    gb.release()
    held[1].release()
    ga = await asyncio.wait_for(a_waits, 5)
    ga.release()
    held[0].release()
    gd = await asyncio.wait_for(d_waits, 5)
    assert gd.participant == "D"
    gd.release()


async def test_waiting_for_a_resource_you_hold_is_a_deadlock(manager):
    async with manager.resource("r", "solo"):
        with pytest.raises(DeadlockError, match="'solo' already holds 'r' and asked for it again") as info:
            async with manager.resource("r", "solo"):
                pass
    assert info.value.cycle == ["solo"]


async def test_no_false_deadlock_when_the_chain_does_not_come_back(manager):
    await manager.acquire_resource("r1", "A")
    await manager.acquire_resource("r2", "B")
    waits = asyncio.ensure_future(manager.acquire_resource("r2", "A"))  # A -> B
    await spin()
    c_waits = asyncio.ensure_future(manager.acquire_resource("r1", "C"))  # C -> A -> B: no cycle
    await spin()
    assert not c_waits.done()
    assert queue_is_consistent(manager, "r1") == ["C"]
    waits.cancel()
    c_waits.cancel()
    await asyncio.gather(waits, c_waits, return_exceptions=True)
    assert queue_is_consistent(manager, "r1") == []


async def test_cancelling_a_queued_waiter_leaves_the_queue_consistent(manager):
    order = []
    holder = await manager.acquire_resource("r", "H")
    tasks = {}
    for name in ("W1", "W2", "W3", "W4"):
        tasks[name] = asyncio.ensure_future(_hold(manager, "r", name, order))
        await spin(1)
    await spin()
    assert queue_is_consistent(manager, "r") == ["W1", "W2", "W3", "W4"]
    tasks["W2"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks["W2"]
    assert queue_is_consistent(manager, "r") == ["W1", "W3", "W4"]
    holder.release()
    await asyncio.gather(tasks["W1"], tasks["W3"], tasks["W4"])
    assert order == ["W1", "W3", "W4"]
    stats = manager.resource_statistics("r")
    assert stats["cancellations"] == 1 and stats["acquisitions"] == 4
    assert stats["holder"] is None and stats["waiters"] == []


async def test_cancelling_a_waiter_just_after_hand_over_passes_it_on(manager):
    order = []
    holder = await manager.acquire_resource("r", "H")
    w1 = asyncio.ensure_future(_hold(manager, "r", "W1", order))
    await spin()
    w2 = asyncio.ensure_future(_hold(manager, "r", "W2", order))
    await spin()
    holder.release()  # W1 is the holder now, but has not run yet...
    assert manager.resource_statistics("r")["holder"] == "W1"
    w1.cancel()  # ...and is cancelled before it can
    with pytest.raises(asyncio.CancelledError):
        await w1
    await w2
    assert order == ["W2"]  # W1 never entered; the resource went on to W2
    stats = manager.resource_statistics("r")
    assert stats["holder"] is None and stats["cancellations"] == 1
    assert manager.resource_frame("r")["outcome"].tolist() == ["released", "cancelled", "released"]


async def test_cancelled_waiter_skipped_at_hand_over_time(manager):
    """A waiter cancelled in the same turn as the release is skipped, not granted."""
    order = []
    holder = await manager.acquire_resource("r", "H")
    w1 = asyncio.ensure_future(_hold(manager, "r", "W1", order))
    w2 = asyncio.ensure_future(_hold(manager, "r", "W2", order))
    await spin()
    w1.cancel()  # its future is cancelled now; its except-block runs later
    holder.release()
    assert manager.resource_statistics("r")["holder"] == "W2"
    await asyncio.gather(w1, w2, return_exceptions=True)
    assert order == ["W2"]
    assert queue_is_consistent(manager, "r") == []
    assert manager.resource_statistics("r")["cancellations"] == 1


async def test_statistics_report_holder_waiters_waits_and_holds(manager):
    async with manager.resource("r", "a", lease=60) as grant:
        b = asyncio.ensure_future(manager.acquire_resource("r", "b"))
        c = asyncio.ensure_future(manager.acquire_resource("r", "c"))
        await spin()
        stats = manager.resource_statistics("r")
        assert stats["holder"] == "a" and stats["waiters"] == ["b", "c"]
        assert stats["queue_length"] == 2 and stats["lease"] == 60
        assert 0 < stats["lease_remaining"] <= 60
        assert stats["held_since"] == grant.acquired_at
    (await b).release()
    (await c).release()
    stats = manager.resource_statistics("r")
    assert stats["acquisitions"] == stats["releases"] == 3
    assert len(stats["hold_times"]) == 3 and len(stats["wait_times"]) == 3
    assert stats["total_hold"] == pytest.approx(sum(stats["hold_times"]))
    assert stats["max_wait"] == max(stats["wait_times"])
    assert stats["mean_wait"] == pytest.approx(sum(stats["wait_times"]) / 3)
    assert manager.resources == ["r"]


async def test_bad_resource_input_gives_clear_errors(manager):
    with pytest.raises(ValidationError, match="unknown resource operation 'grab': use one of 'acquire', 'release', 'cancel'"):
        await manager.manage_shared_resource("r", "a", "grab")
    with pytest.raises(ValidationError, match="resource_id must be a non-empty string"):
        await manager.manage_shared_resource("", "a", "acquire")
    with pytest.raises(ValidationError, match="participant must be a non-empty string"):
        manager.resource("r", None)
    with pytest.raises(ValidationError, match="lease must be > 0 seconds"):
        manager.resource("r", "a", lease=0)
    with pytest.raises(ValidationError, match="timeout must be a number of seconds"):
        manager.resource("r", "a", timeout="soon")
    with pytest.raises(CoordinationError, match="no resource 'nope' has been used yet"):
        manager.resource_statistics("nope")
    with pytest.raises(ValidationError, match="default_lease must be > 0"):
        CoordinationCollaborationManager(default_lease=-1)


async def test_default_lease_applies_to_every_holding(clock):
    m = CoordinationCollaborationManager(default_lease=0.03, clock=clock)
    assert await m.manage_shared_resource("r", "forgetful", "acquire")
    nxt = asyncio.ensure_future(m.acquire_resource("r", "next", timeout=30))
    await clock.scheduled(2)
    clock.advance(0.03)
    grant = await nxt
    assert grant.lease == 0.03 and grant.remaining() == pytest.approx(0.03)
    assert m.resource_statistics("r")["lease_expiries"] == 1
    grant.release()
    m.close()


async def test_resource_from_a_participant_context(manager):
    order = []

    async def worker(ctx):
        async with ctx.resource("tool", timeout=10) as grant:
            order.append((ctx.participant, grant.participant))
            await spin(2)
        return True

    for name in ("x", "y", "z"):
        manager.register_participant(name, worker)
    sid = await manager.create_coordination_session(["x", "y", "z"], "parallel")
    from wfkit import CollaborationTask

    await manager.add_collaboration_task(sid, CollaborationTask("t", "share a tool"))
    result = await manager.run_session(sid)
    assert result["status"] == "completed"
    assert order == [("x", "x"), ("y", "y"), ("z", "z")]


async def test_the_lease_timer_follows_each_holder(manager, clock):
    """One timer per resource: a short lease after a long one, and a long one after a short
    one, each expire on their own deadline only; an idle resource keeps no timer."""
    res_of = lambda: manager._resources._resources["r"]  # noqa: E731
    (await manager.acquire_resource("r", "long", lease=60)).release()
    assert res_of().lease_timer is None  # idle: nothing left scheduled
    short = await manager.acquire_resource("r", "short", lease=0.05)
    waiter = asyncio.ensure_future(manager.acquire_resource("r", "next", lease=60))
    await spin()
    assert res_of().timer_due == short._deadline
    clock.advance(0.05)
    grant = await waiter  # "short" expired; "next" got it
    assert short.expired and grant.active
    assert res_of().timer_due == grant._deadline
    grant.release()
    assert res_of().lease_timer is None

    # A short lease released early, then a long one: the early timer fires, finds the long
    # lease still running and re-arms for its deadline instead of expiring it.
    quick = await manager.acquire_resource("r", "quick", lease=0.05)
    waiter = asyncio.ensure_future(manager.acquire_resource("r", "slow", lease=60))
    await spin()
    quick.release()
    slow = await waiter
    assert res_of().timer_due == quick._deadline  # not re-armed yet: lazily, when it fires
    clock.advance(0.1)
    assert slow.active and res_of().timer_due == slow._deadline
    slow.release()
    assert res_of().lease_timer is None
    assert manager.resource_statistics("r")["lease_expiries"] == 1
