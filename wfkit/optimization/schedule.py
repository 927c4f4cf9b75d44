"""``Schedule``: who runs each task and when, from a simulation or a static plan.

The timetable is kept as plain dicts (a 100,000-task simulation must stay cheap); the pandas
frame, the slot of each task within its agent's capacity, the utilisation and the Plotly Gantt
chart are computed on first use.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wfkit.errors import ArgumentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Schedule"]


def _own(mapping: Any) -> Any:
    if mapping is None:
        raise ArgumentError(
            "Schedule needs agent, start and finish (or rows): pass all three mappings"
        )
    return mapping if type(mapping) is dict else dict(mapping)

FRAME_COLUMNS = ("task_id", "agent_id", "slot", "start", "finish", "duration", "status", "attempts")


class Schedule:
    """A timetable of a workflow on a pool of agents.

    ``makespan``, ``lower_bound`` (no schedule on these agents can be shorter), ``optimal``
    (True only when a solver proved ``makespan`` minimal), ``frame()`` (one row per task:
    task_id, agent_id, slot, start, finish, duration, status, attempts), ``utilization``
    (agent id -> busy time / (capacity x makespan)), ``assignment``, ``order`` and
    ``figure()``. ``method`` says where it came from (``"simulate:least_loaded"``, ``"heft"``,
    ``"list"``, ``"exact"``) and ``info`` holds the method's own figures (solver status, time).
    """

    def __init__(
        self,
        *,
        task_ids: Iterable[str],
        agent: Mapping[str, str | None] | None = None,
        start: Mapping[str, float] | None = None,
        finish: Mapping[str, float] | None = None,
        rows: list[tuple[str, str, float, float]] | None = None,
        capacities: Mapping[str, int],
        lower_bound: float | Callable[[], float],
        method: str,
        optimal: bool | None = False,
        status: Mapping[str, str] | None = None,
        attempts: Mapping[str, int] | None = None,
        slot: Mapping[str, int] | None = None,
        hold: Mapping[str, float] | None = None,
        extra_busy: Mapping[str, float] | None = None,
        makespan: float | None = None,
        info: dict[str, Any] | None = None,
        model: Any = None,
    ) -> None:
        # dicts are taken over, not copied; ``rows`` ((task, agent, start, finish) per task, a
        # simulation's raw output) become the dicts on first use
        self.task_ids = task_ids if isinstance(task_ids, list) else list(task_ids)
        self._rows = rows
        self._agent = _own(agent) if rows is None else None
        self._start = _own(start) if rows is None else None
        self._finish = _own(finish) if rows is None else None
        self.capacities = dict(capacities)
        self.method = method
        self._optimal = optimal  # None: decided on first use, by meeting the lower bound
        self.status = dict(status) if status is not None else None
        self.attempts = dict(attempts) if attempts is not None else None
        self._slot = (slot if type(slot) is dict else dict(slot)) if slot is not None else None
        self._hold = dict(hold) if hold else {}
        self._extra_busy = dict(extra_busy) if extra_busy else {}
        self._lower_bound = lower_bound
        self.info = info if info is not None else {}
        self.model = model  # (DurationModel, CommModel) the plan was made with, for policies
        if makespan is None:
            makespan = max((f for f in self.finish.values() if f is not None), default=0.0)
        self.makespan = float(makespan)
        self._frame: Any = None
        self._utilization: dict[str, float] | None = None

    # -- the timetable -------------------------------------------------------------------------

    def _unpack(self) -> None:
        rows = self._rows or []
        self._agent = {r[0]: r[1] for r in rows}
        self._start = {r[0]: r[2] for r in rows}
        self._finish = {r[0]: r[3] for r in rows}
        self._rows = None

    @property
    def agent(self) -> dict[str, str | None]:
        """{task_id: agent_id} of every task that ran."""
        if self._agent is None:
            self._unpack()
        assert self._agent is not None
        return self._agent

    @property
    def start(self) -> dict[str, float]:
        """{task_id: start time} (the last attempt's)."""
        if self._start is None:
            self._unpack()
        assert self._start is not None
        return self._start

    @property
    def finish(self) -> dict[str, float]:
        """{task_id: finish time} (the last attempt's)."""
        if self._finish is None:
            self._unpack()
        assert self._finish is not None
        return self._finish

    # -- figures -------------------------------------------------------------------------------

    @property
    def lower_bound(self) -> float:
        if callable(self._lower_bound):
            self._lower_bound = float(self._lower_bound())
        return float(self._lower_bound)

    @property
    def optimal(self) -> bool:
        """True only when proven: by a solver, or because the makespan meets the lower bound."""
        if self._optimal is None:
            lb = self.lower_bound
            self._optimal = self.makespan <= lb * (1 + 1e-12) + 1e-12
        return bool(self._optimal)

    @optimal.setter
    def optimal(self, value: bool) -> None:
        self._optimal = value

    @property
    def gap(self) -> float:
        """makespan / lower_bound - 1: how far from the best conceivable schedule (0 = optimal)."""
        lb = self.lower_bound
        if lb <= 0:
            return 0.0 if self.makespan <= 0 else float("inf")
        return self.makespan / lb - 1.0

    @property
    def assignment(self) -> dict[str, str]:
        """{task_id: agent_id} for every task that ran."""
        return {tid: a for tid, a in self.agent.items() if a is not None}

    @property
    def order(self) -> dict[str, list[str]]:
        """Each agent's tasks by start time (ties in workflow order)."""
        index = {tid: i for i, tid in enumerate(self.task_ids)}
        out: dict[str, list[str]] = {aid: [] for aid in self.capacities}
        for tid, aid in self.agent.items():
            if aid is not None:
                out.setdefault(aid, []).append(tid)
        for tids in out.values():
            tids.sort(key=lambda t: (self.start[t], index[t]))
        return out

    def task_status(self, task_id: str) -> str:
        if self.status is None:
            return "completed"
        return self.status.get(task_id, "completed")

    @property
    def slot(self) -> dict[str, int]:
        """Which of its agent's ``capacity`` slots each task used (0-based)."""
        if self._slot is None:
            self._slot = self._colour_slots()
        return self._slot

    def _colour_slots(self) -> dict[str, int]:
        # interval partitioning: a slot is held from dispatch (``hold``) to finish
        by_agent: dict[str, list[tuple[float, float, str]]] = {}
        hold = self._hold
        for tid, aid in self.agent.items():
            if aid is None or self.start.get(tid) is None:
                continue
            by_agent.setdefault(aid, []).append(
                (hold.get(tid, self.start[tid]), self.finish[tid], tid)
            )
        out: dict[str, int] = {}
        for items in by_agent.values():
            items.sort()
            busy: list[tuple[float, int]] = []
            free: list[int] = []
            count = 0
            for begin, end, tid in items:
                while busy and busy[0][0] <= begin:
                    heapq.heappush(free, heapq.heappop(busy)[1])
                if free:
                    s = heapq.heappop(free)
                else:
                    s, count = count, count + 1
                out[tid] = s
                heapq.heappush(busy, (end, s))
        return out

    @property
    def utilization(self) -> dict[str, float]:
        """agent id -> time spent running tasks / (capacity x makespan)."""
        if self._utilization is None:
            busy = dict.fromkeys(self.capacities, 0.0)
            for tid, aid in self.agent.items():
                s = self.start.get(tid)
                if aid is not None and s is not None:
                    busy[aid] = busy.get(aid, 0.0) + self.finish[tid] - s
            for aid, extra in self._extra_busy.items():
                busy[aid] = busy.get(aid, 0.0) + extra
            m = self.makespan
            self._utilization = {
                aid: (b / (self.capacities.get(aid, 1) * m) if m > 0 else 0.0)
                for aid, b in busy.items()
            }
        return dict(self._utilization)

    @property
    def mean_utilization(self) -> float:
        """Busy time over all agents / (total capacity x makespan)."""
        cap = sum(self.capacities.values())
        if not cap or self.makespan <= 0:
            return 0.0
        util = self.utilization
        return sum(util[a] * self.capacities.get(a, 1) for a in util) / cap

    @property
    def success_rate(self) -> float:
        if not self.task_ids:
            return 1.0
        if self.status is None:
            return 1.0
        done = sum(1 for tid in self.task_ids if self.task_status(tid) == "completed")
        return done / len(self.task_ids)

    def frame(self) -> pd.DataFrame:
        """One row per task: task_id, agent_id, slot, start, finish, duration, status, attempts."""
        if self._frame is None:
            import pandas as pd

            slots = self.slot
            nan = float("nan")
            rows = []
            for tid in self.task_ids:
                aid = self.agent.get(tid)
                s = self.start.get(tid)
                f = self.finish.get(tid)
                ran = aid is not None and s is not None
                rows.append(
                    (
                        tid,
                        aid,
                        slots.get(tid, -1) if ran else -1,
                        s if ran else nan,
                        f if ran else nan,
                        (f - s) if ran and f is not None and s is not None else nan,
                        self.task_status(tid),
                        self.attempts.get(tid, 1 if ran else 0) if self.attempts else int(ran),
                    )
                )
            df = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
            df["task_id"] = df["task_id"].astype("string")
            df["agent_id"] = df["agent_id"].astype("string")
            df["status"] = df["status"].astype("string")
            self._frame = df
        return self._frame.copy()

    # -- use -----------------------------------------------------------------------------------

    def to_policy(self) -> Any:
        """A ``heft``-style policy that executes this plan's assignment and per-agent order.

        Pass it as ``execute_workflow(..., policy=schedule.to_policy())`` or to ``simulate``;
        like ``policy="heft"`` it adapts when real durations differ from the plan's.
        """
        from wfkit.optimization.policies import Heft

        return Heft(plan=self)

    def figure(self, title: str | None = None) -> Any:
        """The Gantt chart: one lane per agent slot, one bar per task (Plotly)."""
        import plotly.graph_objects as go

        slots = self.slot
        palette = [
            "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2",
            "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC",
        ]
        lanes: dict[str, dict[str, list[Any]]] = {}
        for tid in self.task_ids:
            aid = self.agent.get(tid)
            s = self.start.get(tid)
            if aid is None or s is None:
                continue
            lane = aid if self.capacities.get(aid, 1) == 1 else f"{aid} #{slots.get(tid, 0)}"
            data = lanes.setdefault(aid, {"y": [], "base": [], "x": [], "text": [], "status": []})
            data["y"].append(lane)
            data["base"].append(s)
            data["x"].append(self.finish[tid] - s)
            data["text"].append(tid)
            data["status"].append(self.task_status(tid))
        fig = go.Figure()
        for i, (aid, data) in enumerate(lanes.items()):
            fig.add_trace(
                go.Bar(
                    name=aid,
                    orientation="h",
                    y=data["y"],
                    base=data["base"],
                    x=data["x"],
                    text=data["text"] if len(self.task_ids) <= 300 else None,
                    textposition="inside",
                    insidetextanchor="middle",
                    customdata=list(zip(data["text"], data["status"], strict=True)),
                    marker_color=palette[i % len(palette)],
                    hovertemplate=(
                        "task %{customdata[0]} (%{customdata[1]})<br>"
                        "start %{base:.3g}, duration %{x:.3g}<extra>%{y}</extra>"
                    ),
                )
            )
        order = sorted({y for d in lanes.values() for y in d["y"]}, reverse=True)
        fig.update_layout(
            title=title
            or (
                f"{self.method}: makespan {self.makespan:.4g} "
                f"(lower bound {self.lower_bound:.4g})"
            ),
            barmode="overlay",
            xaxis_title="time (s)",
            yaxis={"categoryorder": "array", "categoryarray": order, "title": "agent"},
            height=max(250, 40 + 28 * len(order)),
            legend_title="agent",
        )
        return fig

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "makespan": self.makespan,
            "lower_bound": self.lower_bound,
            "gap": self.gap,
            "optimal": self.optimal,
            "mean_utilization": self.mean_utilization,
            "success_rate": self.success_rate,
            "tasks": len(self.task_ids),
        }

    def __repr__(self) -> str:
        proven = ", optimal" if self.optimal else ""
        return (
            f"<Schedule {self.method}: {len(self.task_ids)} tasks on {len(self.capacities)} "
            f"agents, makespan {self.makespan:.4g}, lower bound {self.lower_bound:.4g}{proven}>"
        )
