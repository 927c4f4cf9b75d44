"""The durable queue on a real SQLite file and, when configured, a real PostgreSQL server.

Leases run on a :class:`ManualClock`: a visibility timeout passes when the test moves the clock,
never by sleeping through it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
import sqlalchemy

from wfkit.clock import ManualClock
from wfkit.integration.database import Database
from wfkit.integration.durable_queue import DurableQueue


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
async def queue(db_url, name, drop_tables, clock):
    drop_tables.append(name)
    db = Database(db_url)
    yield DurableQueue(db, table=name, clock=clock)
    await asyncio.to_thread(db.close)


async def test_publish_consume_ack(queue):
    assert await queue.publish_many("orders", [{"n": i} for i in range(5)]) == 5
    assert await queue.stats("orders") == {"total": 5, "visible": 5, "leased": 0}
    first = await queue.consume("orders", 3)
    assert [m.body for m in first] == [{"n": 0}, {"n": 1}, {"n": 2}]  # oldest first
    assert all(m.deliveries == 1 for m in first)
    assert await queue.stats("orders") == {"total": 5, "visible": 2, "leased": 3}
    assert all([await queue.ack(m) for m in first])
    assert await queue.stats("orders") == {"total": 2, "visible": 2, "leased": 0}
    assert await queue.stats("other") == {"total": 0, "visible": 0, "leased": 0}  # topics are apart


async def test_unacknowledged_messages_are_redelivered_after_the_timeout(queue, clock):
    await queue.publish("orders", {"n": 1}, message_id="m1")
    (leased,) = await queue.consume("orders", 10, visibility_timeout=0.2)
    assert await queue.consume("orders", 10) == []  # invisible while leased
    clock.advance(0.19)
    assert await queue.consume("orders", 10) == []  # still leased just before the timeout
    clock.advance(0.01)
    (again,) = await queue.consume("orders", 10, visibility_timeout=30)
    assert again.message_id == "m1" and again.deliveries == 2
    assert not await queue.ack(leased)  # the first lease is gone: its ack does nothing
    assert await queue.ack(again)
    assert (await queue.stats("orders"))["total"] == 0


async def test_release_and_extend(queue, clock):
    await queue.publish_many("t", [{"n": 1}, {"n": 2}])
    one, two = await queue.consume("t", 2, visibility_timeout=0.2)
    assert await queue.release(one)  # back at once
    assert await queue.extend([two], 30) == 1  # kept
    clock.advance(0.3)
    (back,) = await queue.consume("t", 10)
    assert back.body == {"n": 1} and back.deliveries == 2
    assert await queue.release(back, delay=30)
    assert await queue.stats("t") == {"total": 2, "visible": 0, "leased": 2}
    clock.advance(29.6)  # 29.9 s after the extension, 29.6 s after the release
    assert await queue.stats("t") == {"total": 2, "visible": 0, "leased": 2}
    clock.advance(0.4)  # the extended lease and the release delay have both run out
    assert await queue.stats("t") == {"total": 2, "visible": 2, "leased": 0}
    assert [m.deliveries for m in await queue.consume("t", 10)] == [3, 2]


async def test_the_same_message_id_is_queued_once(queue):
    assert await queue.publish("t", {"v": 1}, message_id="k")
    assert not await queue.publish("t", {"v": 2}, message_id="k")
    assert await queue.publish("u", {"v": 3}, message_id="k")  # per topic
    (only,) = await queue.consume("t", 10)
    assert only.body == {"v": 1}
    await queue.ack(only)
    assert await queue.publish("t", {"v": 4}, message_id="k")  # acknowledged: may come again


async def test_concurrent_consumers_never_share_a_message(db_url, queue):
    await queue.publish_many("t", [{"n": i} for i in range(300)])
    other_db = Database(db_url)  # a second connection and thread, as another program would be
    other = DurableQueue(other_db, table=queue.table_name, clock=queue.clock)
    seen: list[list[int]] = [[], []]

    async def drain(q, into):
        while batch := await q.consume("t", 7):
            into.extend(m.body["n"] for m in batch)
            for m in batch:
                assert await q.ack(m)

    await asyncio.gather(drain(queue, seen[0]), drain(other, seen[1]))
    await asyncio.to_thread(other_db.close)
    assert sorted(seen[0] + seen[1]) == list(range(300))
    assert not set(seen[0]) & set(seen[1])


async def test_messages_survive_a_new_connection(db_url, queue):
    await queue.publish("t", {"n": 1, "when": "2024-01-01"}, message_id="durable")
    await asyncio.to_thread(queue.db.close)
    reopened_db = Database(db_url)
    reopened = DurableQueue(reopened_db, table=queue.table_name)
    (message,) = await reopened.consume("t")
    assert message.message_id == "durable" and message.body == {"n": 1, "when": "2024-01-01"}
    assert reopened.peek("t")[0]["message_id"] == "durable"
    await asyncio.to_thread(reopened_db.close)
    queue.db = reopened_db  # already closed; the fixture's close is then a no-op


async def test_group_commit_shares_transactions(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'q.sqlite'}")
    queue = DurableQueue(db)
    await queue.publish("t", {"warm": True})
    before = db.commits
    await asyncio.gather(*(queue.publish("t", {"n": i}) for i in range(50)))
    assert (await queue.stats("t"))["total"] == 51
    assert db.commits - before < 50  # concurrent operations committed together
    await asyncio.to_thread(db.close)


async def test_a_locked_database_never_blocks_the_event_loop(tmp_path):
    path = tmp_path / "q.sqlite"
    db = Database(f"sqlite:///{path}")
    queue = DurableQueue(db)
    await queue.publish("t", {"n": 1})
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    tried = threading.Event()
    loop_thread = threading.get_ident()

    def before(*args):
        if threading.get_ident() != loop_thread:
            tried.set()  # the database thread is about to wait for the lock

    sqlalchemy.event.listen(db.engine, "before_cursor_execute", before)
    consume = asyncio.create_task(queue.consume("t"))
    turns = 0
    while not tried.is_set():  # the loop keeps turning while the thread reaches the lock ...
        turns += 1
        await asyncio.sleep(0)
    for _ in range(100):
        await asyncio.sleep(0)
    assert not consume.done()  # ... and while the thread waits for it
    blocker.rollback()
    blocker.close()
    (message,) = await consume
    assert message.body == {"n": 1}
    await asyncio.to_thread(db.close)
