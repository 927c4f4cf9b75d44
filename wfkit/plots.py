"""Plotly figures of workflows and runs: the DAG, a Gantt chart, agent load, run summaries.

Plotly only: no Graphviz, nothing fetched from the network. Every function returns a
:class:`Figure`, a ``plotly.graph_objects.Figure`` whose static export (``write_image``) says
which package to install when no browser is found. The frame functions take the frames of
:class:`wfkit.AdvancedWorkflowMetrics` and :class:`wfkit.RunStore` (``task_frame()``,
``agent_load_frame()``, ``workflow_frame()``); :func:`dag_figure` takes a workflow and,
optionally, a run's results in any of the shapes wfkit produces.
"""

from __future__ import annotations

import contextlib
import functools
import html
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import plotly.graph_objects as go

from wfkit.colors import _UNKNOWN_COLOR, STATUS_COLORS, status_color
from wfkit.errors import BrowserNotFoundError, FrameError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from wfkit.agents.builder import Workflow
    from wfkit.agents.model import WorkflowTask
    from wfkit.graph import TaskGraph
    from wfkit.grouping import GroupBy, Grouping

__all__ = [
    "Figure",
    "STATUS_COLORS",
    "DagLayout",
    "dag_layout",
    "dag_figure",
    "build_group_figure",
    "group_stats",
    "build_dag_figure",
    "DAG_NODE_TRACE",
    "gantt_figure",
    "agent_load_figure",
    "summary_figure",
]

_CRITICAL_COLOR = "#222222"
_EDGE_COLOR = "rgba(110, 110, 110, 0.45)"
_PALETTE = (
    "#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756",
    "#72b7b2", "#eeca3b", "#ff9da6", "#9d755d", "#bab0ac",
)
_TEMPLATE = "plotly_white"


@functools.cache
def _live_template() -> dict[str, Any]:
    """plotly_white's page, fonts, hover and axes without its defaults for trace types, maps,
    3D scenes and colour scales, which a DAG never uses: the same look, but a figure that
    takes it is built in a millisecond instead of ten (a live view builds its DAG while a
    run goes on)."""
    import plotly.io as pio

    layout = pio.templates[_TEMPLATE].layout.to_plotly_json()
    keep = ("font", "paper_bgcolor", "plot_bgcolor", "hoverlabel", "hovermode", "title",
            "colorway", "xaxis", "yaxis")
    return {"layout": {k: layout[k] for k in keep if k in layout}}


def _new_figure(live: bool) -> Figure:
    """An empty figure with the project's template (the light one for a live view)."""
    return Figure(layout={"template": _live_template() if live else _TEMPLATE})


class Figure(go.Figure):
    """A ``go.Figure`` whose ``write_image`` / ``to_image`` name the browser to install.

    Static export goes through kaleido, which drives a Chromium-based browser (the Debian
    ``chromium`` package works). Without one, plotly suggests a download command; this raises
    :class:`wfkit.BrowserNotFoundError` saying which package to install instead.
    """

    def to_image(self, *args: Any, **kwargs: Any) -> bytes:
        with _browser_hint():
            return super().to_image(*args, **kwargs)

    def write_image(self, *args: Any, **kwargs: Any) -> None:
        with _browser_hint():
            return super().write_image(*args, **kwargs)


@contextlib.contextmanager
def _browser_hint() -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        if "requires Google Chrome" not in str(exc) and "requires Chrome" not in str(exc):
            raise
        raise BrowserNotFoundError(os.environ.get("BROWSER_PATH") or None) from exc
    except Exception as exc:
        if type(exc).__name__ != "ChromeNotFoundError":  # kaleido's own, if plotly lets it out
            raise
        raise BrowserNotFoundError(os.environ.get("BROWSER_PATH") or None) from exc


def _esc(value: Any, limit: int = 300) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


def _fmt_seconds(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = float(value)
    if v < 1:
        return f"{v * 1000:.3g} ms"
    if v < 120:
        return f"{v:.3g} s"
    return f"{v / 60:.3g} min"


def _empty(title: str, message: str) -> Figure:
    fig = Figure()
    fig.update_layout(
        template=_TEMPLATE,
        title=title,
        height=300,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {"text": message, "showarrow": False, "xref": "paper", "yref": "paper",
             "x": 0.5, "y": 0.5, "font": {"size": 14, "color": "#666"}}
        ],
    )
    return fig


# -- inputs ------------------------------------------------------------------------------------


# What the figures draw: a Workflow, tasks (a list or {task_id: task}), or an orchestrator's
# workflow record ({"workflow_id": ..., "tasks": [...]}).
WorkflowLike: TypeAlias = "Workflow | Iterable[WorkflowTask] | Mapping[str, Any]"
# Outcomes: a RunResult (or its task_results), {task_id: status or dict}, or a task frame.
ResultsLike: TypeAlias = "Mapping[str, Any] | pd.DataFrame"


def workflow_tasks(obj: WorkflowLike) -> tuple[str, dict[str, WorkflowTask]]:
    """(workflow id, tasks by id) from a Workflow, tasks, or an orchestrator's workflow record."""
    workflow_id, graph = _workflow_graph(obj)
    return workflow_id, graph.tasks


def _workflow_graph(obj: WorkflowLike) -> tuple[str, TaskGraph]:
    """(workflow id, its checked :class:`~wfkit.graph.TaskGraph`): the checks of a workflow
    (types, duplicates, unknown dependencies, cycles) in one linear pass, whose numbering
    the drawing then uses."""
    from wfkit.agents.builder import Workflow
    from wfkit.graph import TaskGraph

    if isinstance(obj, Workflow):
        return obj.workflow_id, TaskGraph(obj.tasks)
    if isinstance(obj, Mapping) and "tasks" in obj and "workflow_id" in obj:
        return str(obj["workflow_id"]), TaskGraph(obj["tasks"])
    if isinstance(obj, str | bytes) or not isinstance(obj, Iterable | Mapping):
        raise ValidationError(
            f"dag_figure() takes a Workflow, a list of WorkflowTask or a dict of them by id, "
            f"got {type(obj).__name__}"
        )
    return "workflow", TaskGraph(obj)


def _is_frame(obj: Any) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "itertuples")


