"""``run_sync``: one sync entry point for scripts and for notebook cells."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from wfkit.interrupt import INTERRUPT_MESSAGE

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(awaitable: Awaitable[T], *, raise_on_failure: bool = False) -> T:
    """Run ``awaitable`` to completion and return its result.

    With ``raise_on_failure=True``, a :class:`~wfkit.RunResult` that did not complete raises
    :class:`~wfkit.WorkflowFailedError` (``result.raise_for_status()``), so a script that
    runs a failing workflow exits with an error and the user's failing line.

    In a plain script it runs a fresh event loop and closes it. Inside a running loop (a
    notebook cell) it re-enters that loop with ``nest_asyncio``, so objects bound to the loop
    (clients, queues) keep working. Prefer top-level ``await`` in notebooks; this is for code
    that must stay sync. On KeyboardInterrupt or SystemExit the work is cancelled and awaited
    before the exception propagates, so nothing keeps running in the background (a run whose
    task raised one of them has already cancelled its work when it re-raises it).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        loop = asyncio.new_event_loop()
        try:
            result = _drive(loop, awaitable)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
    else:
        import nest_asyncio

        nest_asyncio.apply(loop)
        result = _drive(loop, awaitable)
    if raise_on_failure:
        check = getattr(result, "raise_for_status", None)
        if check is None:
            from wfkit.errors import ValidationError

            raise ValidationError(
                f"run_sync(..., raise_on_failure=True) needs an awaitable that returns a "
                f"RunResult (such as orchestrator.execute_workflow(...)), got "
                f"{type(result).__name__}"
            )
        check()
    return result


def _drive(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[Any]) -> Any:
    task = asyncio.ensure_future(awaitable, loop=loop)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError as exc:
        if INTERRUPT_MESSAGE in str(exc) or INTERRUPT_MESSAGE in repr(exc.args):
            raise KeyboardInterrupt from None  # a script's Ctrl-C stays a KeyboardInterrupt
        raise
    except (KeyboardInterrupt, SystemExit):
        if task.done():  # it ended with this exception itself (a run re-raises a task's
            if not task.cancelled():  # exit after cancelling its work): nothing is pending
                task.exception()  # retrieved: asyncio must not log it again
            raise
        task.cancel()  # it came from elsewhere: cancel the work and let it clean up first
        try:
            loop.run_until_complete(task)
        except (asyncio.CancelledError, Exception):
            pass
        except (KeyboardInterrupt, SystemExit):
            if task.done() and not task.cancelled():
                task.exception()
        raise
