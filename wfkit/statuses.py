"""The statuses of a task, named once for the engine, sessions, stores, figures and views."""

from __future__ import annotations

__all__ = ["FINAL_STATUSES", "TASK_STATUSES"]

#: A task's last status in a run: it will not change any more.
FINAL_STATUSES = ("completed", "failed", "skipped", "cancelled")

#: Every status a task goes through, in the order views list them (``retrying``: waiting out
#: the delay before its next attempt).
TASK_STATUSES = ("pending", "running", "retrying", *FINAL_STATUSES)
