"""Local executors: a thread pool for sync work that waits on I/O or releases the GIL."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wfkit.executors.base import Executor

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    """Runs sync work in a thread pool, sized to the agents' total capacity.

    The default executor: a sync handler never blocks the event loop, and as many sync tasks
    run at once as the agents have capacity (``max_workers`` caps it when given). A thread
    cannot be interrupted, so a timed-out or cancelled sync task's thread finishes in the
    background; its result is discarded.
    """

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    def reserve(self, slots: int) -> None:
        want = min(slots, self.max_workers) if self.max_workers else slots
        want = max(want, 1)
        if self._pool is None or want > self._size:
            old = self._pool
            self._pool = ThreadPoolExecutor(max_workers=want, thread_name_prefix="wfkit")
            self._size = want
            if old is not None:
                old.shutdown(wait=False)

    async def run(self, fn: Callable[[Any], Any], ctx: Any) -> Any:
        if self._pool is None:
            self.reserve(self.max_workers or 8)
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, ctx)
        return await loop.run_in_executor(self._pool, call)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._size = 0
