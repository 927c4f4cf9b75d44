"""Policies that plan, beside the planners: :class:`Heft` (``policy="heft"``, and what
``Schedule.to_policy()`` returns) and :class:`Cheapest` (which the optimiser may suggest).

They are :class:`~wfkit.agents.policies.Policy` subclasses like the engine's own; the engine
finds ``"heft"`` through :data:`~wfkit.agents.policies.POLICIES` without importing this layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.policies import Policy
from wfkit.errors import PolicyError
from wfkit.optimization.planpolicy import PlanFollower

__all__ = ["Heft", "Cheapest"]


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
        self.durations = durations
        self.comm_costs = comm_costs
        self.plan = plan
        self.clock = clock if clock is not None else time.monotonic
        self._run: Any = None  # this run's plan follower (set on the run's own copy)
        self._latest: list[Any] = [None]  # shared by the per-run copies: the latest follower

    def prepare(
        self, tasks: Mapping[str, WorkflowTask], agents: Sequence[AgentProfile]
    ) -> None:
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


class Cheapest(Policy):
    """The free candidate that does the task for the least money.

    The cost of a task on an agent is its expected duration (``durations[task][agent]`` when
    given, else ``agent.expected_duration(task)``) times the agent's rate (``rates``, else its
    ``performance_metrics["cost_per_second"]``, else 0). Ties go to the less loaded agent.
    """

    name = "cheapest"

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        durations: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.rates = dict(rates) if rates is not None else None
        self.durations = durations

    def _rate(self, agent: AgentProfile) -> float:
        if self.rates is not None:
            return float(self.rates.get(agent.agent_id, 0.0))
        rate: Any = (agent.performance_metrics or {}).get("cost_per_second", 0.0)
        return float(rate or 0.0)

    def _duration(self, task: WorkflowTask, agent: AgentProfile) -> float:
        if self.durations is not None:
            row = self.durations.get(task.task_id)
            if row is not None and agent.agent_id in row:
                return float(row[agent.agent_id])
        return agent.expected_duration(task)

    def select(self, task: WorkflowTask, candidates: Sequence[AgentProfile]) -> AgentProfile:
        return min(
            candidates,
            key=lambda a: (self._duration(task, a) * self._rate(a), a.current_load / a.capacity),
        )
