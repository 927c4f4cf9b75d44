"""A text (or notebook) progress bar for long runs, from ``tqdm.auto``.

In a script or a log it is tqdm's text bar on stderr; in a notebook kernel, tqdm's widget.
The bar is an event subscriber like any other: it learns the run's size from ``RunStarted``
(and ``TaskMapped``) and its progress from the task events, and never looks at the run
itself. Its callback only counts; a timer draws a few times a second. The bar only appears
once a run has lasted ``delay`` seconds (short runs stay quiet) unless it was asked for
explicitly (``progress=True``); ``progress=False`` turns it off. A run followed by a live
:class:`wfkit.Dashboard` (a subscriber that ``shows_progress``) gets no default bar: the
dashboard already shows its progress.

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
from typing import Any, cast

from wfkit.events import (
    Event,
    EventSource,
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskMapped,
    TaskSkipped,
)
from wfkit.statuses import FINAL_STATUSES

__all__ = ["attach_progress"]

_INTERVAL = 0.2
_DELAY = 1.0
_ENDED = {TaskCompleted: "completed", TaskSkipped: "skipped", TaskCancelled: "cancelled"}


class _Counts:
    """What the events of one run said so far: its size, what ended and how it finished.
    The callback runs once per task event, so it only counts."""

    __slots__ = ("run_id", "workflow_id", "total", "done", "ended", "status", "resumed",
                 "started")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.workflow_id = ""
        self.total = 0
        self.done = 0  # tasks that ended, resumed ones included
        self.ended = dict.fromkeys(FINAL_STATUSES, 0)
        self.status: str | None = None
        self.resumed: frozenset[str] = frozenset()
        self.started = False

    def __call__(self, e: Event) -> None:
        if e.run_id != self.run_id:  # another run on the same bus (a sub-workflow's, say)
            return
        kind = type(e)
        status = _ENDED.get(kind)
        if status is not None:
            self.done += 1
            self.ended[status] += 1
        elif kind is TaskFailed:
            if cast(TaskFailed, e).final:
                self.done += 1
                self.ended["failed"] += 1
        elif kind is TaskMapped:
            mapped = cast(TaskMapped, e)
            self.total += mapped.count
            if self.resumed:  # children a resumed run had finished join as completed
                pid = mapped.task_id
                self.done += sum(f"{pid}[{c}]" in self.resumed for c in range(mapped.count))
        elif kind is RunStarted:
            started = cast(RunStarted, e)
            self.workflow_id = started.workflow_id
            self.total = len(started.task_ids)
            self.resumed = frozenset(started.resumed)
            self.done = sum(t in self.resumed for t in started.task_ids)
            self.started = True
        elif kind is RunFinished:
            self.status = cast(RunFinished, e).status


def attach_progress(
    source: EventSource, run_id: str, *, explicit: bool = False
) -> Callable[[], None]:
    """Show a bar for run ``run_id`` of ``source`` (anything with ``subscribe(callback)``)
    from its events, until the returned function is called (which also unsubscribes and ends
    the bar's timer, so nothing is left scheduled on the loop). Call it before the run starts:
    the bar appears with the run's ``RunStarted``."""
    from tqdm.auto import tqdm

    counts = _Counts(run_id)
    unsubscribe = source.subscribe(counts)
    bar: Any = None
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None
    closed = False

    def catch_up() -> None:
        nonlocal bar
        if bar is None:
            if not counts.started:
                return
            bar = tqdm(
                total=counts.total,
                desc=counts.workflow_id,
                unit="task",
                delay=0 if explicit else _DELAY,
                leave=True,  # the final line stays in logs and papermill outputs
                dynamic_ncols=True,
            )
        if counts.total != bar.total:  # grows as mapped tasks expand
            bar.total = counts.total
            bar.refresh()
        if counts.done > bar.n:
            bar.update(counts.done - bar.n)

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
        unsubscribe()
        if handle is not None:
            handle.cancel()
        catch_up()
        if bar is None:  # the run never started
            return
        ended = counts.ended
        if ended["cancelled"]:  # they never ran: a cancelled run's bar stops short of 100 %
            bar.n = max(0, bar.n - ended["cancelled"])
        problems = {k: v for k, v in ended.items() if k != "completed" and v}
        if problems:
            bar.set_postfix_str(", ".join(f"{v} {k}" for k, v in problems.items()), refresh=False)
        colour = bar_colour(bar, counts.status)
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
