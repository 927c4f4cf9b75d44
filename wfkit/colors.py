"""The colours of task and run outcomes, shared by figures, tables, the dashboard and the
progress bars (kept apart from :mod:`wfkit.plots` so that a table or a text bar does not
import Plotly)."""

from __future__ import annotations

from typing import Any

from wfkit.statuses import TASK_STATUSES

__all__ = ["STATUS_COLORS", "RUN_BAR_COLORS", "status_color"]

#: Colour of each task / attempt / run status, shared by every figure and the dashboard.
STATUS_COLORS: dict[str, str] = {
    "pending": "#d3d8de",
    "running": "#1f77b4",
    "retrying": "#ff9f1c",
    "completed": "#2ca02c",
    "failed": "#d62728",
    "skipped": "#8c8c8c",
    "cancelled": "#9467bd",
    # completed from the result cache, without running (a shade of "completed")
    "cached": "#a6d96a",
}
assert tuple(STATUS_COLORS)[:-1] == TASK_STATUSES  # every task status, in the views' order

#: A finished run's progress bar (tqdm's and the dashboard's): green when it completed, red
#: when a task failed, grey when it was cancelled (it did not finish, nothing went wrong).
RUN_BAR_COLORS: dict[str, str] = {
    "completed": STATUS_COLORS["completed"],
    "failed": STATUS_COLORS["failed"],
    "cancelled": "#8c8c8c",
}

#: Attempt statuses of a Gantt chart that are not task statuses.
_ATTEMPT_COLORS = {"failed, retried": "#ff9f1c"}
_UNKNOWN_COLOR = "#7f7f7f"


def status_color(status: Any) -> str:
    if not isinstance(status, str):
        return _UNKNOWN_COLOR
    return STATUS_COLORS.get(status) or _ATTEMPT_COLORS.get(status, _UNKNOWN_COLOR)
