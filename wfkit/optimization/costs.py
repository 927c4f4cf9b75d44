"""The cost model the simulator and every scheduler share: task durations and transfer delays.

``durations`` is one of

- ``None``: each task's ``estimated_duration``, on every agent;
- a mapping ``{task_id: seconds}`` or ``{task_id: {agent_id: seconds}}`` (the two forms mix);
  a task's mapping must name every available agent able to run it;
- a callable ``(task, agent) -> seconds``.

``comm_costs`` maps ``(upstream_id, downstream_id)`` (a dependency edge) to the delay paid when
the two tasks run on different agents, or is a callable ``(upstream_id, downstream_id) ->
seconds`` evaluated once per edge. Bad input fails here, before anything is scheduled.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import ScheduleError
from wfkit.graph import capable_agents

__all__ = ["DurationModel", "CommModel", "check_number"]

DurationsArg = Mapping[str, Any] | Callable[[WorkflowTask, AgentProfile], float] | None
CommArg = Mapping[tuple[str, str], float] | Callable[[str, str], float] | None


def check_number(value: Any, what: str) -> float:
    """``value`` as a float, or a ScheduleError naming ``what`` when it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ScheduleError(f"{what} must be a number of seconds >= 0, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ScheduleError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return value


class DurationModel:
    """How long each task takes on each agent (see the module docstring for the forms)."""

    def __init__(
        self,
        tasks: Mapping[str, WorkflowTask],
        agents: Sequence[AgentProfile],
        durations: DurationsArg = None,
        *,
        capable: Mapping[frozenset[str], list[AgentProfile]] | None = None,
    ) -> None:
        self.tasks = tasks
        self.capable = capable if capable is not None else capable_agents(tasks, agents)
        # per task: a float (same on every agent) or {agent_id: float}
        self.table: dict[str, float | dict[str, float]] | None = None
        self.fn: Callable[[WorkflowTask, AgentProfile], float] | None = None
        self.kind: str
        if isinstance(durations, DurationModel):  # already checked: share its figures
            self.kind, self.table, self.fn = durations.kind, durations.table, durations.fn
        elif durations is None:
            self.kind = "estimate"
        elif isinstance(durations, Mapping):
            self.kind = "matrix"
            self.table = self._check_matrix(durations, agents)
        elif callable(durations):
            self.kind = "callable"
            self.fn = durations
        else:
            raise ScheduleError(
                f"durations must be None, a mapping task_id -> {{agent_id: seconds}} or a "
                f"callable (task, agent) -> seconds, got {type(durations).__name__}"
            )

    def _check_matrix(
        self, durations: Mapping[str, Any], agents: Sequence[AgentProfile]
    ) -> dict[str, float | dict[str, float]]:
        known_agents = {a.agent_id for a in agents}
        unknown = [tid for tid in durations if tid not in self.tasks]
        if unknown:
            names = ", ".join(map(repr, sorted(map(str, unknown))[:5]))
            raise ScheduleError(
                f"durations has entries for unknown task(s) {names}: "
                f"use the task ids of the workflow"
            )
        table: dict[str, float | dict[str, float]] = {}
        for tid, task in self.tasks.items():
            if tid not in durations:
                raise ScheduleError(
                    f"durations has no entry for task {tid!r}: give every task a duration "
                    f"(a number, or {{agent_id: seconds}}), or pass a callable (task, agent)"
                )
            entry = durations[tid]
            if isinstance(entry, Mapping):
                row: dict[str, float] = {}
                for aid, value in entry.items():
                    if aid not in known_agents:
                        raise ScheduleError(
                            f"durations[{tid!r}] names agent {aid!r}, which is not one of the "
                            f"agents ({', '.join(sorted(known_agents))})"
                        )
                    row[aid] = check_number(value, f"durations[{tid!r}][{aid!r}]")
                for agent in self.capable[task.capability_set]:
                    if agent.agent_id not in row:
                        raise ScheduleError(
                            f"durations[{tid!r}] has no duration for agent {agent.agent_id!r}, "
                            f"which can run it: add it, or make that agent unavailable"
                        )
                table[tid] = row
            else:
                table[tid] = check_number(entry, f"durations[{tid!r}]")
        return table

    def __call__(self, task: WorkflowTask, agent: AgentProfile) -> float:
        if self.kind == "estimate":
            return float(task.estimated_duration)
        if self.table is not None:
            entry = self.table[task.task_id]
            return entry if isinstance(entry, float) else entry[agent.agent_id]
        assert self.fn is not None
        return check_number(
            self.fn(task, agent),
            f"durations({task.task_id!r}, {agent.agent_id!r}) (the callable's result)",
        )

    def means(self) -> dict[str, float]:
        """Each task's mean duration over the available agents able to run it (HEFT's w-bar)."""
        out: dict[str, float] = {}
        for tid, task in self.tasks.items():
            if self.table is not None and isinstance(self.table[tid], float):
                out[tid] = self.table[tid]  # type: ignore[assignment]
                continue
            cands = self.capable[task.capability_set]
            out[tid] = (
                sum(self(task, a) for a in cands) / len(cands)
                if cands else float(task.estimated_duration)
            )
        return out

    def matrix(self) -> dict[str, dict[str, float]]:
        """{task_id: {agent_id: seconds}} over the available agents able to run each task."""
        out: dict[str, dict[str, float]] = {}
        capable = self.capable
        ids = {sig: [a.agent_id for a in cands] for sig, cands in capable.items()}
        fromkeys = dict.fromkeys
        table = self.table
        if table is not None:
            for tid, task in self.tasks.items():
                entry = table[tid]
                if isinstance(entry, dict):
                    cands = capable[task.capability_set]
                    # a checked row names every capable agent: as long, it names only them
                    out[tid] = entry if len(entry) == len(cands) else {
                        a.agent_id: entry[a.agent_id] for a in cands
                    }
                else:
                    out[tid] = fromkeys(ids[task.capability_set], entry)
            return out
        if self.kind == "estimate":
            for tid, task in self.tasks.items():
                out[tid] = fromkeys(ids[task.capability_set], float(task.estimated_duration))
            return out
        for tid, task in self.tasks.items():
            out[tid] = {a.agent_id: self(task, a) for a in capable[task.capability_set]}
        return out


class CommModel:
    """Transfer delays on dependency edges, paid only across agents."""

    def __init__(self, tasks: Mapping[str, WorkflowTask], comm_costs: CommArg) -> None:
        self.cost: dict[tuple[str, str], float] = {}
        if comm_costs is None:
            return
        if isinstance(comm_costs, Mapping):
            for key, value in comm_costs.items():
                if not (isinstance(key, tuple) and len(key) == 2):
                    raise ScheduleError(
                        f"comm_costs keys are (upstream_id, downstream_id) pairs, got {key!r}"
                    )
                up, down = key
                task = tasks.get(down)
                if task is None or up not in task.dependencies:
                    raise ScheduleError(
                        f"comm_costs has {key!r}, which is not a dependency: task {down!r} "
                        f"does not depend on {up!r}"
                    )
                c = check_number(value, f"comm_costs[{key!r}]")
                if c:
                    self.cost[(up, down)] = c
        elif callable(comm_costs):
            for down, task in tasks.items():
                for up in task.dependencies:
                    c = check_number(
                        comm_costs(up, down), f"comm_costs({up!r}, {down!r}) (the callable's result)"
                    )
                    if c:
                        self.cost[(up, down)] = c
        else:
            raise ScheduleError(
                f"comm_costs must be a mapping (upstream_id, downstream_id) -> seconds or a "
                f"callable, got {type(comm_costs).__name__}"
            )

    def __bool__(self) -> bool:
        return bool(self.cost)

    def __call__(self, up: str, down: str) -> float:
        return self.cost.get((up, down), 0.0)
