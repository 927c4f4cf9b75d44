"""Turn SIGINT (Ctrl-C, the notebook's stop button) into cancellation of running wfkit runs.

A kernel interrupt raises KeyboardInterrupt wherever the main thread happens to be, usually
inside the event loop's ``select``: the run's tasks would be left pending and resume with the
next cell. Some kernels turn SIGINT into cancelling the cell; not every version manages to.
While a run is active we therefore install a handler that cancels the runs' awaiting tasks on
the loop; each run then cancels its work, awaits it and marks it cancelled. The previous handler
comes back when the last run ends. Off the main thread (where signals cannot be handled) this
does nothing.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["cancel_on_interrupt", "INTERRUPT_MESSAGE"]

INTERRUPT_MESSAGE = "wfkit run interrupted (SIGINT)"

_active: dict[asyncio.Task[Any], asyncio.AbstractEventLoop] = {}
_previous: Any = None
_installed = False


def _handle(signum: int, frame: Any) -> None:
    for task, loop in list(_active.items()):
        loop.call_soon_threadsafe(task.cancel, INTERRUPT_MESSAGE)


@contextmanager
def cancel_on_interrupt() -> Iterator[None]:
    """While inside, SIGINT cancels the current task instead of interrupting the loop."""
    global _previous, _installed
    task = asyncio.current_task()
    if task is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _active:
        try:
            _previous = signal.signal(signal.SIGINT, _handle)
        except ValueError:  # not the main interpreter thread after all
            yield
            return
        _installed = True
    _active[task] = asyncio.get_running_loop()
    try:
        yield
    finally:
        _active.pop(task, None)
        if not _active and _installed:
            signal.signal(
                signal.SIGINT, _previous if _previous is not None else signal.default_int_handler
            )
            _previous, _installed = None, False
