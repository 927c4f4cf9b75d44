"""A text (or notebook) progress bar for long runs, from ``tqdm.auto``.

In a script or a log it is tqdm's text bar on stderr; in a notebook kernel, tqdm's widget.
It polls the run's state a few times a second instead of subscribing to events, so a run
with a progress bar costs no more per task than a run without one. The bar only appears once
a run has lasted ``delay`` seconds (short runs stay quiet) unless it was asked for explicitly
(``progress=True``); ``progress=False`` turns it off. A run followed by a live
:class:`wfkit.Dashboard` gets no default bar: the dashboard already shows its progress.

When the run ends the bar takes the run's colour: red when a task failed, grey when the run
was cancelled (a finished bar of failed work must not look like a success), and cancelled
tasks do not count as progress (a cancelled run never shows 100 %). tqdm's widget
always shows it; a text bar does on a terminal (or with ``FORCE_COLOR``), never with
``NO_COLOR`` set, so logs keep no escape codes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["attach_progress"]

_INTERVAL = 0.2
_DELAY = 1.0


def _noop() -> None:
    return None


def attach_progress(orchestrator: Any, run: Any, *, explicit: bool = False) -> Callable[[], None]:
    """Show a bar for ``run`` until the returned function is called (which also ends the
    bar's timer, so nothing is left scheduled on the loop)."""
    if not explicit and _followed_by_dashboard(orchestrator):
        return _noop
    from tqdm.auto import tqdm

    total = len(run.tasks)
    bar = tqdm(
        total=total,
        desc=run.workflow_id,
        unit="task",
        delay=0 if explicit else _DELAY,
        leave=True,  # the final line stays in logs and papermill outputs
        dynamic_ncols=True,
    )
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None
    closed = False

    def catch_up() -> None:
        total = len(run.tasks)  # grows as mapped tasks expand
        if total != bar.total:
            bar.total = total
            bar.refresh()
        done = len(run.state.finished)
        if done > bar.n:
            bar.update(done - bar.n)

    def tick() -> None:
        nonlocal handle
        if closed:
            return
        catch_up()
        handle = loop.call_later(_INTERVAL, tick)

    handle = loop.call_later(_INTERVAL, tick)

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if handle is not None:
            handle.cancel()
        catch_up()
        counts = run.counts()
        if counts["cancelled"]:  # they never ran: a cancelled run's bar stops short of 100 %
            bar.n = max(0, bar.n - counts["cancelled"])
        problems = {k: v for k, v in counts.items() if k != "completed" and v}
        if problems:
            bar.set_postfix_str(", ".join(f"{v} {k}" for k, v in problems.items()), refresh=False)
        colour = bar_colour(bar, getattr(run, "status", None))
        if colour is not None:
            bar.colour = colour
        bar.close()

    return close


def bar_colour(bar: Any, status: str | None) -> str | None:
    """The colour a finished run's bar takes, or None to leave it as tqdm draws it."""
    from wfkit.colors import RUN_BAR_COLORS

    colour = RUN_BAR_COLORS.get(status or "")
    if colour is None or os.environ.get("NO_COLOR"):
        return None
    if hasattr(bar, "container"):  # tqdm.notebook: an ipywidgets bar
        return colour
    if status == "completed":
        return None  # a text bar that completed keeps the terminal's own colour
    stream = getattr(bar, "fp", None) or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if os.environ.get("FORCE_COLOR") or (callable(isatty) and isatty()):
        return colour
    return None


def _followed_by_dashboard(orchestrator: Any) -> bool:
    import sys

    dashboard = sys.modules.get("wfkit.jupyter.dashboard")
    return dashboard is not None and dashboard.follows(orchestrator)
