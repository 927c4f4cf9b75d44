"""``experiment``: every variant of a workflow, for every seed, in one tidy DataFrame."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from wfkit.errors import ScheduleError
from wfkit.optimization.inputs import AgentsLike, TasksLike, agent_list, task_map
from wfkit.optimization.simulator import simulate

__all__ = ["experiment", "EXPERIMENT_COLUMNS"]

EXPERIMENT_COLUMNS = (
    "variant",
    "seed",
    "policy",
    "makespan",
    "lower_bound",
    "gap",
    "utilization",
    "success_rate",
    "completed",
    "failed",
    "skipped",
    "agents",
    "capacity",
)

_SIM_KEYWORDS = frozenset(
    {"policy", "durations", "comm_costs", "noise", "failures", "backoff", "max_backoff"}
)


def _describe(value: Any) -> Any:
    """A value fit for a frame column: scalars as they are, policies and pools by name."""
    if value is None or isinstance(value, str | bool | numbers.Number):
        return value
    return getattr(value, "name", None) or getattr(value, "__name__", None) or type(value).__name__


def experiment(
    tasks: TasksLike,
    agents: AgentsLike,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    seeds: Iterable[int] = range(1),
) -> Any:
    """Simulate every variant for every seed; one row per (variant, seed).

    ``variants`` maps a name to :func:`wfkit.simulate` keyword arguments (``policy``,
    ``durations``, ``comm_costs``, ``noise``, ``failures``, ...) and may replace ``agents`` or
    ``tasks`` (to compare agent pools or workflow changes). Columns: variant, seed, policy,
    makespan, lower_bound, gap (makespan / lower bound - 1), utilization (mean over the pool),
    success_rate, completed, failed, skipped, agents, capacity, then one column per scalar
    keyword a variant sets (``noise`` ...), ready for ``groupby`` and Plotly.
    """
    import pandas as pd

    variants = dict(variants or {"baseline": {}})
    if not variants:
        raise ScheduleError("experiment() needs at least one variant")
    seeds = list(seeds)
    if not seeds:
        raise ScheduleError("experiment() needs at least one seed, e.g. seeds=range(10)")
    base_tasks = task_map(tasks)
    base_agents = agent_list(agents)
    rows: list[dict[str, Any]] = []
    extra: list[str] = []
    for name, spec in variants.items():
        if not isinstance(spec, Mapping):
            raise ScheduleError(
                f"variant {name!r} must be a dict of simulate() keyword arguments, got "
                f"{type(spec).__name__}"
            )
        unknown = set(spec) - _SIM_KEYWORDS - {"agents", "tasks"}
        if unknown:
            raise ScheduleError(
                f"variant {name!r} has unknown keyword(s) {', '.join(sorted(unknown))}: use "
                f"agents, tasks or simulate() arguments ({', '.join(sorted(_SIM_KEYWORDS))})"
            )
        v_tasks = task_map(spec["tasks"]) if "tasks" in spec else base_tasks
        v_agents = agent_list(spec["agents"]) if "agents" in spec else base_agents
        kwargs = {k: v for k, v in spec.items() if k in _SIM_KEYWORDS}
        columns = {
            k: v for k, v in spec.items()
            if k in _SIM_KEYWORDS and k != "policy" and isinstance(v, str | bool | numbers.Number)
        }
        for k in columns:
            if k not in extra:
                extra.append(k)
        available = [a for a in v_agents if a.availability]
        # the same for every seed unless noise draws other durations (its bound is theirs)
        bound: float | None = None
        noisy = kwargs.get("noise") is not None and kwargs.get("noise") != 0
        for seed in seeds:
            sched = simulate(v_tasks, v_agents, seed=seed, **kwargs)
            if bound is None or noisy:
                bound = sched.lower_bound
            else:
                sched._lower_bound = bound
            counts = {"completed": 0, "failed": 0, "skipped": 0}
            for tid in sched.task_ids:
                st = sched.task_status(tid)
                counts[st] = counts.get(st, 0) + 1
            lb = sched.lower_bound
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "policy": _describe(kwargs.get("policy", "least_loaded")),
                    "makespan": sched.makespan,
                    "lower_bound": lb,
                    "gap": sched.makespan / lb - 1 if lb > 0 else 0.0,
                    "utilization": sched.mean_utilization,
                    "success_rate": sched.success_rate,
                    "completed": counts["completed"],
                    "failed": counts["failed"],
                    "skipped": counts["skipped"],
                    "agents": len(available),
                    "capacity": sum(a.capacity for a in available),
                    **columns,
                }
            )
    frame = pd.DataFrame(rows, columns=[*EXPERIMENT_COLUMNS, *extra])
    frame["variant"] = frame["variant"].astype("string")
    frame["policy"] = frame["policy"].astype("string")
    return frame
