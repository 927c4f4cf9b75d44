"""Sub-workflows: a task that runs another workflow on the same orchestrator and waits for it.

``await ctx.run_workflow(wf_or_id, params=...)`` (or ``await orch.execute_workflow(...)``
called inside a task) starts a *child run*. The engine marks each attempt's asyncio task with
its :class:`~wfkit.agents.model.TaskContext` (:data:`CURRENT`, a context variable: every
attempt is its own asyncio task, so each sees only its own), which is how a run started from
inside a task finds its parent without being told:

- the child run records ``parent_run_id`` and ``parent_task_id`` (events, store, frames);
- the chain of workflows from the top run down is known, so a workflow that would run itself
  (directly or through others) fails at once with :class:`~wfkit.SubWorkflowCycleError`
  naming the chain, instead of waiting for itself forever;
- cancelling the parent cancels the child, because the child runs inside the calling task;
- while it waits, the calling task lends its agent slot back to the pool
  (:func:`lend_slot`), and takes one again before it carries on, so nested runs on agents of
  capacity 1 never wait for the slot their own caller holds.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from wfkit.agents.model import TaskContext

__all__ = ["CURRENT", "parent_context", "lend_slot"]

#: The context of the task attempt the current asyncio task runs (None outside tasks).
CURRENT: ContextVar[TaskContext | None] = ContextVar("wfkit_task_context", default=None)


def parent_context() -> TaskContext | None:
    """The running task that is starting a run now, if a run is started from inside one.

    Code the task left running after it ended (an asyncio task it did not await) still sees
    its context: that attempt is over and holds no slot to lend, so it is no parent.
    """
    ctx = CURRENT.get()
    if ctx is None or ctx._run is None or not ctx._run.is_running(ctx):
        return None
    return ctx


# Slots lent by running tasks: id(ctx) -> [children waiting, the pool's lent() scope].
_LENT: dict[int, list[Any]] = {}


@asynccontextmanager
async def lend_slot(ctx: TaskContext) -> AsyncIterator[None]:
    """While inside, ``ctx``'s agent slot is free for other work (the child run's first).

    A task that waits for several child runs at once lends its one slot once: the first
    child to start lends it, the last one to end takes it back.
    """
    pool = getattr(ctx._run, "pool", None)
    if pool is None:
        yield
        return
    key = id(ctx)
    entry = _LENT.get(key)
    if entry is None:
        lent = pool.lent(ctx.agent)
        await lent.__aenter__()
        entry = _LENT[key] = [0, lent]
    entry[0] += 1
    exc_info: tuple[Any, Any, Any] = (None, None, None)
    try:
        yield
    except BaseException as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
        raise
    finally:
        entry[0] -= 1
        if not entry[0]:
            del _LENT[key]
            await entry[1].__aexit__(*exc_info)
