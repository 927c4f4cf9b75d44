"""A scheduling problem as the static planners see it: the graph, the agents, the cost model.

Built once per ``plan_schedule`` call: tasks by id in topological order, each task's duration
on every available agent able to run it (and, for the tasks that take the same on each, that
one figure), and the transfer delays of the edges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.graph import capable_agents, dependents_of, lower_bounds, topological_order
from wfkit.optimization.costs import CommArg, CommModel, DurationModel, DurationsArg
from wfkit.optimization.inputs import agent_list, task_map
from wfkit.optimization.schedule import Schedule

__all__ = ["Problem"]


class Problem:
    """Tasks, available agents and costs, checked and precomputed for the planners."""

    def __init__(
        self,
        tasks: Any,
        agents: Any,
        durations: DurationsArg = None,
        comm_costs: CommArg = None,
    ) -> None:
        self.tasks: dict[str, WorkflowTask] = task_map(tasks)
        self.all_agents: list[AgentProfile] = agent_list(agents)
        self.agents = [a for a in self.all_agents if a.availability]
        self.capable = capable_agents(self.tasks, self.agents)
        self.model = DurationModel(self.tasks, self.all_agents, durations, capable=self.capable)
        self.comm = CommModel(self.tasks, comm_costs)
        self.dependents = dependents_of(self.tasks)
        self.order = topological_order(self.tasks, self.dependents)  # raises CycleError
        self.index = {tid: i for i, tid in enumerate(self.order)}
        self._dur: dict[str, dict[str, float]] | None = None
        self.flat = self._flat()
        self.capacity = {a.agent_id: a.capacity for a in self.agents}
        self._bounds: dict[str, Any] | None = None

    @property
    def dur(self) -> dict[str, dict[str, float]]:
        """{task_id: {agent_id: seconds}} on the available agents able to run each task
        (built on first use: HEFT on tasks that take the same everywhere never needs it)."""
        if self._dur is None:
            self._dur = self.model.matrix()
        return self._dur

    def _flat(self) -> dict[str, float]:
        """{task_id: seconds} for the tasks that take the same time on every capable agent."""
        model = self.model
        if model.kind == "estimate":
            return {tid: float(t.estimated_duration) for tid, t in self.tasks.items()}
        table = model.table
        if table is None:
            rows: Mapping[str, Any] = self.dur
        else:
            rows = table
        out: dict[str, float] = {}
        capable = self.capable
        for tid, task in self.tasks.items():
            entry = rows[tid]
            if isinstance(entry, float):
                out[tid] = entry
                continue
            cands = capable[task.capability_set]
            values = (
                list(entry.values()) if len(entry) == len(cands)
                else [entry[a.agent_id] for a in cands]
            )
            lo = min(values)
            if lo == max(values):
                out[tid] = lo
        return out

    def candidates(self, tid: str) -> list[AgentProfile]:
        return self.capable[self.tasks[tid].capability_set]

    @property
    def bounds(self) -> dict[str, Any]:
        """:func:`wfkit.graph.lower_bounds` on each task's fastest capable agent."""
        if self._bounds is None:
            fastest = {tid: min(row.values()) for tid, row in self.dur.items()}
            self._bounds = lower_bounds(
                self.tasks, self.agents, lambda t: fastest[t.task_id]
            )
        return self._bounds

    @property
    def lower_bound(self) -> float:
        lb = float(self.bounds["bound"])
        if self.integral():
            lb = float(math.ceil(lb - 1e-9))  # integer durations: some optimum is integral
        return lb

    def integral(self) -> bool:
        """True when every duration and transfer delay is a whole number."""
        return all(float(v).is_integer() for row in self.dur.values() for v in row.values()) and (
            all(float(c).is_integer() for c in self.comm.cost.values())
        )

    def data_ready(
        self, tid: str, aid: str, agent_of: Mapping[str, str], finish: Mapping[str, float]
    ) -> float:
        """When every input of ``tid`` is available on agent ``aid``."""
        ready = 0.0
        cost = self.comm.cost
        for dep in self.tasks[tid].dependencies:
            f = finish[dep]
            if cost and agent_of[dep] != aid:
                f += cost.get((dep, tid), 0.0)
            if f > ready:
                ready = f
        return ready

    def retime(
        self,
        agent_of: Mapping[str, str],
        slot_of: Mapping[str, int],
        key: Mapping[str, float],
        *,
        method: str,
        info: dict[str, Any] | None = None,
    ) -> Schedule:
        """Keep each task's agent, slot and the order ``key`` gives; start every task as early
        as its slot and its inputs allow, with the true durations (a semi-active schedule).

        ``key`` must order every dependency before its dependents (planned start times do).
        """
        free: dict[tuple[str, int], float] = {}
        start: dict[str, float] = {}
        finish: dict[str, float] = {}
        index = self.index
        for tid in sorted(self.tasks, key=lambda t: (key[t], index[t])):
            aid = agent_of[tid]
            sl = (aid, slot_of[tid])
            s = max(free.get(sl, 0.0), self.data_ready(tid, aid, agent_of, finish))
            f = s + self.dur[tid][aid]
            start[tid], finish[tid] = s, f
            free[sl] = f
        return self.schedule(agent_of, slot_of, start, finish, method=method, info=info)

    def schedule(
        self,
        agent: Mapping[str, str],
        slot: Mapping[str, int],
        start: Mapping[str, float],
        finish: Mapping[str, float],
        *,
        method: str,
        optimal: bool | None = None,
        lower_bound: float | None = None,
        info: dict[str, Any] | None = None,
    ) -> Schedule:
        # the bound (and whether the plan meets it, then it is proven optimal) is computed on
        # first use: a plan made inside a run never needs it
        lb: Any = (lambda: self.lower_bound) if lower_bound is None else lower_bound
        makespan = max(finish.values(), default=0.0)
        return Schedule(
            task_ids=self.tasks,
            agent=agent,
            start=start,
            finish=finish,
            slot=slot,
            capacities=self.capacity,
            lower_bound=lb,
            method=method,
            optimal=optimal,
            makespan=makespan,
            info=info,
            model=(self.model, self.comm),
        )

