"""Agent capacity shared by concurrent runs: how many tasks each agent runs right now.

An orchestrator owns one :class:`AgentPool` and hands it to every run it starts; the
simulator makes one per simulated run. The pool is the one place where capacity is
accounted: a run's :class:`~wfkit.agents.dispatch.RunState` takes a slot
(:meth:`AgentPool.acquire`) before it starts a task on an agent and gives it back
(:meth:`AgentPool.release`) on every transition out of ``running``, so two runs on the same
agents never exceed an agent's ``capacity`` between them. ``AgentProfile.current_load``
mirrors the pool's count for that agent (for users, policies and views); nothing reads it
back for accounting, so a stray write to it cannot break a run.

When a slot frees, the pool wakes every run that shares it: each run then dispatches from
its *own* callback, so a policy that raises ends its own run and never another one.

A running task may give its slot back while it only waits (for a sub-workflow, say) with
``async with pool.lent(agent): ...``: the slot goes to other work meanwhile, and the task
takes one again (waiting for it, ahead of newly dispatched tasks) before it carries on.

The pool is used from the event loop of its runs (one loop; it is not thread-safe).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from wfkit.agents.model import AgentProfile

__all__ = ["AgentPool"]


class AgentPool:
    """Slots in use per agent, shared by the runs of one orchestrator."""

    __slots__ = ("_load", "_wakers", "_waiting")

    def __init__(self) -> None:
        self._load: dict[AgentProfile, int] = {}
        self._wakers: list[Callable[[], None]] = []
        self._waiting: dict[AgentProfile, deque[asyncio.Future[None]]] = {}

    # -- queries -------------------------------------------------------------------------

    def load(self, agent: AgentProfile) -> int:
        """Tasks ``agent`` runs now, over every run that shares this pool."""
        return self._load.get(agent, 0)

    def has_room(self, agent: AgentProfile) -> bool:
        return self._load.get(agent, 0) < agent.capacity

    def with_room(self, agents: Iterable[AgentProfile]) -> list[AgentProfile]:
        """The agents that have a free slot, in the given order."""
        get = self._load.get
        return [a for a in agents if get(a, 0) < a.capacity]

    # -- slots ---------------------------------------------------------------------------

    def acquire(self, agent: AgentProfile) -> bool:
        """Take a slot on ``agent`` (the caller saw it had room). True when it is now full."""
        n = self._load.get(agent, 0) + 1
        self._load[agent] = n
        agent.current_load = n
        return n >= agent.capacity

    def release(self, agent: AgentProfile) -> None:
        """Give a slot on ``agent`` back: to a task waiting in :meth:`take` if there is one,
        else to every run (each is woken to dispatch)."""
        if self._waiting:
            waiting = self._waiting.get(agent)
            while waiting:
                fut = waiting.popleft()
                if not fut.done():
                    fut.set_result(None)  # the slot passes to the waiter: the count stays
                    return
            if waiting is not None:
                del self._waiting[agent]
        n = self._load.get(agent, 0) - 1
        if n > 0:
            self._load[agent] = n
        else:
            self._load.pop(agent, None)
            n = 0
        agent.current_load = n
        wakers = self._wakers
        if len(wakers) > 1:  # a lone run dispatches after its own transitions anyway
            for wake in tuple(wakers):
                wake()

    async def take(self, agent: AgentProfile) -> None:
        """Take a slot on ``agent``, waiting for one (first come, first served) when full."""
        if self.has_room(agent) and not self._waiting.get(agent):
            self.acquire(agent)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(agent, deque()).append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(agent)  # handed over just as we were cancelled: pass it on
            raise

    @asynccontextmanager
    async def lent(self, agent: AgentProfile) -> AsyncIterator[None]:
        """Inside a running task: free its slot on ``agent`` for the block, take one after.

        If the block (or the wait for a slot) is cancelled or raises, the slot is counted as
        held again at once, without waiting: the run's transition for the task then releases
        it as usual, so the counts stay balanced (the agent may show one task over capacity
        until then).
        """
        self.release(agent)
        try:
            yield
        except BaseException:
            self._hold(agent)
            raise
        try:
            await self.take(agent)
        except BaseException:
            self._hold(agent)
            raise

    def _hold(self, agent: AgentProfile) -> None:
        n = self._load[agent] = self._load.get(agent, 0) + 1
        agent.current_load = n

    # -- runs ----------------------------------------------------------------------------

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` whenever a slot frees; returns a function that unsubscribes."""
        self._wakers.append(wake)

        def unsubscribe() -> None:
            try:
                self._wakers.remove(wake)
            except ValueError:
                pass

        return unsubscribe

    def __repr__(self) -> str:
        busy = ", ".join(f"{a.agent_id}={n}/{a.capacity}" for a, n in self._load.items())
        return f"<AgentPool {busy or 'idle'}>"