def _require(frame: Any, what: str, columns: Iterable[str]) -> None:
    if not _is_frame(frame):
        raise ValidationError(
            f"{what} takes a pandas DataFrame (for example metrics.task_frame()), "
            f"got {type(frame).__name__}"
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FrameError(what, missing, frame.columns)


def _naive_utc(series: Any) -> Any:
    """Timestamps as naive UTC datetimes (plotly.js ignores offsets); numbers are UNIX seconds."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series):
        series = pd.to_datetime(series, unit="s", utc=True)
    else:
        series = pd.to_datetime(series, utc=True)
    return series.dt.tz_convert(None)


def _value(v: Any) -> Any:
    """None for pandas' missing values, the value otherwise."""
    if v is None:
        return None
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def task_outcomes(results: ResultsLike | None) -> dict[str, dict[str, Any]]:
    """Per task: status, agent_id, attempts, duration, error; from any results shape.

    Takes a :class:`wfkit.RunResult` (or its ``task_results``), a mapping of task id to a
    status string or dict, or a task frame (the latest run in it, each task's last attempt).
    """
    if results is None:
        return {}
    if _is_frame(results):
        return _outcomes_from_frame(results)
    if isinstance(results, Mapping):
        if "task_results" in results and isinstance(results["task_results"], Mapping):
            results = results["task_results"]
        out: dict[str, dict[str, Any]] = {}
        for tid, r in results.items():
            if isinstance(r, str):
                out[tid] = {"status": r}
            elif isinstance(r, Mapping):
                out[tid] = {
                    "status": _shown_status(r.get("status"), r.get("cached")),
                    "agent_id": r.get("agent_id"),
                    "attempts": r.get("attempts"),
                    "duration": r.get("execution_time", r.get("duration")),
                    "error": r.get("error"),
                }
            else:
                raise ValidationError(
                    f"results[{tid!r}] must be a status string or a task result dict, "
                    f"got {type(r).__name__}"
                )
        return out
    raise ValidationError(
        f"results= takes a RunResult, its task_results, or a task frame, got "
        f"{type(results).__name__}"
    )


def _shown_status(status: Any, cached: Any) -> Any:
    """A task completed from the result cache is drawn as "cached" (it did not run)."""
    return "cached" if status == "completed" and cached is not None and bool(cached) else status


def _outcomes_from_frame(frame: Any) -> dict[str, dict[str, Any]]:
    _require(frame, "dag_figure(results=task_frame)", ("task_id", "status"))
    if frame.empty:
        return {}
    if "run_id" in frame.columns and frame["run_id"].nunique(dropna=True) > 1:
        order = "started_at" if "started_at" in frame.columns else None
        if order is not None:
            firsts = frame.groupby("run_id", sort=False)[order].min()
            latest = firsts.sort_values(kind="stable").index[-1]
        else:
            latest = frame["run_id"].iloc[-1]
        frame = frame[frame["run_id"] == latest]
    if "attempt" in frame.columns:
        frame = frame.sort_values("attempt", kind="stable")
    out: dict[str, dict[str, Any]] = {}
    cols = frame.columns
    for row in frame.to_dict("records"):
        tid = row["task_id"]
        prev = out.get(tid)
        attempts = (prev["attempts"] if prev else 0) + (1 if _value(row.get("agent_id")) else 0)
        out[tid] = {
            "status": _shown_status(_value(row["status"]), _value(row.get("cached"))),
            "agent_id": _value(row.get("agent_id")) if "agent_id" in cols else None,
            "attempts": attempts,
            "duration": _value(row.get("duration")) if "duration" in cols else None,
            "error": _value(row.get("error")) if "error" in cols else None,
        }
    return out


# -- the DAG -------------------------------------------------------------------------------------


class DagLayout:
    """Node positions of a layered drawing: ``x`` is the layer, ``y`` the row within it."""

    __slots__ = ("ids", "x", "y", "index", "edges", "width", "depth")

    def __init__(self, ids: list[str], x: list[float], y: list[float],
                 edges: list[tuple[int, int]]) -> None:
        self.ids = ids
        self.x = x
        self.y = y
        self.index = {tid: i for i, tid in enumerate(ids)}
        self.edges = edges
        self.depth = int(max(x, default=-1)) + 1
        self.width = 0
        if ids:
            counts: dict[float, int] = {}
            for v in x:
                counts[v] = counts.get(v, 0) + 1
            self.width = max(counts.values())


def dag_layout(tasks: Mapping[str, WorkflowTask], sweeps: int = 4) -> DagLayout:
    """A layered (Sugiyama-style) layout: topological generations left to right, rows ordered
    by the barycentre of each node's neighbours (alternating sweeps) to cut edge crossings."""
    from wfkit.graph import dependents_of, layers

    gens = layers(tasks)
    dependents = dependents_of(tasks)
    pos: dict[str, float] = {}
    for gen in gens:
        for i, tid in enumerate(gen):
            pos[tid] = i - (len(gen) - 1) / 2

    def reorder(gen: list[str], neighbours: Any) -> list[str]:
        keyed = []
        for i, tid in enumerate(gen):
            ns = neighbours(tid)
            bary = sum(pos[n] for n in ns) / len(ns) if ns else pos[tid]
            keyed.append((bary, i, tid))
        keyed.sort()
        out = [tid for _, _, tid in keyed]
        for i, tid in enumerate(out):
            pos[tid] = i - (len(out) - 1) / 2
        return out

    # The heuristic can make things worse: keep the best order seen (counting is
    # O(E log E) per sweep, so only while the graph is small enough for it to be cheap).
    count = sum(len(t.dependencies or ()) for t in tasks.values()) <= _COUNT_CROSSINGS_UP_TO
    best = (_crossings(gens, pos, tasks), [list(g) for g in gens], dict(pos)) if count else None
    for sweep in range(sweeps):
        if sweep % 2 == 0:
            gens = [gens[0]] + [reorder(g, lambda t: tasks[t].dependencies) for g in gens[1:]]
        else:
            gens = [reorder(g, lambda t: dependents[t]) for g in gens[:-1]] + gens[-1:]
        if best is not None:
            c = _crossings(gens, pos, tasks)
            if c < best[0]:
                best = (c, [list(g) for g in gens], dict(pos))
    if best is not None:
        _, gens, pos = best
    ids: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    for depth, gen in enumerate(gens):
        for tid in gen:
            ids.append(tid)
            xs.append(float(depth))
            ys.append(-pos[tid])  # first row on top
    index = {tid: i for i, tid in enumerate(ids)}
    edges = [(index[d], index[tid]) for tid in ids for d in tasks[tid].dependencies or ()]
    return DagLayout(ids, xs, ys, edges)


_COUNT_CROSSINGS_UP_TO = 5_000


def _crossings(gens: list[list[str]], pos: Mapping[str, float],
               tasks: Mapping[str, WorkflowTask]) -> int:
    """Crossings between edges joining adjacent layers (inversions, counted with a Fenwick
    tree); edges that skip layers are left out, as in most layered-drawing tools."""
    total = 0
    for upper, lower in zip(gens, gens[1:], strict=False):
        above = set(upper)
        pairs = sorted(
            (pos[d], pos[t]) for t in lower for d in tasks[t].dependencies or () if d in above
        )
        if len(pairs) < 2:
            continue
        ranks = {v: i + 1 for i, v in enumerate(sorted({b for _, b in pairs}))}
        tree = [0] * (len(ranks) + 1)
        seen = 0
        for _, b in pairs:
            r = ranks[b]
            not_above = 0  # edges so far whose lower end is at or before this one's
            i = r
            while i:
                not_above += tree[i]
                i -= i & -i
            total += seen - not_above
            seen += 1
            i = r
            while i <= len(ranks):
                tree[i] += 1
                i += i & -i
    return total


def _marker_size(n: int) -> float:
    return max(5.0, min(22.0, 40.0 / max(n, 1) ** 0.25))


def _mapped_counts(
    tasks: Mapping[str, WorkflowTask], outcomes: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """{mapped task: {status: number of its children}} from a run's outcomes: a mapped task
    is drawn as one node that stands for its children, however many."""
    from wfkit.metrics.frames import child_of

    out: dict[str, dict[str, int]] = {}
    for tid, o in outcomes.items():
        if tid in tasks:
            continue
        parent, _ = child_of(tid, tasks)
        if parent is not None:
            counts = out.setdefault(parent, {})
            s = o.get("status") or "pending"
            counts[s] = counts.get(s, 0) + 1
    return out


def _count_text(counts: Mapping[str, int]) -> str:
    order = list(STATUS_COLORS)
    keys = sorted(counts, key=lambda k: order.index(k) if k in order else len(order))
    return ", ".join(f"{counts[k]:,} {k}" for k in keys)


def _task_hover(
    task: WorkflowTask, outcome: Mapping[str, Any] | None,
    children: Mapping[str, int] | None = None,
) -> str:
    parts = [f"<b>{_esc(task.task_id, 80)}</b>"]
    if task.description and task.description != task.task_id:
        parts.append(_esc(task.description, 120))
    if task.map is not None:
        line = f"mapped over {_esc(task.map, 80)}"
        if children is not None:
            line += f": {sum(children.values()):,} tasks ({_count_text(children)})"
        parts.append(line)
    caps = ", ".join(sorted(task.capability_set)) or "any agent"
    parts.append(f"needs: {_esc(caps, 120)}")
    parts.append(f"priority {task.priority:g} · estimate {_fmt_seconds(task.estimated_duration)}")
    deps = task.dependencies
    if deps:
        shown = ", ".join(deps[:5]) + (f" … (+{len(deps) - 5})" if len(deps) > 5 else "")
        parts.append(f"after: {_esc(shown, 160)}")
    if outcome:
        parts.append(f"status: <b>{_esc(outcome.get('status') or 'pending')}</b>")
        agent = outcome.get("agent_id")
        if agent:
            attempts = outcome.get("attempts")
            extra = f" · {attempts} attempts" if attempts and attempts > 1 else ""
            parts.append(f"agent: {_esc(agent, 80)}{extra}")
        duration = outcome.get("duration")
        if duration is not None and outcome.get("status") in ("completed", "failed", "cancelled"):
            parts.append(f"duration: {_fmt_seconds(duration)}")
        error = outcome.get("error")
        if error:
            parts.append(f"error: {_esc(error, 200)}")
    return "<br>".join(parts)


def _edge_xy(layout: DagLayout, pairs: Iterable[tuple[int, int]]) -> tuple[Any, Any]:
    """Line coordinates for edges, NaN between segments (numpy: plotly skips validation)."""
    import numpy as np

    pairs = list(pairs)
    xs = np.full(3 * len(pairs), np.nan)
    ys = np.full(3 * len(pairs), np.nan)
    if pairs:
        a = np.fromiter((p[0] for p in pairs), dtype=np.intp, count=len(pairs))
        b = np.fromiter((p[1] for p in pairs), dtype=np.intp, count=len(pairs))
        x, y = np.asarray(layout.x), np.asarray(layout.y)
        xs[0::3], xs[1::3] = x[a], x[b]
        ys[0::3], ys[1::3] = y[a], y[b]
    return xs, ys


def discrete_colorscale(colors: list[str]) -> list[list[Any]]:
    """A colorscale mapping the integer codes 0..k-1 (with cmin=-0.5, cmax=k-0.5) to colors.

    Numeric colour codes keep figures of thousands of nodes cheap to build and to update.
    """
    k = max(len(colors), 1)
    scale: list[list[Any]] = []
    for i, c in enumerate(colors):
        scale.append([i / k, c])
        scale.append([(i + 1) / k, c])
    return scale or [[0, _UNKNOWN_COLOR], [1, _UNKNOWN_COLOR]]


def dag_figure(
    workflow_or_tasks: WorkflowLike,
    results: ResultsLike | None = None,
    *,
    title: str | None = None,
    labels: bool | None = None,
    group: GroupBy = "auto",
    max_nodes: int = 150,
    expand: Iterable[str] = (),
) -> Figure:
    """The workflow's DAG: a layered layout, one marker per task, dependencies as lines.

    Above ``max_nodes`` tasks (``group="auto"``) it is drawn as groups of tasks
    (:func:`wfkit.grouping.group_tasks`): one square per group with its size, a stacked bar
    of its status counts and its total and mean duration on hover; edges between groups
    carry their multiplicity. ``group="none"`` draws every task, a callable names the
    groups; ``expand=["mDiffFit"]`` draws those groups' tasks.

    With ``results`` (a RunResult, its ``task_results``, a task frame or ``{task_id:
    status}``) nodes are coloured by status and the hover text adds agent, attempts, duration
    and error; without, by required capabilities. The critical path (by observed durations
    where known, estimates elsewhere) is drawn thick and dark. Task ids are written next to
    the nodes up to 40 tasks (``labels=`` forces it either way); beyond that they are in the
    hover text, which keeps a 200-task DAG readable.
    """
    workflow_id, graph = _workflow_graph(workflow_or_tasks)
    tasks = graph.tasks
    outcomes = task_outcomes(results)
    unknown = [tid for tid in outcomes if tid not in tasks]
    if unknown and len(unknown) == len(outcomes):
        raise ValidationError(
            f"results are for other tasks ({', '.join(map(repr, unknown[:5]))}): pass the "
            f"results of a run of workflow {workflow_id!r}"
        )
    from wfkit.grouping import group_tasks

    grouping = group_tasks(graph, group, max_nodes=max_nodes, expand=expand)
    if grouping.grouped:
        return build_group_figure(workflow_id, tasks, grouping, outcomes, title=title,
                                  labels=labels, graph=graph)
    return build_dag_figure(workflow_id, tasks, outcomes, title=title, labels=labels,
                            graph=graph)


#: The node trace's index in a DAG figure (edges, critical path, nodes, legend entries...).
DAG_NODE_TRACE = 2


def build_dag_figure(
    workflow_id: str,
    tasks: Mapping[str, WorkflowTask],
    outcomes: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
    labels: bool | None = None,
    live: bool = False,
    graph: TaskGraph | None = None,
) -> Figure:
    """The DAG figure from validated tasks (``graph``: their TaskGraph, when at hand). ``live`` colours by status from the start (all
    pending), for a view whose colours will change: the node trace's ``marker.color`` then
    holds codes into :data:`STATUS_COLORS` order, and the status legend is left to the view."""
    import numpy as np

    from wfkit.graph import critical_path

    outcomes = outcomes or {}
    n = len(tasks)
    if not n:
        return _empty(title or f"{workflow_id}: no tasks", "this workflow has no tasks yet")
    layout = dag_layout(tasks)

    def duration(task: WorkflowTask) -> float:
        """Observed where the task completed, nothing where it failed or never ran (it moved
        the workflow no further), the estimate where it has not run yet."""
        o = outcomes.get(task.task_id) if outcomes is not None else None
        if o:
            if o.get("status") in ("skipped", "cancelled", "failed", "cached"):
                return 0.0
            d = o.get("duration")
            if d is not None and o.get("agent_id"):
                return float(d)
        return float(task.estimated_duration)

    # before any run the durations are the estimates: the default, with no call per task
    path, length = critical_path(graph if graph is not None else tasks,
                                 duration if outcomes else None)
    on_path = set(path)
    idx = layout.index
    ordered = [tasks[tid] for tid in layout.ids]
    mapped = _mapped_counts(tasks, outcomes) if outcomes else {}
    if mapped:  # the nodes stand for the workflow's own tasks; children count in their node
        outcomes = {tid: o for tid, o in outcomes.items() if tid in tasks}

    fig = _new_figure(live)
    ex, ey = _edge_xy(layout, layout.edges)
    fig.add_trace(go.Scatter(
        x=ex, y=ey, mode="lines", line={"width": 1, "color": _EDGE_COLOR},
        hoverinfo="skip", showlegend=False, name="dependencies",
    ))
    cx, cy = _edge_xy(layout, [(idx[a], idx[b]) for a, b in zip(path, path[1:], strict=False)])
    fig.add_trace(go.Scatter(
        x=cx, y=cy, mode="lines", line={"width": 3.5, "color": _CRITICAL_COLOR},
        hoverinfo="skip", name=f"critical path ({_fmt_seconds(length)})",
        legendgroup="critical", showlegend=len(path) > 1,
    ))

    if outcomes or live:
        names = list(STATUS_COLORS)
        statuses = [(outcomes.get(t.task_id) or {}).get("status") or "pending" for t in ordered]
        names += sorted({s for s in statuses if s not in STATUS_COLORS})
        palette = [status_color(s) for s in names]
        code_of = {s: i for i, s in enumerate(names)}
        codes = np.fromiter((code_of[s] for s in statuses), dtype=np.int16, count=n)
        # live (the dashboard): its status badges, in these colours, are the legend
        shown = [] if live else [s for s in names if s in set(statuses)]
    else:
        sigs = [", ".join(sorted(t.capability_set)) or "any agent" for t in ordered]
        names = list(dict.fromkeys(sigs))
        if len(names) > len(_PALETTE):
            names, sigs = ["task"], ["task"] * n
        palette = list(_PALETTE[: len(names)])
        code_of = {s: i for i, s in enumerate(names)}
        codes = np.fromiter((code_of[s] for s in sigs), dtype=np.int16, count=n)
        shown = names
    critical = np.fromiter((t.task_id in on_path for t in ordered), dtype=bool, count=n)
    show_labels = n <= 40 if labels is None else labels
    ids = np.array(layout.ids, dtype=object)
    group = [t.map is not None for t in ordered]  # a mapped task: one node for its children
    text = ids
    if show_labels and mapped:
        text = np.array([
            f"{t.task_id} [{sum(mapped[t.task_id].values()):,}]" if t.task_id in mapped
            else t.task_id for t in ordered
        ], dtype=object)
    fig.add_trace(go.Scatter(
        x=np.asarray(layout.x), y=np.asarray(layout.y),
        mode="markers+text" if show_labels else "markers",
        text=text if show_labels else None,
        textposition="top center",
        textfont={"size": 10},
        customdata=ids,
        hovertext=np.array(
            [_task_hover(t, outcomes.get(t.task_id), mapped.get(t.task_id)) for t in ordered],
            dtype=object,
        ),
        hoverinfo="text",
        marker={
            "size": _marker_size(n) if not any(group) else np.where(
                group, 1.5 * _marker_size(n), _marker_size(n)
            ),
            "symbol": np.where(group, "square", "circle") if any(group) else "circle",
            "color": codes,
            "colorscale": discrete_colorscale(palette),
            "cmin": -0.5,
            "cmax": len(palette) - 0.5,
            "showscale": False,
            "line": {"width": np.where(critical, 2.5, 0.6), "color": _CRITICAL_COLOR},
        },
        name="tasks",
        showlegend=False,
    ))
    for name in shown:  # legend entries: the node trace has many colours
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers",
            marker={"size": 10, "color": palette[code_of[name]]},
            name=name, showlegend=True, hoverinfo="skip",
        ))
    if title is None:
        title = f"<b>{html.escape(workflow_id)}</b> · {n} task{'s' if n != 1 else ''}"
        if outcomes:
            counts: dict[str, int] = {}
            for o in outcomes.values():
                s = o.get("status") or "pending"
                counts[s] = counts.get(s, 0) + 1
            title += " · " + ", ".join(
                f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: code_of.get(k, 99))
            )
        if mapped:
            title += f" · {sum(sum(c.values()) for c in mapped.values()):,} mapped"
    height = int(min(930, max(350, 150 + 34 * layout.width)))
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        height=height,
        autosize=True,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.01, "xanchor": "left", "x": 0},
        xaxis={"visible": False, "range": [-0.5, layout.depth - 0.5]},
        yaxis={"visible": False, "range": [-(layout.width / 2) - 0.2, layout.width / 2 + 0.5]},
        meta={"wfkit": "dag", "workflow_id": workflow_id, "critical_path": path,
              "statuses": names if (outcomes or live) else None},
    )
    return fig


