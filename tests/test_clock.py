"""The clock seam: the real clock's shape, and a ManualClock that moves only when told."""

import asyncio

import pytest

from wfkit.clock import SYSTEM, ManualClock
from wfkit.errors import ValidationError


async def test_the_system_clock_is_the_real_one():
    assert abs(SYSTEM.time() - __import__("time").time()) < 60
    fired = asyncio.Event()
    SYSTEM.call_later(0, fired.set)
    await asyncio.wait_for(fired.wait(), 10)
    await SYSTEM.sleep(0)


async def test_timers_run_in_due_order_at_their_due_time():
    clock = ManualClock(start=1000.0)
    seen = []
    clock.call_later(0.3, lambda: seen.append(("c", clock.monotonic())))
    clock.call_later(0.1, lambda: seen.append(("a", clock.monotonic())))
    cancelled = clock.call_later(0.2, lambda: seen.append(("b", clock.monotonic())))
    cancelled.cancel()
    assert clock.pending == 2 and clock.next_due() == pytest.approx(0.1)
    assert clock.advance(0.25) == 1
    assert seen == [("a", 0.1)] and clock.monotonic() == 0.25 and clock.time() == 1000.25
    clock.advance(1)
    assert seen == [("a", 0.1), ("c", 0.3)] and clock.pending == 0 and clock.next_due() is None
    with pytest.raises(ValidationError, match="does not go back"):
        clock.advance(-1)


async def test_sleepers_wake_only_when_the_clock_passes_their_time():
    clock = ManualClock()
    woke = []

    async def nap(name, seconds):
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    naps = [asyncio.ensure_future(nap("long", 2)), asyncio.ensure_future(nap("short", 1))]
    await clock.sleeping(2)
    clock.advance(1.5)
    await asyncio.sleep(0)
    assert woke == [("short", 1.5)]  # resumed after the clock moved past its time
    naps[0].cancel()  # a cancelled sleeper is no longer pending
    await asyncio.gather(*naps, return_exceptions=True)
    assert clock.pending == 0


async def test_sleeping_and_scheduled_tell_sleepers_from_timers():
    clock = ManualClock()
    clock.call_later(5, lambda: None)
    await clock.scheduled(1)
    with pytest.raises(TimeoutError, match="1 sleepers were expected on the clock, 0 came"):
        await clock.sleeping(1, timeout=0)
