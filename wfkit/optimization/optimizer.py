"""The workflow optimiser: suggestions learned from recorded runs and proven by simulation.

``WorkflowOptimizer(orchestrator, metrics=None).optimize_workflow(workflow_id, goals)``:

1. reads the workflow's recorded runs (see :mod:`wfkit.optimization.history`) for the
   ``current_metrics`` (execution time = makespan, resource usage = utilisation, success rate,
   cost from each agent's ``performance_metrics["cost_per_second"]``) and learns durations and
   failure rates from them;
2. simulates the workflow as it is configured now on the learned durations (the baseline);
3. for each goal, tries concrete changes on copies of the tasks and agents, simulates each, and
   keeps those that improve the goal's metric: re-prioritising by upward rank, the HEFT policy,
   an exact CP-SAT plan, one more slot on the agent whose class bounds the makespan, granting
   that class's capabilities to idle agents, adding an agent like one of that class
   (``reduce_execution_time``); removing capacity no schedule needs (``reduce_resource_usage``);
   retries for tasks that failed in history (``improve_success_rate``); dropping agents whose
   work is cheaper elsewhere (``reduce_cost``). ``allow`` says which kinds of change are
   acceptable (:data:`CHANGES`): a makespan at the lower bound of *these* agents is no reason
   to stop, since the pool is what can change;
4. combines the suggestions greedily under the :class:`OptimizationMetric` score (weights and
   targets) into ``optimized_workflow``. The live orchestrator is never modified.

Every ``expected_improvement`` is a fraction of the simulated baseline (0.25 = a quarter
better), and each suggestion carries the simulated figures behind it.
"""

from __future__ import annotations

import asyncio
import copy
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import UnknownWorkflowError, ValidationError
from wfkit.graph import capable_agents, lower_bounds, upward_ranks
from wfkit.optimization.history import History, Learned, learn, load_history
from wfkit.optimization.inputs import copy_agent
from wfkit.optimization.simulator import simulate

if TYPE_CHECKING:
    from wfkit.agents.orchestrator import CollectiveAgentWorkflowOrchestrator

__all__ = ["OptimizationMetric", "WorkflowOptimizer", "GOALS", "METRICS", "CHANGES"]

GOALS: dict[str, str] = {
    "reduce_execution_time": "execution_time",
    "reduce_resource_usage": "resource_usage",
    "improve_success_rate": "success_rate",
    "reduce_cost": "cost",
}
METRICS = ("execution_time", "resource_usage", "success_rate", "cost")
# the kinds of change a suggestion may make (``allow=``), and those allowed by default
CHANGES = ("capacity", "capabilities", "agents", "policy", "priorities")
DEFAULT_CHANGES = ("capacity", "agents", "policy", "priorities")
IDLE = 0.5  # an agent busy at most this fraction of the makespan is idle enough to take work
LOWER_IS_BETTER = frozenset({"execution_time", "cost"})


