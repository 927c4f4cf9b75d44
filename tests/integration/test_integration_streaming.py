"""run_flow: draining a durable queue with bounded concurrency, backpressure and no loss."""

from __future__ import annotations

import asyncio

import pytest

from wfkit import (
    DataTransformation,
    IntegrationConfigError,
    IntegrationEndpoint,
    IntegrationFlow,
    IntegrationOrchestrator,
)
from wfkit.clock import ManualClock
from wfkit.integration.database import Database
from wfkit.integration.durable_queue import DurableQueue

SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 0}}}


def queue_endpoint(url, topic="in", **config):
    return IntegrationEndpoint("src", "Source", "message_queue", {"url": url, "topic": topic, **config}, ["read"])


def setup_flow(orch, queue_url, targets, *, transformations=(), **handling):
    orch.register_endpoint(queue_endpoint(queue_url, **handling.pop("queue", {})))
    orch.create_flow(IntegrationFlow("f", "F", ["src"], list(targets), list(transformations), {}, handling))


class Tracker:
    """An async target that records how many messages it works on at once. The first
    messages wait until ``hold`` of them are being worked on together."""

    def __init__(self, hold=1, orch=None):
        self.orch = orch
        self.now = self.most = 0
        self.got = []
        self.leased = []
        self.hold = hold
        self.full = asyncio.Event()

    async def __call__(self, data):
        self.now += 1
        self.most = max(self.most, self.now)
        if self.now >= self.hold:
            self.full.set()
        try:
            if self.orch is not None:
                self.leased.append((await self.orch.queue_stats("src"))["leased"])
            await asyncio.wait_for(self.full.wait(), 30)
            self.got.append(data["n"])
        finally:
            self.now -= 1


async def test_drains_into_a_database(orch, tmp_path, db_url, name, drop_tables, query):
    drop_tables.append(name)
    queue_url = f"sqlite:///{tmp_path / 'queue.sqlite'}"
    orch.register_endpoint(IntegrationEndpoint("db", "DB", "database", {"url": db_url, "table": name, "create_table": True}, []))
    orch.register_transformation(DataTransformation("t", "T", SCHEMA, None, lambda d: {"n": d["n"], "square": d["n"] ** 2}))
    setup_flow(orch, queue_url, ["db"], transformations=["t"], dead_letter=True)
    bad = [{"n": -1}, {"n": "x"}, [1, 2]]
    assert await orch.publish("src", [{"n": i} for i in range(200)] + bad) == 203

    stats = await orch.run_flow("f", concurrency=8)

    assert stats["consumed"] == 203
    assert stats["delivered"] == 200 and stats["dead_lettered"] == 3 and stats["failed"] == 0
    assert stats["consumed"] == stats["delivered"] + stats["dead_lettered"]
    assert query(db_url, f'SELECT count(*), count(DISTINCT n), sum(square) FROM "{name}"') == [
        (200, 200, sum(i * i for i in range(200)))
    ]
    assert await orch.queue_stats("src") == {"total": 0, "visible": 0, "leased": 0}
    letters = orch.dead_letters_frame("f")
    assert letters.equals(orch.dead_letters("f"))  # the older name gives the same frame
    assert sorted(map(str, letters["message"])) == sorted(map(str, [{"n": -1}, {"n": "x"}, [1, 2]]))  # as sent
    assert set(letters["reason"]) == {"transformation 't' failed"}


