"""Policies the optimiser may suggest, beyond the engine's named ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.policies import Policy

__all__ = ["Cheapest"]


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
