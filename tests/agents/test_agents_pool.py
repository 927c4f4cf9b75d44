"""The agent pool: capacity accounting shared by the runs of one orchestrator."""

import asyncio

import pytest

from wfkit import AgentProfile
from wfkit.agents.pool import AgentPool


def agent(capacity=2):
    return AgentProfile("a", "A", ["work"], capacity=capacity)


def test_acquire_and_release_count_and_mirror_current_load():
    pool, a = AgentPool(), agent(2)
    assert pool.with_room([a]) == [a]
    assert pool.acquire(a) is False and pool.acquire(a) is True  # full after the second
    assert pool.load(a) == a.current_load == 2 and pool.with_room([a]) == []
    a.current_load = 0  # a stray write to the mirror changes nothing in the accounting
    assert not pool.has_room(a)
    pool.release(a)
    pool.release(a)
    assert pool.load(a) == a.current_load == 0


def test_a_freed_slot_wakes_every_run_when_several_share_the_pool():
    pool, a = AgentPool(), agent(1)
    woken = []
    stop_one = pool.subscribe(lambda: woken.append("one"))
    pool.acquire(a)
    pool.release(a)
    assert woken == []  # a lone run dispatches after its own transitions anyway
    pool.subscribe(lambda: woken.append("two"))
    pool.acquire(a)
    pool.release(a)
    assert woken == ["one", "two"]
    stop_one()
    pool.acquire(a)
    pool.release(a)
    assert woken == ["one", "two"]  # one subscriber left: nobody else to wake


async def test_a_lent_slot_serves_others_and_is_taken_back_first():
    pool, a = AgentPool(), agent(1)
    pool.acquire(a)  # a running task holds the only slot
    order = []

    async def lender():
        async with pool.lent(a):
            assert pool.has_room(a)
            pool.acquire(a)  # another task takes the lent slot...
            order.append("other started")
            asyncio.get_running_loop().call_soon(release_other)
        order.append("lender back")  # ...and the lender gets it back when it is freed

    def release_other():
        order.append("other done")
        pool.release(a)

    await asyncio.wait_for(lender(), 10)
    assert order == ["other started", "other done", "lender back"]
    assert pool.load(a) == 1
    pool.release(a)
    assert pool.load(a) == 0


async def test_a_cancelled_lender_stays_counted_until_its_run_releases_it():
    pool, a = AgentPool(), agent(1)
    pool.acquire(a)
    inside = asyncio.Event()

    async def lender():
        async with pool.lent(a):
            pool.acquire(a)  # someone else holds the slot now
            inside.set()
            await asyncio.Event().wait()

    t = asyncio.create_task(lender())
    await inside.wait()
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert pool.load(a) == 2  # the lender's slot is held again: its run's transition frees it
    pool.release(a)  # the run releases the cancelled task
    pool.release(a)  # the other holder ends
    assert pool.load(a) == 0
