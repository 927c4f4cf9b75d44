"""Policies choose which free, capable agent runs a ready task.

A policy sees one task and its *candidates*: the available agents that have every required
capability and free capacity, in registration order. It returns one of them, or ``None`` to
defer the task to a later dispatch (a plan that waits for a particular agent). The dispatcher
never lets a deferral stall a run: when nothing is running it falls back to ``least_loaded``.

The same policy classes drive the live engine and the simulator, so a what-if answer follows
the same choices a real run makes. Every run (live or simulated) works on its own copy
(:func:`resolve_policy` calls :meth:`Policy.fresh`), so state a policy keeps for a run (a
plan, a turn, a clock) is never shared by two runs that overlap.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import PolicyError, UnknownPolicyError

__all__ = [
    "Policy",
    "LeastLoaded",
    "Fastest",
    "RoundRobin",
    "Heft",
    "FunctionPolicy",
    "POLICIES",
    "resolve_policy",
]


class Policy:
    """Base class. Subclasses implement :meth:`select`; :meth:`prepare` runs once per run, on
    the run's own copy (:meth:`fresh`)."""

    name = "policy"

    def fresh(self) -> Policy:
        """The object one run uses: a shallow copy, so that :meth:`prepare` and :meth:`select`
        can keep per-run state in attributes without two overlapping runs sharing it.
        Override it when a shallow copy is not enough (mutable state made in ``__init__``
        and changed by ``select``)."""
        return copy.copy(self)

    def prepare(
        self, tasks: Mapping[str, WorkflowTask], agents: Sequence[AgentProfile]
    ) -> None:
        """Called at the start of a run with all tasks and the available agents."""

    def select(
        self, task: WorkflowTask, candidates: Sequence[AgentProfile]
    ) -> AgentProfile | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


class LeastLoaded(Policy):
    """The candidate with the lowest load relative to its capacity (first registered on ties)."""

    name = "least_loaded"

    def select(self, task: WorkflowTask, candidates: Sequence[AgentProfile]) -> AgentProfile:
        best = candidates[0]
        best_ratio = best.current_load / best.capacity
        for agent in candidates[1:]:
            ratio = agent.current_load / agent.capacity
            if ratio < best_ratio:
                best, best_ratio = agent, ratio
        return best


class Fastest(Policy):
    """The candidate expected to finish the task first, from durations learned in past runs.

    Every candidate has a free slot, so its expected finish time is now plus its expected
    duration (:meth:`AgentProfile.expected_duration`); ties go to the less loaded agent.
    """

    name = "fastest"

    def select(self, task: WorkflowTask, candidates: Sequence[AgentProfile]) -> AgentProfile:
        return min(
            candidates,
            key=lambda a: (a.expected_duration(task), a.current_load / a.capacity),
        )


class RoundRobin(Policy):
    """Agents take turns in registration order; a busy agent's turn passes to the next."""

    name = "round_robin"

    def __init__(self) -> None:
        self._order: dict[str, int] = {}
        self._next = 0

    def prepare(
        self, tasks: Mapping[str, WorkflowTask], agents: Sequence[AgentProfile]
    ) -> None:
        self._order = {a.agent_id: i for i, a in enumerate(agents)}
        self._next = 0

    def select(self, task: WorkflowTask, candidates: Sequence[AgentProfile]) -> AgentProfile:
        n = len(self._order) or 1
        nxt = self._next
        chosen = min(
            candidates, key=lambda a: (self._order.get(a.agent_id, 0) - nxt) % n
        )
        self._next = (self._order.get(chosen.agent_id, 0) + 1) % n
        return chosen


class Heft(Policy):
    """HEFT for a run: plan first, then execute the plan and adapt when reality drifts.

    :meth:`prepare` makes a HEFT plan (Topcuoglu, Hariri and Wu, 2002: upward ranks on mean
    durations, insertion-based earliest finish time) for the run's tasks and available agents,
    on each agent's ``expected_duration`` (its learned durations and speed) unless
    ``durations`` are given, with ``comm_costs`` when given; or it takes ``plan``, a
    :class:`wfkit.Schedule` (an exact plan, say). :meth:`select` then sends each task to its
    planned agent in the plan's order there, and moves it to another free agent only when that
    is expected to finish it strictly sooner without delaying that agent's planned work (see
    :mod:`wfkit.optimization.planpolicy`). ``clock`` gives seconds (``time.monotonic`` in a live
    run; the simulator substitutes virtual time). ``schedule`` is the plan of the current run.
    """

    name = "heft"

    def __init__(
        self,
        durations: Any = None,
        comm_costs: Any = None,
        *,
        plan: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.durations = durations
        self.comm_costs = comm_costs
        self.plan = plan
        self.clock = clock if clock is not None else time.monotonic
        self._run: Any = None  # this run's plan follower (set on the run's own copy)
        self._latest: list[Any] = [None]  # shared by the per-run copies: the latest follower

    def prepare(
        self, tasks: Mapping[str, WorkflowTask], agents: Sequence[AgentProfile]
    ) -> None:
        from wfkit.optimization.planpolicy import PlanFollower

        self._run = self._latest[0] = PlanFollower(
            tasks,
            agents,
            durations=self.durations,
            comm_costs=self.comm_costs,
            plan=self.plan,
            clock=self.clock,
        )

    @property
    def _follower(self) -> Any:
        """The plan follower of this run, or of the latest run prepared from this policy."""
        return self._run if self._run is not None else self._latest[0]

    @property
    def schedule(self) -> Any:
        """The plan of the latest run (live or simulated) this policy prepared, a
        ``wfkit.Schedule``; on a run's own copy, that run's plan."""
        follower = self._follower
        return None if follower is None else follower.plan

    def select(
        self, task: WorkflowTask, candidates: Sequence[AgentProfile]
    ) -> AgentProfile | None:
        if self._run is None:
            raise PolicyError("Heft.select() was called before Heft.prepare(tasks, agents)")
        return self._run.select(task, candidates)


class FunctionPolicy(Policy):
    """Wraps a user callable ``policy(task, candidates) -> AgentProfile``."""

    def __init__(self, fn: Callable[[WorkflowTask, list[AgentProfile]], Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def select(
        self, task: WorkflowTask, candidates: Sequence[AgentProfile]
    ) -> AgentProfile | None:
        chosen = self.fn(task, list(candidates))
        if chosen is None:
            return None
        if isinstance(chosen, str):  # an agent id is accepted too
            for agent in candidates:
                if agent.agent_id == chosen:
                    return agent
        elif any(chosen is a for a in candidates):
            return chosen
        offered = ", ".join(a.agent_id for a in candidates)
        raise PolicyError(
            f"policy {self.name!r} returned {chosen!r} for task {task.task_id!r}, which is not "
            f"one of the candidates it was offered ({offered}); return one of them or None"
        )


POLICIES: dict[str, type[Policy]] = {
    "least_loaded": LeastLoaded,
    "fastest": Fastest,
    "round_robin": RoundRobin,
    "heft": Heft,
}


def resolve_policy(policy: str | Policy | Callable[..., Any]) -> Policy:
    """A fresh policy object, for one run, from a name, a Policy instance (its
    :meth:`~Policy.fresh` copy) or a callable."""
    if isinstance(policy, Policy):
        return policy.fresh()
    if isinstance(policy, str):
        cls = POLICIES.get(policy)
        if cls is None:
            raise UnknownPolicyError(policy, POLICIES)
        return cls()
    if callable(policy):
        return FunctionPolicy(policy)
    raise UnknownPolicyError(policy, POLICIES)
