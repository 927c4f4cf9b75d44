"""``run_sync``: one sync entry point for scripts and for notebook cells."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from wfkit.jupyter.interrupt import INTERRUPT_MESSAGE

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion and return its result.

    In a plain script it runs a fresh event loop and closes it. Inside a running loop (a
    notebook cell) it re-enters that loop with ``nest_asyncio``, so objects bound to the loop
    (clients, queues) keep working. Prefer top-level ``await`` in notebooks; this is for code
    that must stay sync. On KeyboardInterrupt the work is cancelled and awaited before the
    interrupt propagates, so nothing keeps running in the background.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        loop = asyncio.new_event_loop()
        try:
            return _drive(loop, awaitable)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
    import nest_asyncio

    nest_asyncio.apply(loop)
    return _drive(loop, awaitable)


def _drive(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[Any]) -> Any:
    task = asyncio.ensure_future(awaitable, loop=loop)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError as exc:
        if INTERRUPT_MESSAGE in str(exc) or INTERRUPT_MESSAGE in repr(exc.args):
            raise KeyboardInterrupt from None  # a script's Ctrl-C stays a KeyboardInterrupt
        raise
    except KeyboardInterrupt:
        task.cancel()
        try:
            loop.run_until_complete(task)
        except (asyncio.CancelledError, Exception):
            pass
        raise
