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
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import PolicyError, UnknownPolicyError

__all__ = [
    "Policy",
    "PolicyLike",
    "LeastLoaded",
    "Fastest",
    "RoundRobin",
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
        for agent in candidates:  # the first again: cheaper than a slice, once per task
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


# The named policies. A policy defined in a higher layer is named by reference
# ("module:class") and loaded on first use, so that this layer never imports it: "heft" plans,
# and planning lives in wfkit.optimization. Users may add their own names (a class or a
# reference).
POLICIES: dict[str, type[Policy] | str] = {
    "least_loaded": LeastLoaded,
    "fastest": Fastest,
    "round_robin": RoundRobin,
    "heft": "wfkit.optimization.policies:Heft",
}


def resolve_policy(policy: PolicyLike) -> Policy:
    """A fresh policy object, for one run, from a name, a Policy instance (its
    :meth:`~Policy.fresh` copy) or a callable."""
    if isinstance(policy, Policy):
        return policy.fresh()
    if isinstance(policy, str):
        cls = POLICIES.get(policy)
        if cls is None:
            raise UnknownPolicyError(policy, POLICIES)
        if isinstance(cls, str):
            cls = POLICIES[policy] = _load(cls)
        return cls()
    if callable(policy):
        return FunctionPolicy(policy)
    raise UnknownPolicyError(policy, POLICIES)


def _load(reference: str) -> type[Policy]:
    """The policy class a ``"module:class"`` entry of :data:`POLICIES` names."""
    module, _, name = reference.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise PolicyError(f"POLICIES entry {reference!r} is not a Policy subclass")
    return cls


# What ``policy=`` accepts everywhere: a name of :data:`POLICIES`, a :class:`Policy`, or a
# callable ``policy(task, candidates) -> agent`` (None: wait for another agent).
PolicyLike = (
    str | Policy | Callable[[WorkflowTask, Sequence[AgentProfile]], AgentProfile | None]
)