async def test_bounded_concurrency_and_backpressure(orch, tmp_path):
    tracker = Tracker(hold=4, orch=orch)
    orch.register_endpoint(IntegrationEndpoint("slow", "S", "function", {"callable": tracker}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["slow"])
    await orch.publish("src", [{"n": i} for i in range(60)])

    stats = await orch.run_flow("f", concurrency=4)

    assert stats["delivered"] == 60
    assert tracker.most == 4  # all workers busy, never more
    assert max(tracker.leased) <= 8  # at most 2 x concurrency leases at any time
    assert sorted(tracker.got) == list(range(60))


async def test_limit_and_what_is_left(orch, tmp_path):
    got = []
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": got.append, "in_thread": False}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["sink"])
    await orch.publish("src", [{"n": i} for i in range(25)])
    first = await orch.run_flow("f", concurrency=3, limit=10)
    assert first["consumed"] == first["delivered"] == 10
    assert (await orch.queue_stats("src"))["total"] == 15
    rest = await orch.run_flow("f", concurrency=3)
    assert rest["consumed"] == 15
    assert sorted(d["n"] for d in got) == list(range(25))
    assert first["run_id"] != rest["run_id"]


async def test_retries_are_counted(orch, tmp_path):
    seen = set()

    def flaky(data):
        if data["n"] not in seen:  # every message fails once
            seen.add(data["n"])
            raise ConnectionError("blip")

    orch.register_endpoint(IntegrationEndpoint("flaky", "F", "function", {"callable": flaky}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["flaky"], retry={"max_attempts": 2, "backoff": 0})
    await orch.publish("src", [{"n": i} for i in range(12)])
    stats = await orch.run_flow("f")
    assert stats["delivered"] == 12 and stats["retried"] == 12


async def test_failures_without_a_dead_letter_channel_are_released(orch, tmp_path):
    def picky(data):
        if data["n"] % 2:
            raise ValueError("odd")

    orch.register_endpoint(IntegrationEndpoint("picky", "P", "function", {"callable": picky}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["picky"], queue={"visibility_timeout": 30})
    await orch.publish("src", [{"n": i} for i in range(10)])
    stats = await orch.run_flow("f")
    assert (stats["delivered"], stats["failed"], stats["dead_lettered"]) == (5, 5, 0)
    assert stats["consumed"] == stats["delivered"] + stats["failed"]
    # nothing lost: the failures wait (a visibility timeout) to be delivered again
    assert await orch.queue_stats("src") == {"total": 5, "visible": 0, "leased": 5}


async def test_poison_messages_are_dead_lettered(orch, tmp_path):
    got = []
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": got.append}, []))
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    setup_flow(orch, url, ["sink"], dead_letter=True, queue={"max_deliveries": 2})
    await orch.publish("src", [{"n": 1}], message_ids=["poison"])
    await orch.publish("src", [{"n": 2}], message_ids=["fine"])
    raw = DurableQueue(Database(url))
    for _ in range(2):  # two consumers took it and never acknowledged (crashed)
        (taken, *_) = await raw.consume("in", 1)
        assert taken.message_id == "poison"
        await raw.release(taken)
    await asyncio.to_thread(raw.db.close)

    stats = await orch.run_flow("f")

    assert (stats["consumed"], stats["delivered"], stats["dead_lettered"]) == (2, 1, 1)
    assert stats["redelivered"] == 1
    assert got == [{"n": 2}]
    (letter,) = orch.dead_letters("f").to_dict("records")
    assert letter["reason"] == "delivered 3 times (max_deliveries 2)"
    assert letter["message"] == {"n": 1} and letter["message_id"] == "poison"


async def test_leases_are_extended_while_a_message_is_slow(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    clock = ManualClock()
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow(data):
        started.set()
        await finish.wait()  # until three visibility timeouts have passed

    async with IntegrationOrchestrator(dead_letter_store=tmp_path / "dl.sqlite", clock=clock) as orch:
        orch.register_endpoint(IntegrationEndpoint("slow", "S", "function", {"callable": slow}, []))
        setup_flow(orch, url, ["slow"], queue={"visibility_timeout": 0.5})
        await orch.publish("src", {"n": 1})
        run = asyncio.create_task(orch.run_flow("f"))
        await started.wait()
        other = DurableQueue(Database(url), clock=clock)  # another consumer of the same queue
        for _ in range(9):  # 1.5 s: the lease keeper wakes every visibility timeout / 3
            await clock.sleeping(1)
            clock.advance(0.5 / 3)
            assert await other.consume("in", 10) == []  # still leased to the running flow
        finish.set()
        stats = await run
        await asyncio.to_thread(other.db.close)
    assert stats["delivered"] == 1 and stats["redelivered"] == 0


async def test_without_the_lease_keeper_a_slow_message_would_be_redelivered(tmp_path):
    """The check above can fail: the same wait without a running flow redelivers."""
    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    queue = DurableQueue(Database(url), clock=clock)
    await queue.publish("in", {"n": 1})
    (leased,) = await queue.consume("in", visibility_timeout=0.5)
    clock.advance(0.5)
    (again,) = await queue.consume("in")
    assert (again.message_id, again.deliveries) == (leased.message_id, 2)
    await asyncio.to_thread(queue.db.close)


async def test_cancellation_releases_unfinished_messages(orch, tmp_path):
    gate, stuck = asyncio.Event(), asyncio.Event()
    done, waiting = [], []

    async def blocked(data):
        if data["n"] >= 3:
            waiting.append(data["n"])
            if len(waiting) == 4:  # every worker is stuck, so 0, 1 and 2 were acknowledged
                stuck.set()
            await gate.wait()  # never set: these are in flight when we cancel
        done.append(data["n"])

    orch.register_endpoint(IntegrationEndpoint("b", "B", "function", {"callable": blocked}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["b"])
    await orch.publish("src", [{"n": i} for i in range(20)])
    run = asyncio.create_task(orch.run_flow("f", concurrency=4))
    await asyncio.wait_for(stuck.wait(), 30)
    assert (await orch.queue_stats("src"))["total"] == 17
    tasks_before = asyncio.all_tasks()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(done) == [0, 1, 2]
    # every unfinished message is visible again at once, none is lost
    assert await orch.queue_stats("src") == {"total": 17, "visible": 17, "leased": 0}
    leftover = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    assert leftover == set()  # no worker, consumer or lease keeper survives


async def test_run_flow_needs_a_queue_source(orch):
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": print}, []))
    orch.create_flow(IntegrationFlow("f", "F", [], ["sink"], [], {}, {}))
    with pytest.raises(IntegrationConfigError, match=r"flow 'f' has no message_queue source to drain"):
        await orch.run_flow("f")
    with pytest.raises(IntegrationConfigError, match=r"'sink' is a function endpoint; name a registered message_queue"):
        await orch.publish("sink", {"n": 1})


async def test_bad_run_flow_arguments(orch, tmp_path):
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": print}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["sink"])
    with pytest.raises(IntegrationConfigError, match=r"concurrency must be an int >= 1, got 0"):
        await orch.run_flow("f", concurrency=0)
    with pytest.raises(IntegrationConfigError, match=r"limit must be an int >= 0 or None"):
        await orch.run_flow("f", limit=-1)


async def test_a_flow_publishing_to_another_queue(orch, tmp_path):
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    orch.register_endpoint(IntegrationEndpoint("out", "Out", "message_queue", {"url": url, "topic": "out"}, []))
    setup_flow(orch, url, ["out"])
    await orch.publish("src", [{"n": i} for i in range(5)])
    assert (await orch.run_flow("f"))["delivered"] == 5
    assert await orch.queue_stats("out") == {"total": 5, "visible": 5, "leased": 0}
    assert (await orch.execute_flow("f", {"n": 9}, message_id="x"))["trace"][-1]["queued"] is True
    assert (await orch.execute_flow("f", {"n": 9}, message_id="x"))["trace"][-1]["queued"] is False


async def test_stream_events_share_the_run_id(orch, tmp_path):
    from wfkit.events import FlowMessageDelivered, FlowStepFinished

    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": lambda d: None}, []))
    setup_flow(orch, tmp_path / "q.sqlite", ["sink"])
    await orch.publish("src", [{"n": i} for i in range(5)], message_ids=[f"m{i}" for i in range(5)])
    events = []
    orch.subscribe(events.append)
    stats = await orch.run_flow("f")
    assert {e.run_id for e in events} == {stats["run_id"]}
    delivered = [e for e in events if isinstance(e, FlowMessageDelivered)]
    assert sorted(e.message_id for e in delivered) == [f"m{i}" for i in range(5)]
    steps = [(e.message_id, e.kind) for e in events if isinstance(e, FlowStepFinished)]
    assert sorted(steps) == sorted([(f"m{i}", k) for i in range(5) for k in ("source", "target")])