#: The status a group node's colour shows: the first of these its tasks have.
GROUP_URGENCY = ("failed", "running", "retrying", "pending", "cancelled", "skipped",
                 "completed", "cached")


def group_stats(
    tasks: Mapping[str, WorkflowTask], grouping: Grouping,
    outcomes: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per group: ``size`` (tasks, a mapped task counting its children once they exist),
    ``counts`` by status (``pending`` for tasks that have not run), ``total`` and ``mean``
    duration (observed where the task ran, else its estimate)."""
    outcomes = outcomes or {}
    children = _mapped_counts(tasks, outcomes) if outcomes else {}
    child_time: dict[str, tuple[float, int]] = {}
    if children:
        from wfkit.metrics.frames import child_of

        for tid, o in outcomes.items():
            if tid not in tasks and o.get("duration") is not None:
                parent, _ = child_of(tid, tasks)
                if parent is not None:
                    t, k = child_time.get(parent, (0.0, 0))
                    child_time[parent] = (t + float(o["duration"]), k + 1)
    out: dict[str, dict[str, Any]] = {}
    if not outcomes:  # a drawing before any run: all pending, durations are the estimates
        for g, tids in grouping.members.items():
            est = [d for d in (tasks[t].estimated_duration for t in tids) if d is not None]
            total = float(sum(map(float, est)))
            out[g] = {"size": len(tids), "counts": {"pending": len(tids)}, "total": total,
                      "mean": total / len(est) if est else None, "tasks": len(tids)}
        return out
    for g, tids in grouping.members.items():
        counts: dict[str, int] = {}
        total, timed = 0.0, 0
        for tid in tids:
            if tid in children:
                for st, k in children[tid].items():
                    counts[st] = counts.get(st, 0) + k
                t, k = child_time.get(tid, (0.0, 0))
                total, timed = total + t, timed + k
                continue
            o = outcomes.get(tid) or {}
            st = o.get("status") or "pending"
            counts[st] = counts.get(st, 0) + 1
            d = o.get("duration")
            if d is None and not outcomes:  # a drawing before any run: the estimates
                d = tasks[tid].estimated_duration
            if d is not None:
                total, timed = total + float(d), timed + 1
        out[g] = {"size": sum(counts.values()), "counts": counts, "total": total,
                  "mean": total / timed if timed else None, "tasks": len(tids)}
    return out


def _group_hover(g: str, stats: Mapping[str, Any], grouping: Grouping, measured: bool) -> str:
    tids = grouping.members[g]
    parts = [f"<b>{_esc(g, 80)}</b>", f"{stats['size']:,} task{'s' if stats['size'] != 1 else ''}"
             + (f" ({_count_text(stats['counts'])})" if measured else "")]
    what = "duration" if measured else "estimate"
    parts.append(f"total {what} {_fmt_seconds(stats['total'])} · mean "
                 f"{_fmt_seconds(stats['mean'])}")
    shown = ", ".join(tids[:3]) + (f" … (+{len(tids) - 3})" if len(tids) > 3 else "")
    parts.append(f"e.g. {_esc(shown, 160)}")
    deps = grouping.deps[g]
    if deps:
        parts.append("after: " + _esc(", ".join(
            f"{d} ×{grouping.edges[(d, g)]:,}" for d in deps[:5]
        ) + (f" … (+{len(deps) - 5})" if len(deps) > 5 else ""), 200))
    return "<br>".join(parts)


def build_group_figure(
    workflow_id: str,
    tasks: Mapping[str, WorkflowTask],
    grouping: Grouping,
    outcomes: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    title: str | None = None,
    labels: bool | None = None,
    live: bool = False,
    graph: TaskGraph | None = None,
) -> Figure:
    """The DAG drawn as groups (``graph``: the tasks' TaskGraph, when at hand): a square per group (sized by its tasks, coloured by its most
    urgent status), a stacked bar of its status counts under it, group edges labelled with
    their multiplicity, and the tasks' critical path through the groups it crosses.

    ``live`` (the dashboard) colours by status from the start, all pending, with
    ``marker.color`` codes into :data:`STATUS_COLORS` order (see :data:`GROUP_URGENCY`)."""
    import numpy as np

    from wfkit.agents.model import WorkflowTask as Task
    from wfkit.graph import critical_path

    outcomes = outcomes or {}
    measured = bool(outcomes)
    stats = group_stats(tasks, grouping, outcomes)
    nodes = {
        g: Task(g, g, [], 0, stats[g]["total"], list(grouping.deps[g]))
        for g in grouping.members
    }
    layout = dag_layout(nodes)
    idx = layout.index
    order = layout.ids
    m = len(order)

    def duration(task: WorkflowTask) -> float:
        o = outcomes.get(task.task_id) if outcomes is not None else None
        if o:
            if o.get("status") in ("skipped", "cancelled", "failed", "cached"):
                return 0.0
            if o.get("duration") is not None and o.get("agent_id"):
                return float(o["duration"])
        return float(task.estimated_duration)

    # before any run the durations are the estimates: the default, with no call per task
    path, length = critical_path(graph if graph is not None else tasks,
                                 duration if outcomes else None)
    gpath: list[str] = []
    for tid in path:
        g = grouping.of[tid]
        if not gpath or gpath[-1] != g:
            gpath.append(g)
    on_path = set(gpath)

    fig = _new_figure(live)
    pairs = [(idx[a], idx[b]) for a, b in grouping.edges]
    mult = np.fromiter(grouping.edges.values(), dtype=np.int64, count=len(pairs))
    ex, ey = _edge_xy(layout, pairs)
    fig.add_trace(go.Scatter(
        x=ex, y=ey, mode="lines", line={"width": 1, "color": _EDGE_COLOR},
        hoverinfo="skip", showlegend=False, name="dependencies",
    ))
    cx, cy = _edge_xy(layout, [(idx[a], idx[b]) for a, b in zip(gpath, gpath[1:], strict=False)])
    fig.add_trace(go.Scatter(
        x=cx, y=cy, mode="lines", line={"width": 3.5, "color": _CRITICAL_COLOR},
        hoverinfo="skip", name=f"critical path ({_fmt_seconds(length)})",
        legendgroup="critical", showlegend=len(gpath) > 1,
    ))

    sizes = np.array([stats[g]["size"] for g in order], dtype=float)
    urgency = GROUP_URGENCY
    if measured or live:
        names = list(STATUS_COLORS)
        extra = sorted({s for g in order for s in stats[g]["counts"] if s not in STATUS_COLORS})
        names += extra

        def shown_status(counts: Mapping[str, int]) -> str:
            for s in urgency:
                if counts.get(s):
                    return s
            return max(counts, key=counts.__getitem__) if counts else "pending"

        keys = [shown_status(stats[g]["counts"]) for g in order]
    else:
        sigs = {g: ", ".join(sorted(frozenset().union(
                    *{tasks[t].capability_set for t in grouping.members[g]}))) or "any agent"
                for g in order}
        names = list(dict.fromkeys(sigs[g] for g in order))
        keys = [sigs[g] for g in order]
        if len(names) > len(_PALETTE):
            names, keys = ["group"], ["group"] * m
    palette = [status_color(s) for s in names] if measured or live else \
        list(_PALETTE[: len(names)])
    code_of = {s: i for i, s in enumerate(names)}
    codes = np.fromiter((code_of[k] for k in keys), dtype=np.int16, count=m)
    ids = np.array(order, dtype=object)
    x, y = np.asarray(layout.x), np.asarray(layout.y)
    show_labels = m <= 80 if labels is None else labels
    text = np.array([f"{g} ×{stats[g]['size']:,}" if len(grouping.members[g]) > 1 or
                     stats[g]["size"] > 1 else g for g in order], dtype=object)
    critical = np.fromiter((g in on_path for g in order), dtype=bool, count=m)
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="markers+text" if show_labels else "markers",
        text=text if show_labels else None, textposition="top center", textfont={"size": 10},
        customdata=ids,
        hovertext=np.array([_group_hover(g, stats[g], grouping, measured) for g in order],
                           dtype=object),
        hoverinfo="text",
        marker={
            "size": np.clip(8 + 4 * np.log10(np.maximum(sizes, 1)) * 2, 8, 30),
            "symbol": ["square" if len(grouping.members[g]) > 1 else "circle" for g in order],
            "color": codes, "colorscale": discrete_colorscale(palette),
            "cmin": -0.5, "cmax": len(palette) - 0.5, "showscale": False,
            "line": {"width": np.where(critical, 2.5, 0.6), "color": _CRITICAL_COLOR},
        },
        name="groups", showlegend=False,
    ))
    if measured:  # a stacked bar of status counts under each group
        width, drop = 0.5, 0.28
        start = x - width / 2
        done = np.zeros(m)
        for s in names:
            share = np.array([stats[g]["counts"].get(s, 0) for g in order], dtype=float) / \
                np.maximum(sizes, 1)
            if not share.any():
                continue
            a, b = start + done * width, start + (done + share) * width
            keep = share > 0
            bx = np.full(3 * int(keep.sum()), np.nan)
            by = np.full(3 * int(keep.sum()), np.nan)
            bx[0::3], bx[1::3] = a[keep], b[keep]
            by[0::3] = by[1::3] = y[keep] - drop
            fig.add_trace(go.Scatter(
                x=bx, y=by, mode="lines", line={"width": 6, "color": status_color(s)},
                name=s, legendgroup=s, hoverinfo="skip", showlegend=True,
            ))
            done += share
    elif not live:  # live: the dashboard's status badges, in these colours, are the legend
        for name in names:
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers",
                marker={"size": 10, "color": palette[code_of[name]]},
                name=name, showlegend=True, hoverinfo="skip",
            ))
    many = mult > 1
    if many.any():  # multiplicities at the edges' midpoints
        tail = np.fromiter((p[0] for p in pairs), dtype=np.intp, count=len(pairs))[many]
        head = np.fromiter((p[1] for p in pairs), dtype=np.intp, count=len(pairs))[many]
        fig.add_trace(go.Scatter(
            x=(x[tail] + x[head]) / 2, y=(y[tail] + y[head]) / 2, mode="text",
            text=[f"×{k:,}" for k in mult[many]], textfont={"size": 9, "color": "#555"},
            hovertext=[f"{order[i]} → {order[j]}: {k:,} dependencies"
                       for i, j, k in zip(tail, head, mult[many], strict=True)],
            hoverinfo="text", showlegend=False, name="multiplicity",
        ))
    n_tasks = sum(st["size"] for st in stats.values())
    if title is None:
        title = (f"<b>{html.escape(workflow_id)}</b> · {n_tasks:,} tasks in {m} groups "
                 f"(by {grouping.level})")
        if measured:
            counts: dict[str, int] = {}
            for st in stats.values():
                for k, v in st["counts"].items():
                    counts[k] = counts.get(k, 0) + v
            title += " · " + _count_text(counts)
    height = int(min(930, max(350, 150 + 44 * layout.width)))
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        height=height, autosize=True,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.01, "xanchor": "left", "x": 0},
        xaxis={"visible": False, "range": [-0.5, layout.depth - 0.5]},
        yaxis={"visible": False, "range": [-(layout.width / 2) - 0.5, layout.width / 2 + 0.5]},
        meta={"wfkit": "dag", "workflow_id": workflow_id, "critical_path": path,
              "groups": {g: stats[g]["size"] for g in order}, "grouped_by": grouping.level,
              "statuses": names if measured or live else None},
    )
    return fig


# -- Gantt ----------------------------------------------------------------------------------------


def _lanes(agents: list[str], starts: list[float], ends: list[float]) -> tuple[list[int], dict]:
    """A slot per attempt inside its agent's lane, so concurrent attempts do not overlap."""
    import heapq

    order = sorted(range(len(agents)), key=lambda i: (agents[i], starts[i], ends[i]))
    slot = [0] * len(agents)
    per_agent: dict[str, int] = {}
    free: dict[str, list[int]] = {}
    busy: dict[str, list[tuple[float, int]]] = {}
    for i in order:
        a = agents[i]
        heap = busy.setdefault(a, [])
        spare = free.setdefault(a, [])
        while heap and heap[0][0] <= starts[i]:
            heapq.heappush(spare, heapq.heappop(heap)[1])
        if spare:
            s = heapq.heappop(spare)
        else:
            s = per_agent.get(a, 0)
            per_agent[a] = s + 1
        slot[i] = s
        heapq.heappush(heap, (ends[i], s))
    return slot, per_agent


#: Above this many attempts the Gantt chart draws them with WebGL (``Scattergl``) lines.
GANTT_WEBGL_ABOVE = 2_000


def gantt_figure(task_frame: pd.DataFrame, *, title: str | None = None) -> Figure:
    """One lane per agent, one bar per attempt, coloured by the attempt's status.

    Above :data:`GANTT_WEBGL_ABOVE` attempts each is a thick WebGL line instead of a bar
    (10,000 attempts stay responsive; the hover still names the task).

    Concurrent attempts of an agent (capacity > 1) get rows of their own inside its lane.
    Rows that never ran (skipped tasks) have no bar; an attempt with no end yet is drawn
    up to the latest time in the frame.
    """
    import pandas as pd

    _require(task_frame, "gantt_figure()", ("task_id", "agent_id", "status", "started_at",
                                            "finished_at"))
    ran = task_frame[task_frame["agent_id"].notna() & task_frame["started_at"].notna()]
    if ran.empty:
        return _empty(title or "Attempts per agent", "no attempt has started in this frame")
    start = _naive_utc(ran["started_at"])
    end = _naive_utc(ran["finished_at"])
    horizon = max(end.max() if end.notna().any() else start.max(), start.max())
    end = end.fillna(horizon)
    t0 = start.min()
    s_sec = ((start - t0).dt.total_seconds()).tolist()
    e_sec = ((end - t0).dt.total_seconds()).tolist()
    agents = [str(a) for a in ran["agent_id"].tolist()]
    slots, lanes = _lanes(agents, s_sec, e_sec)
    base: dict[str, int] = {}
    row = 0
    for a in sorted(lanes):
        base[a] = row
        row += lanes[a]
    ys = [base[a] + s + 0.5 for a, s in zip(agents, slots, strict=True)]
    statuses = [str(s) for s in ran["status"].fillna("running").tolist()]
    if "final" in ran.columns:  # a failed attempt that was retried
        for i, final in enumerate(ran["final"].tolist()):
            if statuses[i] == "failed" and _value(final) is False:
                statuses[i] = "failed, retried"
    cols = ran.columns
    tids = ran["task_id"].astype(str).tolist()
    attempts = ran["attempt"].tolist() if "attempt" in cols else [None] * len(tids)
    errors = ran["error"].tolist() if "error" in cols else [None] * len(tids)
    runs = ran["run_id"].astype(str).tolist() if "run_id" in cols else [None] * len(tids)
    durations = [e - s for s, e in zip(s_sec, e_sec, strict=True)]

    fig = Figure()
    by_status: dict[str, list[int]] = {}
    for i, s in enumerate(statuses):
        by_status.setdefault(s, []).append(i)
    order = [s for s in STATUS_COLORS if s in by_status] + sorted(
        s for s in by_status if s not in STATUS_COLORS
    )
    starts = start.tolist()
    tiny = max(e_sec, default=0.0) * 0.004
    webgl = len(tids) > GANTT_WEBGL_ABOVE
    line_px = max(2.0, min(14.0, 0.8 * min(1400, max(300, 140 + 26 * sum(lanes.values())))
                           / max(sum(lanes.values()), 1) * 0.8))
    for s in order:
        rows = by_status[s]
        hover = []
        for i in rows:
            text = f"<b>{_esc(tids[i], 80)}</b>"
            if _value(attempts[i]) is not None:
                text += f" · attempt {attempts[i]}"
            text += f"<br>agent {_esc(agents[i], 80)} · {s}<br>"
            text += f"start {pd.Timestamp(starts[i]).strftime('%H:%M:%S.%f')[:-3]} UTC"
            text += f" · {_fmt_seconds(durations[i])}"
            if runs[i] is not None:
                text += f"<br>run {_esc(runs[i], 40)}"
            if _value(errors[i]):
                text += f"<br>error: {_esc(errors[i], 200)}"
            hover.append(text)
        if webgl:  # a thick WebGL line per attempt: thousands of bars stay responsive
            xs: list[Any] = []
            yv: list[Any] = []
            hv: list[Any] = []
            for k, i in enumerate(rows):
                end_at = starts[i] + pd.Timedelta(seconds=max(durations[i], tiny))
                xs += [starts[i], end_at, None]
                yv += [ys[i], ys[i], None]
                hv += [hover[k], hover[k], None]
            fig.add_trace(go.Scattergl(
                x=xs, y=yv, mode="lines", line={"width": line_px, "color": status_color(s)},
                name=s, legendgroup=s, hovertext=hv, hoverinfo="text",
            ))
            continue
        fig.add_trace(go.Bar(
            orientation="h",
            base=[starts[i] for i in rows],
            x=[durations[i] * 1000.0 for i in rows],  # a date axis measures bars in ms
            y=[ys[i] for i in rows],
            width=0.8,
            marker={"color": status_color(s), "line": {"width": 0}},
            name=s,
            legendgroup=s,
            hovertext=hover,
            hoverinfo="text",
        ))
        short = [k for k, i in enumerate(rows) if durations[i] < tiny]
        if short:  # too short to see as a bar (an instant failure): a marker at its start
            fig.add_trace(go.Scatter(
                x=[starts[rows[k]] for k in short], y=[ys[rows[k]] for k in short],
                mode="markers", marker={"symbol": "diamond", "size": 9,
                                        "color": status_color(s),
                                        "line": {"width": 1, "color": "#ffffff"}},
                name=s, legendgroup=s, showlegend=False,
                hovertext=[hover[k] for k in short], hoverinfo="text",
            ))
    shapes = [
        {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": b, "y1": b,
         "line": {"width": 1, "color": "#cccccc"}}
        for b in list(base.values())[1:]
    ]
    lanes_total = row
    fig.update_layout(
        template=_TEMPLATE,
        title={"text": title or f"Attempts per agent · {len(tids)} attempts", "x": 0.01},
        barmode="overlay",
        height=int(min(1400, max(300, 140 + 26 * lanes_total))),
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        xaxis={"type": "date", "title": "time (UTC)"},
        yaxis={
            "tickmode": "array",
            "tickvals": [base[a] + lanes[a] / 2 for a in base],
            "ticktext": list(base),
            "range": [lanes_total, 0],
            "showgrid": False,
            "zeroline": False,
        },
        shapes=shapes,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        meta={"wfkit": "gantt"},
    )
    return fig


# -- agent load -----------------------------------------------------------------------------------


def _capacity_of(value: Any) -> int | None:
    cap = getattr(value, "capacity", value)
    return None if cap is None else int(cap)


def agent_load_figure(
    frame: pd.DataFrame,
    capacities: Mapping[str, int] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Each agent's load over time (a step line) against its capacity (dashed); with the
    capacity known, each agent's title adds its utilisation (busy time / capacity × the
    frame's time span) and its peak concurrency.

    Takes an agent load frame (``agent_id``, ``timestamp``, ``load``, ``capacity``) or a task
    frame, from whose attempt intervals the load is derived; for a task frame, ``capacities``
    (agent id -> capacity, or an orchestrator's ``agents``) adds the capacity lines.
    """
    from plotly.subplots import make_subplots

    _require(frame, "agent_load_figure()", ())
    if "load" in frame.columns:
        _require(frame, "agent_load_figure(load frame)", ("agent_id", "timestamp", "load"))
        load = frame
        if capacities is not None:
            caps = {str(k): _capacity_of(v) for k, v in capacities.items()}
            load = load.assign(capacity=load["agent_id"].astype(str).map(caps))
    else:
        _require(frame, "agent_load_figure(task frame)", ("agent_id", "started_at",
                                                          "finished_at"))
        from wfkit.metrics.frames import agent_load

        caps = {str(k): _capacity_of(v) for k, v in (capacities or {}).items()}
        load = agent_load(frame, {k: v for k, v in caps.items() if v is not None})
    load = load[load["agent_id"].notna() & load["timestamp"].notna()]
    if load.empty:
        return _empty(title or "Agent load", "no agent has run anything in this frame")
    load = load.assign(_t=_naive_utc(load["timestamp"])).sort_values(
        ["agent_id", "_t"], kind="stable"
    )
    agents = sorted(load["agent_id"].astype(str).unique())
    n = len(agents)
    row_px = max(70, min(130, 1100 // n))
    fig = make_subplots(
        rows=n, cols=1, shared_xaxes=True, vertical_spacing=min(0.2, 44 / (90 + row_px * n)),
        subplot_titles=agents, figure=Figure(),
    )
    t_end = load["_t"].max()
    span = (t_end - load["_t"].min()).total_seconds()
    capacity_in_legend = False
    for i, agent in enumerate(agents, start=1):
        rows = load[load["agent_id"].astype(str) == agent]
        t = rows["_t"].tolist() + [t_end]
        y = [int(v) if _value(v) is not None else 0 for v in rows["load"].tolist()]
        y.append(y[-1])
        peak = max(y)
        fig.add_trace(go.Scatter(
            x=t, y=y, mode="lines", line={"shape": "hv", "width": 1.5, "color": "#1f77b4"},
            fill="tozeroy", fillcolor="rgba(31, 119, 180, 0.25)", name="load",
            legendgroup="load", showlegend=i == 1,
            hovertemplate=f"{html.escape(agent)}: load %{{y}}<extra></extra>",
        ), row=i, col=1)
        cap_values = rows["capacity"].tolist() if "capacity" in rows.columns else []
        cap_values = [_value(v) for v in cap_values]
        top = peak
        if cap_values and any(v is not None for v in cap_values):
            known = [int(v) if v is not None else None for v in cap_values]
            last = next(v for v in reversed(known) if v is not None)
            cy = [v if v is not None else last for v in known] + [last]
            top = max(top, max(cy))
            fig.add_trace(go.Scatter(
                x=t, y=cy, mode="lines",
                line={"shape": "hv", "width": 1.5, "dash": "dash", "color": "#d62728"},
                name="capacity", legendgroup="capacity", showlegend=not capacity_in_legend,
                hovertemplate=f"{html.escape(agent)}: capacity %{{y}}<extra></extra>",
            ), row=i, col=1)
            capacity_in_legend = True
            if span > 0 and last:  # what the agent did over the run, next to its steps
                busy = sum(y[k] * (t[k + 1] - t[k]).total_seconds() for k in range(len(t) - 1))
                fig.layout.annotations[i - 1].text = (
                    f"{html.escape(agent)} · utilisation {busy / (last * span):.0%} · "
                    f"peak {peak}/{last}"
                )
        fig.update_yaxes(range=[0, top + max(0.5, top * 0.1)], rangemode="tozero",
                         row=i, col=1, nticks=4)
    fig.update_xaxes(title_text="time (UTC)", row=n, col=1)
    fig.update_layout(
        template=_TEMPLATE,
        title={"text": title or f"Agent load · {n} agent{'s' if n != 1 else ''}", "x": 0.01},
        height=int(90 + row_px * n),
        margin={"l": 10, "r": 10, "t": 70, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        hovermode="x unified",
        meta={"wfkit": "agent_load"},
    )
    return fig


# -- runs -----------------------------------------------------------------------------------------


def summary_figure(workflow_frame: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Success rate (top) and duration (bottom) of each run, in start order.

    One line per workflow for the success rate; duration bars coloured by the run's status.
    """
    import pandas as pd
    from plotly.subplots import make_subplots

    _require(workflow_frame, "summary_figure()", (
        "run_id", "workflow_id", "status", "started_at", "duration", "total_tasks",
        "successful_tasks",
    ))
    runs = workflow_frame[workflow_frame["run_id"].notna()]
    if runs.empty:
        return _empty(title or "Runs", "no run recorded yet")
    runs = runs.assign(_t=_naive_utc(runs["started_at"])).sort_values("_t", kind="stable")
    total = pd.to_numeric(runs["total_tasks"], errors="coerce").astype("float64")
    ok = pd.to_numeric(runs["successful_tasks"], errors="coerce").astype("float64")
    rate = (ok / total.where(total > 0)).fillna(1.0)
    labels = [
        f"{t.strftime('%m-%d %H:%M:%S') if not pd.isna(t) else '?'} · {str(r)[:8]}"
        for t, r in zip(runs["_t"], runs["run_id"], strict=True)
    ]
    runs = runs.assign(_label=labels, _rate=rate.to_numpy())
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=("success rate", "duration"), figure=Figure(),
    )
    for i, (wid, rows) in enumerate(runs.groupby("workflow_id", sort=False)):
        color = _PALETTE[i % len(_PALETTE)]
        hover = [
            f"<b>{_esc(wid, 80)}</b> · run {_esc(r.run_id, 40)}<br>{_esc(r.status)} · "
            f"{_value(r.successful_tasks) or 0}/{_value(r.total_tasks) or 0} tasks completed"
            for r in rows.itertuples()
        ]
        fig.add_trace(go.Scatter(
            x=rows["_label"].tolist(), y=rows["_rate"].tolist(), mode="lines+markers",
            name=str(wid), line={"color": color}, marker={"size": 8},
            hovertext=hover, hoverinfo="text", legendgroup=f"wf-{wid}",
        ), row=1, col=1)
    for status, rows in runs.groupby("status", sort=False):
        fig.add_trace(go.Bar(
            x=rows["_label"].tolist(),
            y=pd.to_numeric(rows["duration"], errors="coerce").tolist(),
            name=f"run {status}", marker={"color": status_color(str(status))},
            hovertext=[
                f"<b>{_esc(r.workflow_id, 80)}</b> · run {_esc(r.run_id, 40)}<br>"
                f"{_esc(status)} in {_fmt_seconds(_value(r.duration))}"
                for r in rows.itertuples()
            ],
            hoverinfo="text", legendgroup=f"status-{status}",
        ), row=2, col=1)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="seconds", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels)
    n = len(runs)
    fig.update_layout(
        template=_TEMPLATE,
        title={"text": title or f"Runs · {n} run{'s' if n != 1 else ''}", "x": 0.01},
        height=520,
        margin={"l": 10, "r": 10, "t": 70, "b": 40},
        barmode="overlay",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "xanchor": "right", "x": 1},
        meta={"wfkit": "summary"},
    )
    return fig