@dataclass
class OptimizationMetric:
    """One term of the optimiser's score: a metric, its current value, a weight and a target.

    ``metric_name`` is ``execution_time`` (seconds, lower is better), ``cost`` (lower is
    better), ``success_rate`` (0..1, higher is better) or ``resource_usage`` (utilisation 0..1,
    higher is better). A configuration scores ``sum(weight x achievement) / sum(weight)``, where
    achievement is ``min(1, target / value)`` for lower-is-better metrics and
    ``min(1, value / target)`` otherwise; ``target_value=None`` takes the optimiser's default
    (the makespan lower bound of the agents, or the critical path when ``allow`` lets the pool
    grow; the cheapest possible cost, a success rate of 1, full use).
    """

    metric_name: str
    value: float = 0.0
    weight: float = 1.0
    target_value: float | None = None

    def __post_init__(self) -> None:
        if self.metric_name not in METRICS:
            raise ValidationError(
                f"unknown optimisation metric {self.metric_name!r}: use one of "
                f"{', '.join(map(repr, METRICS))}"
            )
        for name in ("value", "weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValidationError(f"OptimizationMetric.{name} must be a number, got {v!r}")
        if self.weight < 0:
            raise ValidationError(f"OptimizationMetric.weight must be >= 0, got {self.weight!r}")
        if self.target_value is not None and (
            isinstance(self.target_value, bool)
            or not isinstance(self.target_value, numbers.Real)
            or self.target_value < 0
        ):
            raise ValidationError(
                f"OptimizationMetric.target_value must be a number >= 0 or None, "
                f"got {self.target_value!r}"
            )

    @property
    def lower_is_better(self) -> bool:
        return self.metric_name in LOWER_IS_BETTER

    def achievement(self, value: float | None, target: float | None = None) -> float:
        """How close ``value`` is to the target, from 0 to 1 (1 = met)."""
        target = self.target_value if self.target_value is not None else target
        if value is None or target is None:
            return 1.0
        if self.lower_is_better:
            return 1.0 if value <= target or value <= 0 else target / value
        if target <= 0:
            return 1.0
        return min(1.0, value / target)


# -- configurations under study --------------------------------------------------------------


@dataclass
class _Config:
    tasks: list[WorkflowTask]
    agents: list[AgentProfile]
    policy: Any  # what the orchestrator would be given
    plan_with: str | None = None  # "heft" / "exact": the policy is built on learned durations
    applied: list[str] = field(default_factory=list)

    def replace(self, **kw: Any) -> _Config:
        out = _Config(self.tasks, self.agents, self.policy, self.plan_with, list(self.applied))
        for k, v in kw.items():
            setattr(out, k, v)
        return out

    def key(self) -> tuple[Any, ...]:
        return (
            tuple((t.task_id, t.priority, t.retries) for t in self.tasks),
            tuple(
                (a.agent_id, a.capacity, a.availability, a.capability_set) for a in self.agents
            ),
            self.plan_with or repr(self.policy),
        )


@dataclass
class _Suggestion:
    info: dict[str, Any]
    transform: Callable[[_Config], _Config]
    gain: float = 0.0


def _switch_policy(policy: str, plan_with: str, step: str) -> Callable[[_Config], _Config]:
    """Run a configuration with a policy the optimiser builds on learned durations
    (``plan_with``), recording ``step`` among the applied changes."""

    def transform(c: _Config) -> _Config:
        return c.replace(policy=policy, plan_with=plan_with, applied=[*c.applied, step])

    return transform


def _policy_change(policy: Any, to: str) -> list[dict[str, Any]]:
    """A suggestion's ``changes`` entry for running with another policy than ``policy``."""
    return [{"object": "policy", "field": "policy", "from": _policy_name(policy), "to": to}]


def _policy_name(policy: Any) -> Any:
    """How a suggestion names a policy: its ``name``, else the value as given."""
    return getattr(policy, "name", policy)


def _describe_caps(caps: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(caps)) + "}" if caps else "{no capabilities}"


def _rel(before: float | None, after: float | None, lower_is_better: bool) -> float:
    """The relative improvement from ``before`` to ``after`` (positive = better)."""
    if before is None or after is None:
        return 0.0
    if before == 0:
        return 0.0 if after == before else (-1.0 if lower_is_better else 1.0)
    change = (before - after) / before if lower_is_better else (after - before) / before
    return change


class WorkflowOptimizer:
    """Suggestions for a workflow of ``orchestrator``, proven by simulation.

    ``metrics`` is where recorded runs come from (``AdvancedWorkflowMetrics``, a ``RunStore``
    or anything with ``task_frame()``); without it the orchestrator's store, then its last
    result of the workflow, are used. ``time_limit`` bounds each exact plan (seconds);
    ``samples`` is the number of seeded simulations behind a success-rate figure;
    ``min_improvement`` is the smallest relative gain worth suggesting.
    """

    def __init__(
        self,
        orchestrator: CollectiveAgentWorkflowOrchestrator,
        metrics: Any = None,
        *,
        time_limit: float = 5.0,
        samples: int = 200,
        min_improvement: float = 0.001,
    ) -> None:
        if not hasattr(orchestrator, "workflows") or not hasattr(orchestrator, "agents"):
            raise ValidationError(
                "WorkflowOptimizer needs a CollectiveAgentWorkflowOrchestrator, got "
                f"{type(orchestrator).__name__}"
            )
        self.orchestrator = orchestrator
        self.metrics = metrics
        self.time_limit = time_limit
        self.samples = samples
        self.min_improvement = min_improvement
        self.optimization_metrics: list[OptimizationMetric] = []

    def add_optimization_metric(self, metric: OptimizationMetric) -> OptimizationMetric:
        """Add a term to the score (a metric of the same name is replaced)."""
        if not isinstance(metric, OptimizationMetric):
            raise ValidationError(
                f"add_optimization_metric() takes an OptimizationMetric, got "
                f"{type(metric).__name__}"
            )
        self.optimization_metrics = [
            m for m in self.optimization_metrics if m.metric_name != metric.metric_name
        ] + [metric]
        return metric

    async def optimize_workflow(
        self,
        workflow_id: str,
        optimization_goals: Iterable[str] | str | None = None,
        *,
        allow: Iterable[str] | str | None = None,
    ) -> dict[str, Any]:
        """Current metrics, simulated suggestions and the optimised workflow (see module doc).

        ``allow`` names the kinds of change that are acceptable: ``"capacity"`` (slots of
        agents), ``"capabilities"`` (granting capabilities to agents), ``"agents"`` (adding or
        dropping agents), ``"policy"`` and ``"priorities"``; by default all but
        ``"capabilities"``. The simulations and the exact planner run in a worker thread, so a
        notebook stays responsive; the orchestrator's objects are copied first and never
        changed.
        """
        goals = self._goals(optimization_goals)
        self._allow = self._allowed(allow)
        wf = self.orchestrator.workflows.get(workflow_id)
        if wf is None:
            raise UnknownWorkflowError(workflow_id, self.orchestrator.workflows)
        tasks = [copy.copy(t) for t in wf["tasks"]]
        for t in tasks:
            t.status = "pending"
        agents = [copy_agent(a) for a in self.orchestrator.agents.values()]
        policy = self.orchestrator.policy
        history = load_history(self.orchestrator, self.metrics, workflow_id)
        return await asyncio.to_thread(
            self._optimize, workflow_id, goals, tasks, agents, policy, history
        )

    # -- the work ------------------------------------------------------------------------------

    @staticmethod
    def _allowed(allow: Iterable[str] | str | None) -> frozenset[str]:
        if allow is None:
            return frozenset(DEFAULT_CHANGES)
        if isinstance(allow, str):
            allow = [allow]
        out = set()
        for kind in allow:
            if kind not in CHANGES:
                raise ValidationError(
                    f"unknown kind of change {kind!r} in allow=: use some of "
                    f"{', '.join(map(repr, CHANGES))}"
                )
            out.add(kind)
        return frozenset(out)

    @staticmethod
    def _goals(goals: Iterable[str] | str | None) -> list[str]:
        if goals is None:
            return list(GOALS)
        if isinstance(goals, str):
            goals = [goals]
        out = []
        for g in goals:
            if g not in GOALS:
                raise ValidationError(
                    f"unknown optimisation goal {g!r}: use one of {', '.join(map(repr, GOALS))}"
                )
            if g not in out:
                out.append(g)
        if not out:
            raise ValidationError("optimize_workflow() needs at least one goal")
        return out

    def _optimize(
        self,
        workflow_id: str,
        goals: list[str],
        tasks: list[WorkflowTask],
        agents: list[AgentProfile],
        policy: Any,
        history: History | None,
    ) -> dict[str, Any]:
        by_id = {t.task_id: t for t in tasks}
        available = [a for a in agents if a.availability]
        capable = capable_agents(by_id, available)
        self._learned: Learned = learn(by_id, available, capable, history)
        self._rates: dict[str, float] = {}
        for a in agents:
            rate = (a.performance_metrics or {}).get("cost_per_second")
            if isinstance(rate, numbers.Real) and not isinstance(rate, bool):
                self._rates[a.agent_id] = float(rate)
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._plans: dict[tuple[Any, ...], Any] = {}
        self._clones: dict[str, str] = {}  # added agent -> the agent it is like
        self._notes: list[str] = []
        baseline = _Config(tasks, agents, policy)
        base = self._evaluate(baseline)
        bounds = self._bounds(baseline)
        # the best conceivable makespan: the bound of these agents, or, when the pool may
        # grow, the critical path (no number of agents beats it)
        pool_may_grow = bool(self._allow & {"capacity", "agents", "capabilities"})
        targets = {
            "execution_time": bounds["critical_path"] if pool_may_grow else bounds["bound"],
            "cost": self._cheapest_cost(baseline),
            "success_rate": 1.0,
            "resource_usage": 1.0,
        }
        terms = self.optimization_metrics or [
            OptimizationMetric(GOALS[g], float(base[GOALS[g]] or 0.0), 1.0) for g in goals
        ]

        def score(m: dict[str, Any]) -> float:
            total = sum(t.weight for t in terms) or 1.0
            return sum(
                t.weight * t.achievement(m.get(t.metric_name), targets[t.metric_name])
                for t in terms
            ) / total

        suggestions: list[_Suggestion] = []
        makers = {
            "reduce_execution_time": self._faster,
            "reduce_resource_usage": self._leaner,
            "improve_success_rate": self._sturdier,
            "reduce_cost": self._cheaper,
        }
        for goal in goals:
            for s in makers[goal](baseline, base, bounds):
                s.gain = score(s.info["simulated"]) - score(base)
                suggestions.append(s)

        # combine: strongest first, each kept only if the combined score improves
        current, current_m = baseline, base
        for s in sorted(suggestions, key=lambda s: -s.gain):
            candidate = s.transform(current)
            m = self._evaluate(candidate)
            if score(m) > score(current_m) + 1e-12:
                current, current_m = candidate, m
                s.info["applied"] = True
            else:
                s.info["applied"] = False
        optimized_policy = self._policy_object(current)
        return {
            "workflow_id": workflow_id,
            "goals": goals,
            "allow": sorted(self._allow),
            "current_metrics": self._current_metrics(history, available, base),
            "optimization_suggestions": [s.info for s in suggestions],
            "optimized_workflow": {
                "tasks": current.tasks,
                "agents": current.agents,
                "policy": optimized_policy,
            },
            "expected_metrics": {k: current_m[k] for k in METRICS},
            "expected_improvement": {
                k: _rel(base[k], current_m[k], k in LOWER_IS_BETTER) for k in METRICS
            },
            "score": {"current": score(base), "optimized": score(current_m)},
            "targets": targets,
            "learned_durations": self._learned.durations,
            "failure_rates": dict(self._learned.failure_rate),
            "lower_bounds": {
                "critical_path": bounds["critical_path"],
                "total": bounds["total"],
                "classes": {_describe_caps(k): v for k, v in bounds["classes"].items()},
                "energy": bounds["energy"],
                "bound": bounds["bound"],
            },
            "notes": self._notes,
        }

    # -- evaluation ----------------------------------------------------------------------------

    def _matrix(self, config: _Config) -> dict[str, dict[str, float]]:
        """Learned durations on the configuration's available agents: an added agent takes
        those of the agent it is like; a pair never seen (a granted capability) the task's
        base duration times the agent's observed speed."""
        learned = self._learned
        here = [a for a in config.agents if a.availability]
        out: dict[str, dict[str, float]] = {}
        for t in config.tasks:
            tid = t.task_id
            row = learned.durations.get(tid, {})
            mine: dict[str, float] = {}
            for a in here:
                aid = a.agent_id
                d = row.get(aid)
                if d is None:
                    if not a.can_run(t.capability_set):
                        continue
                    like = self._clones.get(aid, aid)
                    d = row.get(like)
                    if d is None:
                        d = learned.base.get(tid, t.estimated_duration) * learned.speed.get(
                            like, 1.0
                        )
                mine[aid] = d
            out[tid] = mine
        return out

    def _policy_object(self, config: _Config) -> Any:
        from wfkit.optimization.policies import Heft

        if config.plan_with == "heft":
            return Heft(durations=self._matrix(config))
        if config.plan_with == "exact":
            return Heft(plan=self._exact_plan(config))
        if config.plan_with == "cheapest":
            from wfkit.optimization.policies import Cheapest

            return Cheapest(rates=self._rates, durations=self._matrix(config))
        return config.policy

    def _exact_plan(self, config: _Config) -> Any:
        from wfkit.optimization.planning import plan_schedule

        key = config.key()[:2]
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_schedule(
                config.tasks,
                config.agents,
                method="exact",
                time_limit=self.time_limit,
                durations=self._matrix(config),
            )
            self._plans[key] = plan
        return plan

    def _evaluate(self, config: _Config) -> dict[str, Any]:
        key = config.key()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        matrix = self._matrix(config)
        sched = simulate(
            config.tasks, config.agents, policy=self._policy_object(config), durations=matrix
        )
        cost: float | None = None
        if self._rates:
            cost = sum(
                (sched.finish[t] - sched.start[t]) * self._rates.get(a or "", 0.0)
                for t, a in sched.agent.items()
            )
        success = 1.0
        present = {t.task_id for t in config.tasks}
        failures = {
            tid: p for tid, p in self._learned.failure_rate.items() if tid in present
        }
        mc_makespan = None
        if failures and self.samples:
            rates, spans = [], []
            for seed in range(self.samples):
                s = simulate(
                    config.tasks, config.agents, policy=self._policy_object(config),
                    durations=matrix, failures=failures, seed=seed, backoff=0.0,
                )
                rates.append(s.success_rate)
                spans.append(s.makespan)
            success = sum(rates) / len(rates)
            mc_makespan = sum(spans) / len(spans)
        capacity = sum(a.capacity for a in config.agents if a.availability)
        out = {
            "execution_time": sched.makespan,
            "resource_usage": sched.mean_utilization,
            "success_rate": success,
            "cost": cost,
            "reserved_capacity": capacity * sched.makespan,
            "capacity": capacity,
            "execution_time_with_failures": mc_makespan,
            "schedule": sched,
        }
        self._cache[key] = out
        return out

    def _bounds(self, config: _Config) -> dict[str, Any]:
        matrix = self._matrix(config)
        by_id = {t.task_id: t for t in config.tasks}
        return lower_bounds(
            by_id,
            config.agents,
            agent_duration=lambda t, a: matrix[t.task_id][a.agent_id],
        )

    def _cheapest_cost(self, config: _Config) -> float | None:
        if not self._rates:
            return None
        return sum(
            min(d * self._rates.get(aid, 0.0) for aid, d in row.items())
            for row in self._matrix(config).values()
            if row
        )

    def _current_metrics(
        self, history: History | None, agents: Sequence[AgentProfile], base: dict[str, Any]
    ) -> dict[str, Any]:
        simulated = {k: base[k] for k in METRICS}
        if history is None or not len(history.runs):
            self._notes.append(
                "no recorded runs of this workflow: current metrics are simulated on the "
                "tasks' estimated durations"
            )
            return {**simulated, "runs": 0, "source": "simulation", "simulated": simulated}
        capacity = sum(a.capacity for a in agents) or 1
        per_run: list[dict[str, Any]] = []
        attempts = history.attempts
        for r in history.runs.itertuples(index=False):
            rows = attempts[attempts["run_id"] == r.run_id]
            busy = float(rows["duration"].fillna(0).sum())
            cost = None
            if self._rates:
                cost = float(
                    sum(
                        (d if d == d else 0.0) * self._rates.get(str(a), 0.0)
                        for d, a in zip(rows["duration"], rows["agent_id"], strict=True)
                    )
                )
            per_run.append(
                {
                    "run_id": str(r.run_id),
                    "execution_time": float(r.makespan),
                    "resource_usage": busy / (capacity * r.makespan) if r.makespan > 0 else 0.0,
                    "success_rate": r.completed / r.total if r.total else 1.0,
                    "cost": cost,
                }
            )

        def mean(key: str) -> float | None:
            values = [float(p[key]) for p in per_run if p[key] is not None]
            return sum(values) / len(values) if values else None

        return {
            "execution_time": mean("execution_time"),
            "resource_usage": mean("resource_usage"),
            "success_rate": mean("success_rate"),
            "cost": mean("cost"),
            "runs": len(per_run),
            "source": history.source,
            "last_run": per_run[-1],
            "simulated": simulated,
        }

    def _suggestion(
        self,
        *,
        kind: str,
        goal: str,
        description: str,
        reason: str,
        changes: list[dict[str, Any]],
        base: dict[str, Any],
        simulated: dict[str, Any],
        transform: Callable[[_Config], _Config],
    ) -> _Suggestion | None:
        metric = GOALS[goal]
        before, after = base[metric], simulated[metric]
        if goal == "reduce_resource_usage":  # what shrinks is reserved capacity x time
            before, after = base["reserved_capacity"], simulated["reserved_capacity"]
        improvement = _rel(before, after, goal != "improve_success_rate")
        if improvement < self.min_improvement:
            return None
        info = {
            "type": kind,
            "goal": goal,
            "metric": metric,
            "description": description,
            "reason": reason,
            "changes": changes,
            "baseline": base[metric],
            "expected": simulated[metric],
            "expected_improvement": improvement,
            "simulated": {k: simulated[k] for k in (*METRICS, "capacity", "reserved_capacity")},
        }
        return _Suggestion(info, transform)

    # -- goals ---------------------------------------------------------------------------------

    def _faster(
        self, baseline: _Config, base: dict[str, Any], bounds: dict[str, Any]
    ) -> list[_Suggestion]:
        out: list[_Suggestion] = []
        t0 = base["execution_time"]
        cp = bounds["critical_path"]
        allow = self._allow
        if t0 <= bounds["bound"] * (1 + 1e-9):
            self._notes.append(
                f"the simulated makespan {t0:.4g} s already meets the lower bound "
                f"{bounds['bound']:.4g} s: no schedule on these agents is faster, so only a "
                f"change of the pool can help (allowed: {', '.join(sorted(allow)) or 'none'})"
            )
            out += self._pool_changes(baseline, base, bounds)
            return out

        # 1. priorities by upward rank on the learned durations
        matrix = self._learned.durations
        mean = {tid: sum(r.values()) / len(r) for tid, r in matrix.items() if r}
        by_id = {t.task_id: t for t in baseline.tasks}
        rank = upward_ranks(by_id, duration=lambda t: mean.get(t.task_id, t.estimated_duration))
        new_prio = {tid: round(r, 9) for tid, r in rank.items()}

        def reprioritise(c: _Config) -> _Config:
            tasks = []
            for t in c.tasks:
                t2 = copy.copy(t)
                t2.priority = new_prio[t.task_id]
                tasks.append(t2)
            return c.replace(tasks=tasks, applied=[*c.applied, "prioritise_by_rank"])

        cand = reprioritise(baseline)
        m = self._evaluate(cand) if "priorities" in allow else base
        s = self._suggestion(
            kind="prioritise_by_rank",
            goal="reduce_execution_time",
            description=(
                "set each task's priority to its upward rank (the longest remaining path to the "
                "end, on learned durations), so the dispatcher starts critical work first"
            ),
            reason=(
                f"critical path {cp:.4g} s vs simulated makespan {t0:.4g} s; by rank, "
                f"the same agents finish in {m['execution_time']:.4g} s"
            ),
            changes=[
                {"object": "task", "id": tid, "field": "priority", "from": by_id[tid].priority,
                 "to": p}
                for tid, p in new_prio.items() if by_id[tid].priority != p
            ],
            base=base, simulated=m, transform=reprioritise,
        )
        if s:
            out.append(s)

        # 2. the HEFT policy on learned durations
        if "policy" in allow and not (
            isinstance(baseline.policy, str) and baseline.policy == "heft"
        ):
            use_heft = _switch_policy("heft", "heft", "heft_policy")
            m = self._evaluate(use_heft(baseline))
            s = self._suggestion(
                kind="heft_policy",
                goal="reduce_execution_time",
                description=(
                    "run with policy=\"heft\": plan every task's agent and order by HEFT on the "
                    "learned durations, adapting when tasks run long or short"
                ),
                reason=(
                    f"with policy {_policy_name(baseline.policy)!r} the "
                    f"simulated makespan is {t0:.4g} s; HEFT's plan gives "
                    f"{m['execution_time']:.4g} s (lower bound {bounds['bound']:.4g} s)"
                ),
                changes=_policy_change(baseline.policy, "heft"),
                base=base, simulated=m, transform=use_heft,
            )
            if s:
                out.append(s)

        # 3. an exact plan
        if "policy" in allow:
            use_exact = _switch_policy("exact plan", "exact", "exact_plan")
            cand = use_exact(baseline)
            plan = self._exact_plan(cand)
            m = self._evaluate(cand)
            proof = "proven optimal" if plan.optimal else (
                f"within {plan.gap:.1%} of the proven bound {plan.lower_bound:.4g} s"
            )
            s = self._suggestion(
                kind="exact_plan",
                goal="reduce_execution_time",
                description=(
                    "execute an exact (CP-SAT) plan: policy=Heft(plan=plan) runs its agents and "
                    "order, adapting when durations drift"
                ),
                reason=(
                    f"the CP-SAT plan on learned durations has makespan {plan.makespan:.4g} s "
                    f"({proof}); simulated {t0:.4g} s -> {m['execution_time']:.4g} s"
                ),
                changes=_policy_change(baseline.policy, "Heft(plan=exact plan)"),
                base=base, simulated=m, transform=use_exact,
            )
            if s:
                out.append(s)
        # 4. changes of the pool
        out += self._pool_changes(baseline, base, bounds)
        if abs(t0 - cp) <= 1e-9 * max(1.0, cp):
            self._notes.append(
                f"the critical path ({cp:.4g} s) bounds the makespan: only faster agents for "
                f"its tasks can shorten it"
            )
        return out

    def _pool_changes(
        self, baseline: _Config, base: dict[str, Any], bounds: dict[str, Any]
    ) -> list[_Suggestion]:
        """More of what bounds the makespan: one more slot on an agent, the bounding class's
        capabilities granted to idle agents, an agent like one of that class (as allowed)."""
        out: list[_Suggestion] = []
        t0 = base["execution_time"]
        cp = bounds["critical_path"]
        allow = self._allow
        if "capacity" in allow:
            out += self._more_capacity(baseline, base, bounds)
        limit = max(bounds["classes"].items(), key=lambda kv: kv[1], default=None)
        if limit is None:
            return out
        sig, per_slot = limit
        why = (
            f"tasks needing {_describe_caps(sig)} are bounded by {per_slot:.4g} s of work per "
            f"slot of the agents able to run them (critical path {cp:.4g} s)"
        )
        able = [a for a in baseline.agents if a.availability and a.can_run(sig)]
        if "capabilities" in allow:
            s = self._grant(baseline, base, sig, why)
            if s:
                out.append(s)
        if "agents" in allow and able:
            s = self._add_agent(baseline, base, able, why)
            if s:
                out.append(s)
        if not out:
            self._notes.append(
                f"{why}; no allowed change of the pool shortens the simulated makespan "
                f"{t0:.4g} s"
            )
        return out

    def _more_capacity(
        self, baseline: _Config, base: dict[str, Any], bounds: dict[str, Any]
    ) -> list[_Suggestion]:
        out: list[_Suggestion] = []
        t0 = base["execution_time"]
        cp = bounds["critical_path"]

        def grow(aid: str) -> Callable[[_Config], _Config]:
            def transform(c: _Config) -> _Config:
                agents = [
                    copy_agent(a, capacity=a.capacity + 1) if a.agent_id == aid else a
                    for a in c.agents
                ]
                return c.replace(agents=agents, applied=[*c.applied, f"add_capacity:{aid}"])

            return transform

        best: tuple[float, str, dict[str, Any]] | None = None
        for agent in baseline.agents:
            if agent.availability:
                m = self._evaluate(grow(agent.agent_id)(baseline))
                if best is None or m["execution_time"] < best[0] - 1e-12:
                    best = (m["execution_time"], agent.agent_id, m)
        if best is not None:
            _, aid, m = best
            agent = next(a for a in baseline.agents if a.agent_id == aid)
            classes = sorted(
                ((v, caps) for caps, v in bounds["classes"].items() if caps <= agent.capability_set),
                key=lambda x: -x[0],
            )
            why = (
                f"tasks needing {_describe_caps(classes[0][1])} are bounded by "
                f"{classes[0][0]:.4g} s of work per slot of the agents able to run them"
                if classes else "its tasks wait for a free slot"
            )
            s = self._suggestion(
                kind="add_capacity",
                goal="reduce_execution_time",
                description=f"give agent {aid!r} one more slot (capacity {agent.capacity} -> "
                f"{agent.capacity + 1})",
                reason=(
                    f"{why}; critical path {cp:.4g} s, total work per slot "
                    f"{bounds['total']:.4g} s; simulated makespan {t0:.4g} s -> "
                    f"{m['execution_time']:.4g} s"
                ),
                changes=[{"object": "agent", "id": aid, "field": "capacity",
                          "from": agent.capacity, "to": agent.capacity + 1}],
                base=base, simulated=m, transform=grow(aid),
            )
            if s:
                out.append(s)
        return out

    def _grant(
        self, baseline: _Config, base: dict[str, Any], sig: frozenset[str], why: str
    ) -> _Suggestion | None:
        """Grant the bounding class's capabilities to the agents that are mostly idle."""
        sched = base["schedule"]
        util = sched.utilization
        idle = [
            a for a in baseline.agents
            if a.availability and not a.can_run(sig) and util.get(a.agent_id, 0.0) <= IDLE
        ]
        if not idle:
            return None
        grants = {a.agent_id: sorted(sig - a.capability_set) for a in idle}

        def grant(c: _Config) -> _Config:
            agents = [
                copy_agent(a, capabilities=[*sorted(a.capability_set), *grants[a.agent_id]])
                if a.agent_id in grants and not a.can_run(sig) else a
                for a in c.agents
            ]
            return c.replace(agents=agents, applied=[*c.applied, "grant_capabilities"])

        m = self._evaluate(grant(baseline))
        names = ", ".join(
            f"{a.agent_id} (busy {util.get(a.agent_id, 0.0):.0%})" for a in idle
        )
        return self._suggestion(
            kind="grant_capabilities",
            goal="reduce_execution_time",
            description=(
                f"let the idle agent(s) {', '.join(repr(a.agent_id) for a in idle)} also run "
                f"tasks needing {_describe_caps(sig)}"
            ),
            reason=(
                f"{why}; idle: {names}; simulated makespan {base['execution_time']:.4g} s -> "
                f"{m['execution_time']:.4g} s"
            ),
            changes=[
                {"object": "agent", "id": a.agent_id, "field": "capabilities",
                 "from": sorted(a.capability_set),
                 "to": sorted(a.capability_set | set(grants[a.agent_id]))}
                for a in idle
            ],
            base=base, simulated=m, transform=grant,
        )

    def _add_agent(
        self, baseline: _Config, base: dict[str, Any], able: list[AgentProfile], why: str
    ) -> _Suggestion | None:
        """One more agent like an existing one of the bounding class (the best simulated)."""
        taken = {a.agent_id for a in baseline.agents}
        best: tuple[float, float, AgentProfile, str, dict[str, Any]] | None = None
        for like in able:
            k = 2
            while f"{like.agent_id}_{k}" in taken:
                k += 1
            new_id = f"{like.agent_id}_{k}"
            self._clones[new_id] = like.agent_id
            if like.agent_id in self._rates:
                self._rates[new_id] = self._rates[like.agent_id]
            m = self._evaluate(self._adding(like.agent_id, new_id)(baseline))
            key = (m["execution_time"], m["cost"] if m["cost"] is not None else 0.0)
            if best is None or key < best[:2]:
                best = (*key, like, new_id, m)
        assert best is not None
        _, _, like, new_id, m = best
        rate = self._rates.get(like.agent_id)
        priced = (
            f"; at {rate:.4g} per second like {like.agent_id!r}, simulated cost "
            f"{base['cost']:.4g} -> {m['cost']:.4g}"
            if rate is not None and base["cost"] is not None and m["cost"] is not None else ""
        )
        return self._suggestion(
            kind="add_agent",
            goal="reduce_execution_time",
            description=(
                f"add an agent like {like.agent_id!r} (as {new_id!r}: capabilities "
                f"{_describe_caps(like.capability_set)}, capacity {like.capacity})"
            ),
            reason=(
                f"{why}; simulated makespan {base['execution_time']:.4g} s -> "
                f"{m['execution_time']:.4g} s{priced}"
            ),
            changes=[{"object": "agent", "id": new_id, "field": "registered", "from": False,
                      "to": True, "like": like.agent_id}],
            base=base, simulated=m, transform=self._adding(like.agent_id, new_id),
        )

    def _adding(self, like_id: str, new_id: str) -> Callable[[_Config], _Config]:
        def transform(c: _Config) -> _Config:
            if any(a.agent_id == new_id for a in c.agents):
                return c
            like = next(a for a in c.agents if a.agent_id == like_id)
            clone = copy_agent(like, agent_id=new_id, name=f"{like.name or like_id} (copy)")
            return c.replace(agents=[*c.agents, clone], applied=[*c.applied, f"add_agent:{new_id}"])

        return transform

    def _removable(self, config: _Config, whole: bool = False) -> list[tuple[str, _Config]]:
        """Every configuration with one slot (``whole``: one agent) less that can still run
        every task."""
        out = []
        by_id = {t.task_id: t for t in config.tasks}
        for agent in config.agents:
            if not agent.availability:
                continue
            aid = agent.agent_id
            if agent.capacity > 1 and not whole:
                if "capacity" not in self._allow:
                    continue
                agents = [
                    copy_agent(a, capacity=a.capacity - 1) if a.agent_id == aid else a
                    for a in config.agents
                ]
            else:
                if "agents" not in self._allow and ("capacity" not in self._allow or whole):
                    continue  # the last slot of an agent: removing it removes the agent
                agents = [a for a in config.agents if a.agent_id != aid]
            capable = capable_agents(by_id, [a for a in agents if a.availability], strict=False)
            if not all(capable.values()):
                continue  # the last agent able to run some task
            out.append((aid, config.replace(agents=agents)))
        return out

    def _leaner(
        self, baseline: _Config, base: dict[str, Any], bounds: dict[str, Any]
    ) -> list[_Suggestion]:
        if "capacity" not in self._allow and "agents" not in self._allow:
            self._notes.append("neither capacity nor agents may change: nothing to remove")
            return []
        limit = base["execution_time"] * (1 + 1e-9) + 1e-12
        current = baseline
        removed: list[str] = []
        while True:
            best = None
            for aid, cand in self._removable(current):
                m = self._evaluate(cand)
                if m["execution_time"] <= limit and (
                    best is None or m["reserved_capacity"] < best[2]["reserved_capacity"]
                ):
                    best = (aid, cand, m)
            if best is None:
                break
            removed.append(best[0])
            current = best[1]
        if not removed:
            self._notes.append(
                "every slot is needed: removing any one makes the simulated makespan longer"
            )
            return []
        m = self._evaluate(current)
        before = {a.agent_id: a.capacity for a in baseline.agents if a.availability}
        after = {a.agent_id: a.capacity for a in current.agents if a.availability}
        changes = [
            {"object": "agent", "id": aid, "field": "capacity", "from": before[aid],
             "to": after.get(aid, 0)}
            for aid in before if after.get(aid, 0) != before[aid]
        ]

        def shrink(c: _Config) -> _Config:
            agents = []
            for a in c.agents:
                new = after.get(a.agent_id, 0) if a.agent_id in before else a.capacity
                if new <= 0:
                    continue
                agents.append(a if new == a.capacity else copy_agent(a, capacity=new))
            return c.replace(agents=agents, applied=[*c.applied, "remove_capacity"])

        text = ", ".join(
            f"{c['id']} {c['from']} -> {c['to']}" + (" (remove)" if c["to"] == 0 else "")
            for c in changes
        )
        s = self._suggestion(
            kind="remove_capacity",
            goal="reduce_resource_usage",
            description=f"remove capacity no schedule needs: {text}",
            reason=(
                f"with {m['capacity']} of {base['capacity']} slots the simulated makespan stays "
                f"{m['execution_time']:.4g} s (was {base['execution_time']:.4g} s) and "
                f"utilisation rises from {base['resource_usage']:.1%} to "
                f"{m['resource_usage']:.1%}; reserved slot-seconds "
                f"{base['reserved_capacity']:.4g} -> {m['reserved_capacity']:.4g}"
            ),
            changes=changes, base=base, simulated=m, transform=shrink,
        )
        return [s] if s else []

    def _sturdier(
        self, baseline: _Config, base: dict[str, Any], bounds: dict[str, Any]
    ) -> list[_Suggestion]:
        rates = self._learned.failure_rate
        if not rates:
            self._notes.append("no task failed in the recorded runs: nothing to retry")
            return []
        by_id = {t.task_id: t for t in baseline.tasks}
        new_retries: dict[str, int] = {}
        hopeless = []
        for tid, p in sorted(rates.items()):
            r0 = by_id[tid].retries
            if p >= 0.9:
                hopeless.append(tid)
            r = r0 + 1
            while p ** (r + 1) > 0.01 and r < r0 + 5:
                r += 1
            new_retries[tid] = r
        if hopeless:
            self._notes.append(
                f"task(s) {', '.join(map(repr, hopeless))} failed (nearly) every attempt: "
                f"retries barely help, fix the work itself"
            )

        def retry(c: _Config) -> _Config:
            tasks = []
            for t in c.tasks:
                if t.task_id in new_retries and t.retries < new_retries[t.task_id]:
                    t = copy.copy(t)
                    t.retries = new_retries[t.task_id]
                tasks.append(t)
            return c.replace(tasks=tasks, applied=[*c.applied, "add_retries"])

        m = self._evaluate(retry(baseline))
        detail = "; ".join(
            f"{tid!r} failed {self._learned.failures[tid][0]} of "
            f"{self._learned.failures[tid][1]} attempts (p = {rates[tid]:.2f} per attempt): "
            f"all {by_id[tid].retries + 1} attempt(s) fail with p = "
            f"{rates[tid] ** (by_id[tid].retries + 1):.3f}, all {r + 1} with "
            f"{rates[tid] ** (r + 1):.3f}"
            for tid, r in new_retries.items()
        )
        s = self._suggestion(
            kind="add_retries",
            goal="improve_success_rate",
            description="retry the tasks that failed in history: " + ", ".join(
                f"{tid} retries {by_id[tid].retries} -> {r}" for tid, r in new_retries.items()
            ),
            reason=(
                f"{detail}. Simulated over {self.samples} seeded runs, the success rate goes "
                f"from {base['success_rate']:.1%} to {m['success_rate']:.1%}"
            ),
            changes=[
                {"object": "task", "id": tid, "field": "retries", "from": by_id[tid].retries,
                 "to": r}
                for tid, r in new_retries.items()
            ],
            base=base, simulated=m, transform=retry,
        )
        return [s] if s else []

    def _cheaper(
        self, baseline: _Config, base: dict[str, Any], bounds: dict[str, Any]
    ) -> list[_Suggestion]:
        if not self._rates:
            self._notes.append(
                "no agent has performance_metrics['cost_per_second']: cost is unknown"
            )
            return []
        out: list[_Suggestion] = []
        rate_text = ", ".join(
            f"{aid} {r:.4g}/s" for aid, r in sorted(self._rates.items(), key=lambda x: x[1])
        )

        # 1. send each task to the free agent that does it cheapest
        cheapest = _switch_policy("cheapest", "cheapest", "cheapest_policy")
        m = self._evaluate(cheapest(baseline)) if "policy" in self._allow else base
        s = self._suggestion(
            kind="cheapest_policy",
            goal="reduce_cost",
            description=(
                "run with policy=Cheapest(): each ready task goes to the free agent that does "
                "it for the least money (learned duration x cost_per_second)"
            ),
            reason=(
                f"rates {rate_text}; simulated cost {base['cost']:.4g} -> {m['cost']:.4g}, "
                f"makespan {base['execution_time']:.4g} s -> {m['execution_time']:.4g} s"
            ),
            changes=_policy_change(baseline.policy, "Cheapest()"),
            base=base, simulated=m, transform=cheapest,
        )
        if s:
            out.append(s)

        # 2. drop agents whose work is cheaper elsewhere
        current, cur_m = baseline, base
        dropped: list[str] = []
        while "agents" in self._allow:
            best = None
            for aid, cand in self._removable(current, whole=True):
                m = self._evaluate(cand)
                if m["cost"] is not None and m["cost"] < cur_m["cost"] * (1 - 1e-9) and (
                    best is None or m["cost"] < best[2]["cost"]
                ):
                    best = (aid, cand, m)
            if best is None:
                break
            dropped.append(best[0])
            current, cur_m = best[1], best[2]
        if not dropped:
            self._notes.append("no agent can be dropped to make the work cheaper")
            return out

        def drop(c: _Config) -> _Config:
            return c.replace(
                agents=[a for a in c.agents if a.agent_id not in dropped],
                applied=[*c.applied, "drop_agents"],
            )

        s = self._suggestion(
            kind="drop_expensive_agents",
            goal="reduce_cost",
            description=f"stop using agent(s) {', '.join(map(repr, dropped))}: their work is "
            f"cheaper on the others",
            reason=(
                f"rates {rate_text}; simulated cost {base['cost']:.4g} -> {cur_m['cost']:.4g}, "
                f"makespan {base['execution_time']:.4g} s -> {cur_m['execution_time']:.4g} s"
            ),
            changes=[{"object": "agent", "id": aid, "field": "registered", "from": True,
                      "to": False} for aid in dropped],
            base=base, simulated=cur_m, transform=drop,
        )
        if s:
            out.append(s)
        return out
