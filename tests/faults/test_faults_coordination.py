"""Coordination under contention: every way of writing the shared state is atomic when
hammered from threads and tasks at once, contended updates take turns instead of re-running
quadratically, and nothing is lost. Counts, never clocks."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from wfkit import ValidationError
from wfkit.coordination import SharedState

THREADS = 4


async def shared(manager, initial=None, strategy=None):
    sid = await manager.create_coordination_session(
        ["a", "b"], "collaborative", shared_state=initial, conflict_strategy=strategy
    )
    return manager.sessions[sid].shared_state


async def in_threads(n, work):
    """Run ``work(i)`` in ``n`` threads that start together; re-raise the first failure."""
    start = threading.Barrier(n, timeout=30)
    errors: list[BaseException] = []

    def run(i):
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        await asyncio.to_thread(t.join, 120)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]


# -- every entry point is atomic ---------------------------------------------------------------


async def test_item_assignment_from_threads_and_tasks_is_never_a_conflict(manager):
    """``state[k] = v`` read the version outside the lock: 1,115 of 12,000 assignments from four
    threads became pending conflicts, silently."""
    state = await shared(manager, {"k": -1})
    per_thread, per_task, tasks = 3000, 50, 20

    def assign(i):
        for n in range(per_thread):
            state["k"] = (i, n)
            state[f"own{i}"] = n

    async def assign_async(i):
        for n in range(per_task):
            state["k"] = ("task", i, n)
            await asyncio.sleep(0)

    await asyncio.gather(in_threads(THREADS, assign), *(assign_async(i) for i in range(tasks)))
    writes = THREADS * per_thread * 2 + tasks * per_task
    assert state.version == writes
    assert manager.conflicts == {}
    assert len(state.history()) == writes
    assert all(state[f"own{i}"] == per_thread - 1 for i in range(THREADS))
    by_writer = Counter(h["participant"] for h in state.history())
    assert by_writer == {"user": writes}


async def test_deleting_items_from_threads_loses_nothing(manager):
    state = await shared(manager)
    rounds = 1000
    missing = Counter()

    def churn(i):
        for n in range(rounds):
            state[f"t{i}"] = n
            del state[f"t{i}"]
            try:
                del state[f"t{i}"]  # already gone: a KeyError, never a pending conflict
            except KeyError:
                missing[i] += 1

    await in_threads(THREADS, churn)
    assert missing == dict.fromkeys(range(THREADS), rounds)
    assert state.version == THREADS * rounds * 2
    assert len(state) == 0 and manager.conflicts == {}


async def test_write_outcomes_account_for_every_commit(manager):
    """Optimistic writes from threads: each is applied, merged, or a recorded conflict; the
    commits they report add up to the version, and no reader ever sees half a write."""
    state = await shared(manager, {"a": 0, "b": 0}, strategy="merge")
    outcomes: list = []
    torn: list = []
    stop = threading.Event()

    def write(i):
        for n in range(500):
            snap = state.read()
            outcomes.append(state.write(f"w{i}", {"a": (i, n), "b": (i, n)}, base_version=snap.version))

    def read():
        while not stop.is_set():
            snap = state.read()
            if snap["a"] != snap["b"]:
                pending = {k for c in manager.conflicts.values() if c.pending for k in c.keys}
                if not pending:
                    torn.append(snap)
            items = dict(state.items())
            if items["a"] != items["b"] and not manager.conflicts:
                torn.append(items)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        await in_threads(THREADS, write)
    finally:
        stop.set()
        await asyncio.to_thread(reader.join, 30)
    statuses = Counter(o.status for o in outcomes)
    assert sum(statuses.values()) == THREADS * 500
    assert set(statuses) <= {"applied", "merged", "conflict"}
    committed = sum(1 for o in outcomes if o.applied)
    assert state.version == committed
    conflicts = [o.conflict for o in outcomes if o.status == "conflict"]
    assert len(conflicts) == len(manager.conflicts) == statuses["conflict"]
    assert torn == []


async def test_update_sync_update_and_direct_writes_together_lose_nothing(manager):
    """Threads (update_sync), tasks (update, with an await inside fn) and item assignment on
    one state at once: every increment lands, and retries stay within what turns allow."""
    state = await shared(manager, {"n": 0, "log": 0})
    per_thread, tasks, direct = 200, 300, 100

    def bump_sync(i):
        for _ in range(per_thread):
            out = state.update_sync(f"t{i}", lambda d: {**d, "n": d["n"] + 1})
            assert out.status == "applied"

    async def bump(i):
        async def fn(d):
            value = d["n"]
            await asyncio.sleep(0)
            d["n"] = value + 1

        return await state.update(f"p{i}", fn)

    async def assign():
        for k in range(direct):
            state[f"direct{k}"] = k
            await asyncio.sleep(0)

    results = await asyncio.gather(
        in_threads(THREADS, bump_sync), assign(), *(bump(i) for i in range(tasks))
    )
    updates = THREADS * per_thread + tasks
    assert state["n"] == updates
    assert state.version == updates + direct
    assert all(r.status == "applied" for r in results[2:])
    # Each update fails at most once before its turn; in a turn, each failed attempt saw a
    # commit by someone else, and one turn per group (this loop, the threads) is in play.
    commits = state.version
    assert state.retries <= updates + 2 * commits


async def test_assign_from_threads_and_tasks_commits_each_whole(manager):
    state = await shared(manager, {"a": 0, "b": 0})
    torn: list = []
    stop = threading.Event()

    def assign(i):
        for n in range(1000):
            out = state.assign(f"t{i}", {"a": (i, n), "b": (i, n)})
            assert out.status == "applied"

    async def assign_async(i):
        for n in range(100):
            state.assign(f"p{i}", {"a": ("p", i, n), "b": ("p", i, n)})
            await asyncio.sleep(0)

    def read():
        while not stop.is_set():
            snap = state.read()
            if snap["a"] != snap["b"]:
                torn.append(snap.data)
            items = dict(state.items())
            if items["a"] != items["b"]:
                torn.append(items)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        await asyncio.gather(in_threads(THREADS, assign), *(assign_async(i) for i in range(10)))
    finally:
        stop.set()
        await asyncio.to_thread(reader.join, 30)
    assert state.version == THREADS * 1000 + 10 * 100
    assert torn == [] and manager.conflicts == {}


async def test_resolving_conflicts_from_many_threads_resolves_each_once(manager):
    state = await shared(manager, {f"k{i}": 0 for i in range(200)}, strategy="manual")
    conflicts = []
    for i in range(200):
        base = state.version
        state.write("alice", {f"k{i}": "alice"}, base_version=base)
        out = state.write("bob", {f"k{i}": "bob"}, base_version=base)
        assert out.status == "held"
        conflicts.append(out.conflict)
    version = state.version
    won: list[str] = []  # list.append is atomic; a Counter's += is not

    def resolve(i):
        side = "incoming" if i % 2 else "current"
        for c in conflicts:
            if state.resolve(c, side):
                won.append(side)

    await in_threads(THREADS, resolve)
    wins = Counter(won)
    assert sum(wins.values()) == 200  # every conflict resolved exactly once
    assert all(not c.pending for c in conflicts)
    assert state.version == version + wins["incoming"]  # "current" keeps the value: no commit
    bobs = sum(1 for i in range(200) if state[f"k{i}"] == "bob")
    assert bobs == wins["incoming"]


# -- contended updates take turns ---------------------------------------------------------------


async def test_a_thousand_concurrent_updaters_take_turns(manager):
    """1,000 updaters that each await inside fn: before, every commit sent all the others
    round again (499,288 compare-and-set retries, 94 s); now each retries at most once."""
    state = await shared(manager, {"counter": 0})
    calls = Counter()

    async def increment(d):
        calls["fn"] += 1
        value = d["counter"]
        await asyncio.sleep(0)  # the lost-update window, for every one of them
        d["counter"] = value + 1

    outcomes = await asyncio.gather(*(state.update(f"p{i}", increment) for i in range(1000)))
    assert state["counter"] == 1000 and state.version == 1000
    assert sorted(o.version for o in outcomes) == list(range(1, 1001))
    assert max(o.attempts for o in outcomes) == 2
    assert state.retries == sum(o.attempts - 1 for o in outcomes) == 999
    assert calls["fn"] == 1999
    assert [h["changes"]["counter"] for h in state.history()] == list(range(1, 1001))


async def test_thread_updaters_take_turns_too(manager):
    state = await shared(manager, {"counter": 0})
    per_thread = 250
    attempts: list[int] = []

    def work(i):
        for _ in range(per_thread):
            out = state.update_sync(f"t{i}", lambda d: {**d, "counter": d["counter"] + 1})
            attempts.append(out.attempts)

    await in_threads(8, work)
    updates = 8 * per_thread
    assert state["counter"] == updates and len(attempts) == updates
    # At most one failure before the turn; in the turn, each failure saw a commit made by an
    # update still on its first try (which it then lost to nobody): at most one per commit.
    assert state.retries == sum(a - 1 for a in attempts) <= updates + updates


async def test_a_cancelled_updater_gives_its_turn_back(manager):
    state = await shared(manager, {"n": 0})
    calls = 0

    async def stuck(d):
        nonlocal calls
        calls += 1
        if calls == 1:
            state["bump"] = 1  # a commit in between: this attempt loses, the turn is next
            return
        await asyncio.Event().wait()  # in its turn: never done, until cancelled

    async def quick(d):
        d["n"] += 1

    holder = asyncio.ensure_future(state.update("stuck", stuck))
    while calls < 2:
        await asyncio.sleep(0)
    waiters = [asyncio.ensure_future(state.update(f"q{i}", quick)) for i in range(5)]
    await asyncio.sleep(0)
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    outcomes = await asyncio.gather(*waiters)
    assert state["n"] == 5
    assert [o.attempts for o in outcomes] == [1] * 5  # they queued behind it, then ran once


async def test_an_update_inside_an_update_fn_is_refused_not_hung(manager):
    state = await shared(manager, {"n": 0})

    async def nested(d):
        await state.update("inner", lambda d: {**d, "n": d["n"] + 1})
        d["n"] += 10

    with pytest.raises(ValidationError, match="from inside an update fn of the same shared state"):
        await state.update("outer", nested)

    def nested_sync(d):
        state.update_sync("inner", lambda d: d)
        return d

    def in_a_turn(i):
        state["x"] = i  # nothing to contend with: the first attempt would succeed ...
        with state._thread_turn:  # ... so take the turn path the way contention would
            state._turn_holders.add(threading.get_ident())
            try:
                state.update_sync("outer", nested_sync)
            finally:
                state._turn_holders.discard(threading.get_ident())

    with pytest.raises(ValidationError, match="update_sync\\(\\) was called from inside"):
        await in_threads(1, in_a_turn)


def test_a_state_outside_any_session_serves_threads_and_loops():
    """A bare SharedState used from two event loops in two threads and from plain threads."""
    state = SharedState("bare", {"n": 0})

    def loop_worker():
        async def go():
            async def fn(d):
                await asyncio.sleep(0)
                d["n"] += 1

            await asyncio.gather(*(state.update("loop", fn) for _ in range(200)))

        asyncio.run(go())

    def thread_worker():
        for _ in range(200):
            state.update_sync("thread", lambda d: {**d, "n": d["n"] + 1})

    workers = [threading.Thread(target=f) for f in (loop_worker, loop_worker, thread_worker)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert state["n"] == 600 and state.version == 600
    # groups: two loops and the threads
    assert state.retries <= 600 + 3 * 600


# -- the document's CollaborationTask -------------------------------------------------------------


def test_collaboration_task_takes_the_documents_arguments():
    from wfkit import CollaborationTask

    positional = CollaborationTask("t", "d", ["a"], ["t0"], {"k": 1}, "pending")
    keywords = CollaborationTask(
        task_id="t", description="d", assigned_to=["a"], dependencies=["t0"],
        shared_data={"k": 1}, status="pending",
    )
    for task in (positional, keywords):
        assert (task.assigned_to, task.dependencies, task.shared_data, task.status) == (
            ["a"], ["t0"], {"k": 1}, "pending"
        )
    alias = CollaborationTask("t", "d", assigned_participants=["a"])
    assert alias.assigned_to == alias.assigned_participants == ["a"]
    bare = CollaborationTask("t", "d")
    assert (bare.assigned_to, bare.dependencies, bare.shared_data) == ([], [], {})


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("t", "d", ["a"], [], "pending"), {}, "status is the sixth argument"),
        (("t", "d", ["a"], [], ["x"]), {}, "shared_data must be a dict"),
        (("t", "d", ["a"], [], {1: "x"}), {}, "shared_data keys are shared-state keys"),
        (("t", "d", ["a"]), {"assigned_participants": ["b"]}, "not both"),
        (("t", "d", "a"), {}, "participants must be a list of names"),
        (("t", "d"), {"status": "done"}, "status must be one of"),
    ],
)
def test_bad_collaboration_task_arguments_say_what_to_fix(args, kwargs, message):
    from wfkit import CollaborationTask

    with pytest.raises(ValidationError, match=message):
        CollaborationTask(*args, **kwargs)


async def test_shared_data_is_merged_as_the_task_starts(manager):
    from wfkit import CollaborationTask

    seen = []

    async def look(ctx):
        seen.append((ctx.task_id, ctx.shared.read().data))
        return True

    manager.register_participant("a", look)
    sid = await manager.create_coordination_session(["a"], "sequential", shared_state={"k": 0})
    await manager.add_collaboration_task(sid, CollaborationTask("one", "d", ["a"], [], {"k": 1, "x": "one"}))
    await manager.add_collaboration_task(
        sid, CollaborationTask("gated", "d", ["a"], ["one"], {"x": "gated"},
                               condition={"field": "shared.x", "op": "==", "value": "gated"}),
    )
    await manager.add_collaboration_task(
        sid, CollaborationTask("locked", "d", ["a"], ["gated"], {"lock": threading.Lock()})
    )
    result = await manager.run_session(sid)
    assert seen == [("one", {"k": 1, "x": "one"}), ("gated", {"k": 1, "x": "gated"})]
    locked = result["task_results"]["locked"]
    assert locked["status"] == "failed"  # a value the state cannot copy: an error, no traceback
    assert "TypeError" in locked["error"] and "lock" in locked["error"]
    state = manager.sessions[sid].shared_state
    assert [h["participant"] for h in state.history()] == ["task:one", "task:gated"]
