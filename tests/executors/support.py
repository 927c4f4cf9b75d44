"""What the executor tests share: running a workflow on an executor, and waiting on worker
processes (polling with a deadline, never a fixed sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator


def dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet (gone for our purposes)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def run(tasks: list[Any], executor: Any, agents: list[AgentProfile] | None = None, **kw: Any):
    """Run ``tasks`` with ``executor`` (one agent "a" with capability "cpu" and capacity 2 by
    default); returns the result and every event."""
    orch = CollectiveAgentWorkflowOrchestrator(executor=executor, backoff=0.01, progress=False)
    for a in agents or [AgentProfile("a", "a", ["cpu"], capacity=2)]:
        orch.register_agent(a)
    events: list[Any] = []
    orch.subscribe(events.append)
    await orch.create_workflow("wf", tasks)
    result = await orch.execute_workflow("wf", **kw)
    return result, events
