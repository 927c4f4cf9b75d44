"""Time, in one place that tests can replace.

The engine, the durable queue, the resource table and the streaming mode read the time and
wait through a :class:`Clock` passed as ``clock=``. The default, :data:`SYSTEM`, is the real
thing (``time.time``, ``time.monotonic``, ``asyncio.sleep``, the loop's ``call_later``).
:class:`ManualClock` is time that moves only when a test says so: a retry delay, a lease, a
visibility timeout or a lease-keeping loop can then be stepped through deterministically, and
asserted on recorded times, instead of being slept through on a shared, noisy machine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time as _time
from collections.abc import Callable
from typing import Any, Protocol

from wfkit.errors import ValidationError

__all__ = ["SYSTEM", "Clock", "ManualClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """What :meth:`Clock.call_later` returns: something that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Reads the time and waits. ``time()`` is UNIX seconds (what events and stored rows
    carry); ``monotonic()`` never goes back (for deadlines and durations)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer: ...


class SystemClock:
    """The real clock of the process and the running event loop."""

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(asyncio.sleep)

    @staticmethod
    def call_later(delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = SystemClock()


class _Due:
    """One pending wake-up of a :class:`ManualClock`."""

    __slots__ = ("callback", "args", "cancelled", "sleeper")

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...], sleeper: bool) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.sleeper = sleeper  # a coroutine asleep in sleep(), not a call_later timer

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it.

    Sleeps and timers wait for the clock to pass their due time; :meth:`advance` runs the due
    timers in order (a sleeper resumes at the loop's next turn). :meth:`sleeping` (coroutines
    asleep) and :meth:`scheduled` (sleeps and timers) wait, without any real delay, until
    enough are pending, so a test can advance only once the code under test actually waits. ``start`` is the UNIX time it shows at first (the
    real time by default, so rows it stamps sort among real ones).
    """

    def __init__(self, start: float | None = None) -> None:
        self._epoch = _time.time() if start is None else start
        self._elapsed = 0.0
        self._heap: list[tuple[float, int, _Due]] = []
        self._seq = itertools.count()
        self._watchers: list[tuple[int, bool, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"ManualClock(at {self._elapsed:g} s, {self.pending} pending)"

    def time(self) -> float:
        return self._epoch + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    @property
    def pending(self) -> int:
        """How many sleeps and timers wait for the clock to move."""
        return self._count(False)

    def _count(self, sleepers_only: bool) -> int:
        return sum(
            not due.cancelled and (due.sleeper or not sleepers_only) for _, _, due in self._heap
        )

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return self._push(delay, _Due(callback, args, False))

    def _push(self, delay: float, due: _Due) -> _Due:
        heapq.heappush(self._heap, (self._elapsed + max(0.0, delay), next(self._seq), due))
        self._notify()
        return due

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        due = self._push(seconds, _Due(_wake, (fut,), True))
        try:
            await fut
        finally:
            due.cancel()  # cancelled while asleep: no longer pending

    def advance(self, seconds: float) -> int:
        """Move the clock ``seconds`` forward, running every timer due by then (in due order,
        with the clock set to each one's due time); returns how many ran."""
        if seconds < 0:
            raise ValidationError(f"a clock does not go back: advance({seconds!r}) needs seconds >= 0")
        until = self._elapsed + seconds
        ran = 0
        while self._heap and self._heap[0][0] <= until:
            when, _, due = heapq.heappop(self._heap)
            if due.cancelled:
                continue
            self._elapsed = max(self._elapsed, when)
            due.cancelled = True  # done: cancel() after this is a no-op
            due.callback(*due.args)
            ran += 1
        self._elapsed = until
        return ran

    def next_due(self) -> float | None:
        """Seconds until the earliest pending timer, or None when nothing waits."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] - self._elapsed if self._heap else None

    async def sleeping(self, count: int = 1, *, timeout: float = 30.0) -> None:
        """Wait until at least ``count`` coroutines are asleep in :meth:`sleep`. ``timeout``
        (real seconds) only turns a test that would hang into a clear failure."""
        await self._wait(count, True, timeout)

    async def scheduled(self, count: int = 1, *, timeout: float = 30.0) -> None:
        """Wait until at least ``count`` sleeps and timers (:meth:`call_later`) are pending."""
        await self._wait(count, False, timeout)

    async def _wait(self, count: int, sleepers_only: bool, timeout: float) -> None:
        if self._count(sleepers_only) >= count:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append((count, sleepers_only, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            what = "sleepers" if sleepers_only else "sleeps or timers"
            raise TimeoutError(
                f"{count} {what} were expected on the clock, {self._count(sleepers_only)} came"
            ) from None

    def _notify(self) -> None:
        if not self._watchers:
            return
        keep = []
        for count, sleepers_only, fut in self._watchers:
            if fut.done():
                continue
            if self._count(sleepers_only) >= count:
                fut.set_result(None)
            else:
                keep.append((count, sleepers_only, fut))
        self._watchers = keep


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
