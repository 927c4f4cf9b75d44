"""Ready-made handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from wfkit.agents.model import TaskContext
from wfkit.errors import ValidationError

__all__ = ["simulated_handler"]


def simulated_handler(time_scale: float = 1.0) -> Callable[[TaskContext], Awaitable[dict[str, Any]]]:
    """A handler for demos without real work: it waits ``estimated_duration * time_scale``
    seconds and returns the pattern document's result dict."""
    if time_scale < 0:
        raise ValidationError(
            f"simulated_handler: time_scale must be >= 0 (1.0 waits each task's "
            f"estimated_duration in seconds), got {time_scale!r}"
        )

    async def simulated(ctx: TaskContext) -> dict[str, Any]:
        delay = ctx.task.estimated_duration * time_scale
        await asyncio.sleep(delay)
        return {
            "task_id": ctx.task.task_id,
            "agent_id": ctx.agent.agent_id,
            "result": f"Task {ctx.task.description} completed by {ctx.agent.name}",
            "execution_time": delay,
        }

    return simulated
