"""What recorded runs say: per-attempt rows, per-run figures, learned durations and failure rates.

History comes from, in this order: the ``metrics`` object given to the optimiser (anything with
``task_frame()`` and optionally ``workflow_frame()``, such as ``AdvancedWorkflowMetrics`` or a
``RunStore``), the orchestrator's run store, or the orchestrator's last result of the workflow.

The duration model is multiplicative: task ``t`` on agent ``a`` takes ``base(t) x speed(a)``.
``speed(a)`` is the agent's mean ratio of observed to estimated duration (its recorded
``speed_ratio`` when this workflow never ran on it), ``base(t)`` the task's observed durations
divided by the speed of the agents that ran them (its estimate when it never ran). A pair that
was observed uses its own mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask

__all__ = ["History", "Learned", "load_history", "learn"]

ATTEMPT_COLUMNS = (
    "run_id", "task_id", "agent_id", "status", "attempt", "started_at", "finished_at", "duration",
)


@dataclass
class History:
    """Attempt rows (``attempts``) and one row per run (``runs``) of one workflow."""

    attempts: Any  # DataFrame: ATTEMPT_COLUMNS, times as UNIX seconds
    runs: Any  # DataFrame: run_id, started_at, makespan, total, completed, status
    source: str


@dataclass
class Learned:
    """Durations for every (task, capable agent) pair and per-attempt failure rates."""

    durations: dict[str, dict[str, float]]
    failure_rate: dict[str, float]
    failures: dict[str, tuple[int, int]] = field(default_factory=dict)  # task: (failed, attempts)
    # for pairs that no capable agent covers (an agent granted a capability): each task's
    # duration at speed 1 and each agent's observed speed
    base: dict[str, float] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)


def _seconds(series: Any) -> Any:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        out = series.astype("int64") / 1e9
        return out.where(series.notna())
    return pd.to_numeric(series, errors="coerce")


def _frame_history(task_frame: Any, workflow_frame: Any, workflow_id: str, source: str) -> History:
    import pandas as pd

    tf = task_frame[task_frame["workflow_id"].astype("string") == workflow_id]
    tf = tf[tf["status"].isin(["completed", "failed"])]
    attempts = pd.DataFrame(
        {
            "run_id": tf["run_id"].astype("string"),
            "task_id": tf["task_id"].astype("string"),
            "agent_id": tf["agent_id"].astype("string"),
            "status": tf["status"].astype("string"),
            "attempt": tf["attempt"].astype("Int64"),
            "started_at": _seconds(tf["started_at"]),
            "finished_at": _seconds(tf["finished_at"]),
            "duration": pd.to_numeric(tf["duration"], errors="coerce"),
        }
    ).reset_index(drop=True)
    runs = _runs_from_attempts(attempts, task_frame, workflow_id)
    if workflow_frame is not None and len(workflow_frame):
        wf = workflow_frame[workflow_frame["workflow_id"].astype("string") == workflow_id]
        wf = wf[wf["status"].isin(["completed", "failed"])]
        if len(wf):
            by_run = {
                str(r.run_id): r
                for r in wf.itertuples(index=False)
            }
            rows = []
            for r in runs.itertuples(index=False):
                w = by_run.get(str(r.run_id))
                if w is not None and pd.notna(w.duration):
                    rows.append(
                        {
                            **r._asdict(),
                            "makespan": float(w.duration),
                            "total": int(w.total_tasks),
                            "completed": int(w.successful_tasks),
                            "status": str(w.status),
                        }
                    )
                else:
                    rows.append(r._asdict())
            runs = pd.DataFrame(rows, columns=runs.columns)
    return History(attempts, runs, source)


def _runs_from_attempts(attempts: Any, task_frame: Any, workflow_id: str) -> Any:
    import pandas as pd

    rows = []
    tf = task_frame[task_frame["workflow_id"].astype("string") == workflow_id]
    for run_id, group in attempts.groupby("run_id", sort=False):
        everything = tf[tf["run_id"].astype("string") == run_id]
        final = everything.drop_duplicates("task_id", keep="last")
        rows.append(
            {
                "run_id": str(run_id),
                "started_at": float(group["started_at"].min()),
                "makespan": float(group["finished_at"].max() - group["started_at"].min()),
                "total": int(final["task_id"].nunique()),
                "completed": int((final["status"] == "completed").sum()),
                "status": "completed" if (final["status"] == "completed").all() else "failed",
            }
        )
    runs = pd.DataFrame(
        rows, columns=["run_id", "started_at", "makespan", "total", "completed", "status"]
    )
    return runs.sort_values("started_at", kind="stable").reset_index(drop=True)


def _result_history(result: Mapping[str, Any], workflow_id: str) -> History:
    """One run from a RunResult: its final attempts, and the earlier failed ones as counts."""
    import pandas as pd

    rows = []
    for tid, r in result["task_results"].items():
        if r.get("status") not in ("completed", "failed") or r.get("started_at") is None:
            continue
        n = int(r.get("attempts") or 1)
        final_ok = r["status"] == "completed"
        for k in range(1, n + 1):
            last = k == n
            rows.append(
                {
                    "run_id": result["run_id"],
                    "task_id": tid,
                    "agent_id": r.get("agent_id"),
                    "status": "completed" if (last and final_ok) else "failed",
                    "attempt": k,
                    "started_at": r["started_at"] if last else float("nan"),
                    "finished_at": r["finished_at"] if last else float("nan"),
                    # the run result keeps the time of the first start to the last end
                    "duration": float(r["execution_time"]) / n if n else float("nan"),
                }
            )
    attempts = pd.DataFrame(rows, columns=list(ATTEMPT_COLUMNS))
    total = int(result.get("total_tasks") or len(result["task_results"]))
    runs = pd.DataFrame(
        [
            {
                "run_id": result["run_id"],
                "started_at": float(result.get("started_at") or 0.0),
                "makespan": float(result.get("makespan") or 0.0),
                "total": total,
                "completed": int(result.get("successful_tasks") or 0),
                "status": str(result.get("status", "completed")),
            }
        ]
    )
    return History(attempts, runs, "last_result")


def load_history(orchestrator: Any, metrics: Any, workflow_id: str) -> History | None:
    """The recorded runs of ``workflow_id``, or None when there are none."""
    for source_name, source in (("metrics", metrics), ("store", getattr(orchestrator, "store", None))):
        if source is None or not hasattr(source, "task_frame"):
            continue
        tf = source.task_frame()
        wf = source.workflow_frame() if hasattr(source, "workflow_frame") else None
        hist = _frame_history(tf, wf, workflow_id, source_name)
        if len(hist.runs):
            return hist
    wf_record = getattr(orchestrator, "workflows", {}).get(workflow_id) or {}
    last = wf_record.get("last_result")
    if last:
        return _result_history(last, workflow_id)
    return None


def learn(
    tasks: Mapping[str, WorkflowTask],
    agents: Sequence[AgentProfile],
    capable: Mapping[frozenset[str], list[AgentProfile]],
    history: History | None,
) -> Learned:
    """Durations for every (task, capable agent) pair and per-attempt failure rates."""
    obs_sum: dict[tuple[str, str], float] = {}
    obs_n: dict[tuple[str, str], int] = {}
    fails: dict[str, list[int]] = {}
    if history is not None and len(history.attempts):
        for r in history.attempts.itertuples(index=False):
            tid, aid = str(r.task_id), str(r.agent_id)
            if tid not in tasks:
                continue
            counts = fails.setdefault(tid, [0, 0])
            counts[1] += 1
            if r.status == "failed":
                counts[0] += 1
                continue
            d = r.duration
            if d is None or d != d:  # NaN
                continue
            obs_sum[(tid, aid)] = obs_sum.get((tid, aid), 0.0) + float(d)
            obs_n[(tid, aid)] = obs_n.get((tid, aid), 0) + 1
    observed = {k: obs_sum[k] / obs_n[k] for k in obs_sum}
    for agent in agents:  # the engine's own memory of this workflow's tasks
        for tid, d in agent.learned_durations.items():
            if tid in tasks and (tid, agent.agent_id) not in observed:
                observed[(tid, agent.agent_id)] = float(d)
    by_agent: dict[str, list[tuple[str, float]]] = {}
    by_task: dict[str, list[tuple[str, float]]] = {}
    for (tid, aid), d in observed.items():
        by_agent.setdefault(aid, []).append((tid, d))
        by_task.setdefault(tid, []).append((aid, d))
    speed: dict[str, float] = {}
    for agent in agents:
        ratios = [
            d / tasks[tid].estimated_duration
            for tid, d in by_agent.get(agent.agent_id, ())
            if tasks[tid].estimated_duration > 0
        ]
        if ratios:
            speed[agent.agent_id] = sum(ratios) / len(ratios)
        else:
            metrics = agent.performance_metrics or {}
            seen = metrics.get("tasks_completed", 0)
            speed[agent.agent_id] = float(metrics.get("speed_ratio", 1.0)) if seen else 1.0
    base: dict[str, float] = {}
    for tid, task in tasks.items():
        parts = [d / speed[aid] for aid, d in by_task.get(tid, ()) if speed.get(aid, 0) > 0]
        base[tid] = sum(parts) / len(parts) if parts else float(task.estimated_duration)
    durations: dict[str, dict[str, float]] = {}
    for tid, task in tasks.items():
        row: dict[str, float] = {}
        for agent in capable[task.capability_set]:
            aid = agent.agent_id
            row[aid] = observed.get((tid, aid), base[tid] * speed[aid])
        durations[tid] = row
    failure_rate = {
        tid: (f + 1) / (n + 2) for tid, (f, n) in fails.items() if f > 0
    }
    return Learned(
        durations=durations,
        failure_rate=failure_rate,
        failures={tid: (f, n) for tid, (f, n) in fails.items()},
        base=base,
        speed=speed,
    )
