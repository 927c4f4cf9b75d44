"""Local executors: a thread pool for sync work that waits on I/O or releases the GIL."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from wfkit.executors.base import Executor

__all__ = ["ThreadExecutor"]

log = logging.getLogger("wfkit.executors")


class _Call:
    """One call of sync work: queued, then running on a thread, then done."""

    __slots__ = ("fn", "ctx", "context", "loop", "future", "state", "abandoned")

    def __init__(
        self, fn: Callable[[Any], Any], ctx: Any, loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.ctx = ctx
        self.context = contextvars.copy_context()
        self.loop = loop
        self.future = future
        self.state = "queued"
        self.abandoned = False

    @property
    def task_id(self) -> str:
        task = getattr(self.ctx, "task", None)
        return str(getattr(task, "task_id", None) or getattr(self.fn, "__name__", "work"))


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # its await was cancelled: the result is discarded
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class ThreadExecutor(Executor):
    """Runs sync work in a thread pool, sized to the agents' total capacity.

    The default executor: a sync handler never blocks the event loop, and as many sync tasks
    run at once as the agents have capacity (``max_workers`` caps it when given).

    A thread cannot be interrupted. When the await of a call is cancelled (its task timed out,
    or its run was cancelled) while the function still runs, the thread is *abandoned*: its
    result is discarded, it no longer counts against the pool's size, so a fresh thread
    serves the next task at once, and a warning names the task (:attr:`stuck` lists those
    still running). At most ``max_stuck`` abandoned threads are replaced; beyond that new
    calls wait for a thread. The threads are daemon threads: the process exits without
    waiting for an abandoned one.
    """

    name = "threads"

    def __init__(self, max_workers: int | None = None, *, max_stuck: int = 32) -> None:
        self.max_workers = max_workers
        self.max_stuck = max_stuck
        self._size = 0
        self._lock = threading.Condition()
        self._queue: deque[_Call] = deque()
        self._threads = 0  # live worker threads
        self._idle = 0  # of which waiting for work and not yet woken for a call
        self._stuck: dict[int, _Call] = {}  # abandoned calls whose function still runs
        self._warned_full = False
        self._closed = False

    def reserve(self, slots: int) -> None:
        want = min(slots, self.max_workers) if self.max_workers else slots
        with self._lock:
            self._size = max(self._size, want, 1)
            self._closed = False

    @property
    def stuck(self) -> list[str]:
        """Tasks whose abandoned thread is still running (it ignored a timeout or a cancel)."""
        with self._lock:
            return [call.task_id for call in self._stuck.values()]

    def _limit(self) -> int:
        return self._size + min(len(self._stuck), self.max_stuck)

    async def run(self, fn: Callable[[Any], Any], ctx: Any) -> Any:
        if self._size == 0:
            self.reserve(self.max_workers or 8)
        loop = asyncio.get_running_loop()
        call = _Call(fn, ctx, loop, loop.create_future())
        with self._lock:
            self._queue.append(call)
            if self._idle:
                self._idle -= 1  # counted here, so the next call sees it is taken
                self._lock.notify()
            elif self._threads < self._limit():
                self._start_thread()
            elif self._stuck and not self._warned_full:
                self._warned_full = True
                log.error(
                    "%d thread(s) are stuck in tasks that ignored their timeout (%s); sync "
                    "tasks now wait for a thread", len(self._stuck),
                    ", ".join(c.task_id for c in self._stuck.values()),
                )
        try:
            return await call.future
        except asyncio.CancelledError:
            self._abandon(call)
            raise

    def _abandon(self, call: _Call) -> None:
        with self._lock:
            if call.state == "queued":
                call.state = "done"  # never started: a worker skips it
                try:
                    self._queue.remove(call)
                except ValueError:
                    pass
                return
            if call.state != "running":
                return
            call.abandoned = True
            self._stuck[id(call)] = call
            names = ", ".join(c.task_id for c in self._stuck.values())
            if self._queue and not self._idle and self._threads < self._limit():
                self._start_thread()
        log.warning(
            "task %r still runs in its thread after its timeout or cancellation (a thread "
            "cannot be interrupted); the thread no longer counts against capacity "
            "(stuck: %s)", call.task_id, names,
        )

    def _start_thread(self) -> None:  # with the lock held
        self._threads += 1
        threading.Thread(target=self._work, name=f"wfkit-{self._threads}", daemon=True).start()

    def _work(self) -> None:
        lock = self._lock
        while True:
            with lock:
                while not self._queue:
                    if self._closed or self._threads > self._limit():
                        self._threads -= 1
                        return
                    self._idle += 1
                    lock.wait()  # whoever wakes us took us off the idle count
                call = self._queue.popleft()
                if call.state != "queued":
                    continue
                call.state = "running"
            try:
                value, ok = call.context.run(call.fn, call.ctx), True
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                value, ok = exc, False
            with lock:
                call.state = "done"
                if call.abandoned:
                    self._stuck.pop(id(call), None)
                    self._warned_full = False
                    log.info("task %r finally returned from its abandoned thread", call.task_id)
            if not call.abandoned:
                try:
                    call.loop.call_soon_threadsafe(_settle, call.future, ok, value)
                except RuntimeError:  # the loop is closed: nobody waits for it any more
                    pass
            del call, value

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            for call in pending:
                call.state = "done"
            self._size = 0
            self._idle = 0
            self._lock.notify_all()
        for call in pending:
            try:
                call.loop.call_soon_threadsafe(call.future.cancel)
            except RuntimeError:
                pass
