"""A text (or notebook) progress bar for long runs, from ``tqdm.auto``.

It polls the run's state a few times a second instead of subscribing to events, so a run
with a progress bar costs no more per task than a run without one. The bar only appears once
a run has lasted ``delay`` seconds (short runs stay quiet) unless it was asked for explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["attach_progress"]

_INTERVAL = 0.2


def attach_progress(orchestrator: Any, run: Any, *, explicit: bool = False) -> Callable[[], None]:
    """Show a bar for ``run`` until the returned function is called."""
    from tqdm.auto import tqdm

    total = len(run.tasks)
    bar = tqdm(
        total=total,
        desc=run.workflow_id,
        unit="task",
        delay=0 if explicit else 1.0,
        leave=explicit,
        dynamic_ncols=True,
    )
    handle: list[Any] = [None]

    def refresh() -> None:
        done = len(run.state.finished)
        if done > bar.n:
            bar.update(done - bar.n)
        handle[0] = run._loop.call_later(_INTERVAL, refresh)

    def start() -> None:
        handle[0] = run._loop.call_later(_INTERVAL, refresh)

    import asyncio

    asyncio.get_running_loop().call_soon(start)

    def close() -> None:
        if handle[0] is not None:
            handle[0].cancel()
        done = len(run.state.finished)
        if done > bar.n:
            bar.update(done - bar.n)
        bar.close()

    return close
