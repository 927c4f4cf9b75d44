"""The executor seam: the engine decides *what* runs *where*; an executor decides *how*.

The engine awaits :meth:`Executor.run` for every attempt of a task whose work is a plain
(sync) function; coroutine functions always run on the event loop. An executor is shared by
every run of an orchestrator and closed with it (or by its own owner).

Two optional hooks frame a run. :meth:`Executor.check` sees, before anything starts, every
piece of sync work the run may send to this executor, so work that cannot be shipped (an
unpicklable closure for a process pool) fails the whole run up front instead of half-way.
:meth:`Executor.release` is called when the run has ended, for executors that keep something
per run (results held on a cluster). The orchestrator skips both when an executor does not
override them, so the default thread path costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wfkit.lifecycle import Closing

if TYPE_CHECKING:
    from wfkit.agents.model import AgentProfile, WorkflowTask

__all__ = ["Executor", "Work"]

#: One piece of sync work a run may send: the task, an agent that may run it, the function.
Work = tuple["WorkflowTask", "AgentProfile", Callable[[Any], Any]]


class Executor(Closing):
    """Base class for executors. Subclasses implement :meth:`run`; ``close()``, ``aclose()``,
    ``with`` and ``async with`` end their life (:class:`~wfkit.lifecycle.Closing`)."""

    name = "executor"

    def reserve(self, slots: int) -> None:
        """Make room for ``slots`` concurrent calls (the total capacity of the agents)."""

    async def run(self, fn: Callable[[Any], Any], ctx: Any) -> Any:
        """Run ``fn(ctx)`` and return its result; cancellation of the await must not leak."""
        raise NotImplementedError

    def check(self, work: Sequence[Work]) -> None:
        """Before a run starts: raise :class:`~wfkit.errors.TaskNotSendableError` for work
        this executor cannot run. ``work`` lists each (task, agent, fn) it may be sent."""

    def release(self, run_id: str) -> None:
        """After the run ``run_id`` has ended: drop whatever was kept for it."""

    def close(self) -> None:
        """Release what this executor created (never what it was given)."""
