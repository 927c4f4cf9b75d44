"""The executor seam: the engine decides *what* runs *where*; an executor decides *how*.

The engine awaits :meth:`Executor.run` for every attempt of a task whose work is a plain
(sync) function; coroutine functions always run on the event loop. An executor is shared by
every run of an orchestrator and closed with it (or by its own owner).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Executor"]


class Executor:
    """Base class for executors. Subclasses implement :meth:`run`."""

    name = "executor"

    def reserve(self, slots: int) -> None:
        """Make room for ``slots`` concurrent calls (the total capacity of the agents)."""

    async def run(self, fn: Callable[[Any], Any], ctx: Any) -> Any:
        """Run ``fn(ctx)`` and return its result; cancellation of the await must not leak."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this executor created (never what it was given)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
