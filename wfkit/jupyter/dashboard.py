"""``Dashboard``: a live ipywidgets view of every run of an orchestrator.

The dashboard is an event subscriber like any other. Its callback folds the event into the
run's state and, if no redraw is pending, asks the running event loop for one
(``call_later``): the widgets are redrawn at most once per ``interval`` (0.1 s) with
everything that arrived meanwhile, so a run of thousands of tasks sends a handful of widget
messages, not one per task; and never sooner than 39 times what the previous redraw took, so
redrawing takes at most a fortieth of the loop's time at any size or machine load. ``RunFinished`` redraws at once, so when ``await
orch.execute_workflow(...)`` returns the widgets already show the final state. Widgets are
only touched from the loop's thread (an event from another thread hands the redraw over with
``call_soon_threadsafe``); no thread is started.

Folding is cheap because a run's task statuses live in a ``bytearray`` of status codes (one
byte per task, in the run's task order): a task event is one dict lookup and one byte write;
counts are ``bytearray.count``; the DAG's colours are one numpy gather (a group's counts one
bincount). Rich per-node hover
text (agent, attempt, duration, error) is kept up to ``hover_tasks`` tasks; beyond that the
colours still follow every task. Agent load is read from the agents when drawing.

What a saved notebook keeps: run headless (papermill, ``nbconvert --execute``: no notebook UI
sent the cell), the dashboard's output is displayed under a display id and, at each run's end,
replaced by :meth:`Dashboard.snapshot_html` (the counts, bar, DAG picture, load and events), so
a reader without the kernel sees the final state; its figures save a small loader instead of
Plotly's JavaScript (:mod:`wfkit.jupyter.livefigure`). In a notebook UI the output stays the
live widget and nothing is redrawn.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from wfkit.clock import SYSTEM, Clock, Timer
from wfkit.colors import RUN_BAR_COLORS, STATUS_COLORS, status_color
from wfkit.events import (
    Event,
    EventSource,
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskMapped,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    WorkflowCreated,
)
from wfkit.jupyter.livefigure import LiveFigure, run_by_notebook_ui
from wfkit.plots import DAG_NODE_TRACE, GROUP_URGENCY, build_dag_figure, build_group_figure
from wfkit.statuses import FINAL_STATUSES

__all__ = ["Dashboard", "follows"]

def follows(orchestrator: Any) -> bool:
    """True while an open :class:`Dashboard` (or another subscriber that shows the runs'
    progress) follows ``orchestrator``."""
    return bool(getattr(orchestrator, "followed", False))

_STATUSES = tuple(STATUS_COLORS)  # the DAG figure's live colour codes use this order
PENDING, RUNNING, RETRYING, COMPLETED, FAILED, SKIPPED, CANCELLED, CACHED = range(8)
assert _STATUSES[COMPLETED] == "completed" and _STATUSES[CACHED] == "cached"
_FINISHED = (*FINAL_STATUSES, "cached")
_CODE_OF: dict[type, int] = {
    TaskStarted: RUNNING,
    TaskRetrying: RETRYING,
    TaskCompleted: COMPLETED,
    TaskFailed: FAILED,  # RETRYING when not final
    TaskSkipped: SKIPPED,
    TaskCancelled: CANCELLED,
}
# a finished run's bar: green, red when a task failed, grey when cancelled (RUN_BAR_COLORS)
_BAR_STYLE = {"completed": "success", "failed": "danger", "cancelled": ""}
_HOVER = "%{hovertext}<br>%{customdata}<extra></extra>"
# the least gap between two redraws, as a multiple of what the last one took: redrawing
# takes at most 1/40 of the loop's time, so its cost per run stays a small constant share
# (in a kernel a large run's redraw takes a few milliseconds, most of it sending the widget
# messages: a large run still redraws several times a second)
_SPACING = 39.0
_MAX_GAP = 1.0  # but a slow machine still sees its run move every second


class _RunView:
    """What the dashboard knows of one run: a status code per task, folded from events."""

    __slots__ = ("run_id", "workflow_id", "task_ids", "index", "codes", "last", "started_at",
                 "finished_at", "state", "resumed", "own_index", "spans")

    def __init__(self, ev: RunStarted, index: dict[str, int] | None, rich: bool) -> None:
        self.run_id = ev.run_id
        self.workflow_id = ev.workflow_id
        self.task_ids = ev.task_ids
        self.own_index = index is None  # else the DAG view's, shared by runs: never grown
        self.index = index if index is not None else {t: i for i, t in enumerate(ev.task_ids)}
        self.codes = bytearray(len(ev.task_ids))  # all PENDING
        self.last: list[Event | None] | None = [None] * len(ev.task_ids) if rich else None
        for tid in ev.resumed:
            i = self.index.get(tid)  # a mapped child that finished before is counted later
            if i is not None:
                self.codes[i] = COMPLETED
        self.started_at = ev.timestamp
        self.finished_at: float | None = None
        # agent, start, end of each ended attempt, flat (no tuple per attempt to keep): what
        # each agent did, for the end of run (agent None: a mapped task gathering its
        # children, which no agent ran)
        self.spans: list[Any] = []
        self.state = "running"
        self.resumed = len(ev.resumed)

    def add_children(self, task_id: str, count: int) -> None:
        """A task mapped into ``count`` children: the run's total grows by ``count``."""
        if not self.own_index:
            self.index = dict(self.index)
            self.own_index = True
        index = self.index
        base = len(self.task_ids)
        children = [f"{task_id}[{c}]" for c in range(count)]
        for c, cid in enumerate(children):
            index[cid] = base + c
        self.task_ids = (*self.task_ids, *children)
        self.codes.extend(bytes(count))  # PENDING
        if self.last is not None:
            self.last.extend([None] * count)
        i = index.get(task_id)
        if i is not None:
            self.codes[i] = RUNNING  # until its last child ends

    @property
    def total(self) -> int:
        return len(self.task_ids)

    def counts(self) -> dict[str, int]:
        codes = self.codes
        return {s: codes.count(i) for i, s in enumerate(_STATUSES)}


class _DagView:
    """The live DAG figure of one workflow, built once and reused by every run of it, with
    the task order runs report (``RunStarted.task_ids``) mapped to the figure's node order."""

    __slots__ = ("tasks_ref", "figure", "ids", "task_ids", "index", "_perm", "_other",
                 "grouping", "_node_of", "_nodes", "workflow_id", "tasks", "expanded", "graph")

    def __init__(self, workflow_id: str, tasks: dict[str, Any], tasks_ref: Any,
                 max_nodes: int = 150, expand: tuple[str, ...] = (),
                 like: _DagView | None = None, graph: Any = None) -> None:
        """``expand`` names groups drawn as their tasks (a click on a group asks for it);
        ``like``, the same workflow's folded view, lends its task index, so that runs
        keep their fast path whichever view shows; ``graph`` is the tasks' TaskGraph, when
        the orchestrator has it (its numbering spares the drawing a pass)."""
        import numpy as np

        from wfkit.grouping import group_tasks

        self.workflow_id = workflow_id
        self.tasks = tasks
        self.tasks_ref = tasks_ref  # the orchestrator's task list: identity tells a replacement
        self.expanded = expand
        self.graph = graph
        # a large workflow is drawn as groups (as dag_figure draws it): never thousands of
        # nodes to lay out and recolour while it runs
        grouping = group_tasks(graph if graph is not None else tasks, max_nodes=max_nodes,
                               expand=expand) if len(tasks) > max_nodes or expand else None
        self.grouping = grouping if grouping is not None and grouping.grouped else None
        if self.grouping is not None:
            self.figure = build_group_figure(workflow_id, tasks, self.grouping, live=True,
                                             graph=graph)
        else:
            self.figure = build_dag_figure(workflow_id, tasks, live=True, graph=graph)
        self.ids = list(self.figure.data[DAG_NODE_TRACE].customdata) if tasks else []
        self.task_ids: tuple[str, ...]
        self.index: dict[str, int]
        if like is not None:
            self.task_ids, self.index = like.task_ids, like.index
        else:
            self.task_ids = tuple(tasks)
            # the TaskGraph numbers its tasks in this order already
            self.index = graph.index if graph is not None and graph.tasks is tasks else \
                {tid: i for i, tid in enumerate(self.task_ids)}
        index = self.index
        self._other: tuple[Any, Any] = (None, None)  # (run view, its perm) for another order
        if self.grouping is not None:
            node = {g: i for i, g in enumerate(self.ids)}
            codes = self.grouping.codes  # each task's group number, in the tasks' order
            if codes is not None and len(codes) == len(self.task_ids):
                self._perm = np.array([node[g] for g in self.grouping.members],
                                      dtype=np.intp)[codes]
            else:
                of = self.grouping.of
                self._perm = np.fromiter((node[of[t]] for t in self.task_ids), dtype=np.intp,
                                         count=len(self.task_ids))
            self._node_of: dict[str, int] | None = None  # built if a run's order differs
            self._nodes: tuple[Any, int, Any] = (None, -1, None)
            return
        self._perm = np.fromiter((index[t] for t in self.ids), dtype=np.intp, count=len(self.ids))

    def group_codes(self, view: _RunView) -> tuple[Any, list[str]]:
        """Each group node's colour code (its most urgent status) and its counts as text,
        from the run's codes (one bincount per redraw); a mapped child counts in its
        parent's group."""
        import numpy as np

        if view.index is self.index or view.task_ids == self.task_ids:
            nodes = self._perm  # the run's task order is the view's (also when drawn later)
        elif self._nodes[0] is view and self._nodes[1] == len(view.task_ids):
            nodes = self._nodes[2]
        else:
            node_of = self._node_of
            if node_of is None:
                node_of = self._node_of = dict(zip(self.task_ids, self._perm.tolist(),
                                                   strict=True))
            def node(tid: str) -> int:
                k = node_of.get(tid)
                if k is None:  # a mapped child: only then import wfkit.metrics
                    from wfkit.metrics.frames import child_of

                    parent, _ = child_of(tid, node_of)
                    k = node_of[parent] if parent is not None else -1
                return k

            nodes = np.fromiter((node(t) for t in view.task_ids), dtype=np.intp,
                                count=len(view.task_ids))
            self._nodes = (view, len(view.task_ids), nodes)
        codes = np.frombuffer(view.codes, dtype=np.uint8).astype(np.intp)
        keep = nodes >= 0
        k, m = len(_STATUSES), len(self.ids)
        counts = np.bincount(nodes[keep] * k + codes[keep], minlength=m * k).reshape(m, k)
        colors = np.full(m, PENDING, dtype=np.int32)
        for s in reversed(GROUP_URGENCY):
            c = _STATUSES.index(s)
            colors = np.where(counts[:, c] > 0, c, colors)
        text = [
            "now: " + ", ".join(f"{int(n):,} {s}" for s, n in zip(_STATUSES, row, strict=True)
                                if n)
            for row in counts.tolist()
        ]
        return colors, text

    def index_for(self, task_ids: tuple[str, ...]) -> dict[str, int] | None:
        return self.index if task_ids == self.task_ids else None

    def perm(self, view: _RunView) -> Any:
        """Node order -> position in the run's codes (one numpy gather per redraw)."""
        import numpy as np

        if view.index is self.index or view.task_ids == self.task_ids:
            return self._perm
        if self._other[0] is not view:
            index = view.index
            perm = np.fromiter((index.get(t, -1) for t in self.ids), dtype=np.intp,
                               count=len(self.ids))
            self._other = (view, perm)
        return self._other[1]


class Dashboard(widgets.VBox):
    """A live view of every run of ``orchestrator``: progress, status counts, DAG, agent load
    and the latest events. Display it (a bare ``Dashboard(orch)`` at the end of a cell), then
    run workflows; it follows them until :meth:`close`.

    ``interval`` is the least time between two redraws (seconds); ``max_events`` the rows of
    the events table; ``hover_tasks`` the largest workflow whose nodes get live hover details;
    a workflow of more than ``max_dag_tasks`` tasks is not drawn (its progress, counts and
    load still are). A large DAG is drawn as groups (as :func:`wfkit.plots.dag_figure`),
    which costs a small share of running it (about a tenth of a run of 100,000 no-op tasks,
    once per workflow), and a redraw costs the same at any size: redraws come at most every
    ``interval`` and take at most 1/40 of the time. A click on a group draws its tasks
    (``dag_figure(..., expand=[group])``), a click on one of them, or the fold button,
    folds it back.
    Redraws are timed on the orchestrator's ``clock`` (the real one unless it was given
    another).
    """

    def __init__(
        self,
        orchestrator: EventSource,
        *,
        interval: float = 0.1,
        max_events: int = 8,
        hover_tasks: int = 2_000,
        max_dag_tasks: int = 200_000,
    ) -> None:
        if not callable(getattr(orchestrator, "subscribe", None)):
            from wfkit.errors import ValidationError

            raise ValidationError(
                f"Dashboard() follows an orchestrator (something with .subscribe(callback)), "
                f"got {type(orchestrator).__name__}"
            )
        self.orchestrator = orchestrator
        self._clock: Clock = getattr(orchestrator, "clock", SYSTEM)
        self.interval = float(interval)
        self.hover_tasks = int(hover_tasks)
        self.max_dag_tasks = int(max_dag_tasks)
        self.header = widgets.HTML(value=self._header_html(None))
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, bar_style="info", description="no run yet",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="100%", height="24px"),
        )
        # a notebook UI runs this cell: it shows the widgets (the figures keep Plotly's module
        # and the output stays the live widget); else a picture replaces it at each run's end
        self._ui = run_by_notebook_ui()
        self.dag = LiveFigure(_placeholder("DAG: waiting for a workflow"), loader=not self._ui)
        # the DAG's figure puts Plotly's module on the page: the load's opens with the loader
        # (not 5 MB more to serialise and send each time a dashboard is made)
        self.load = LiveFigure(_load_figure(), loader=not self._ui, module=False)
        self.events = widgets.HTML(value=self._events_html([]))
        # shown while groups of the DAG are drawn as their tasks (a click on a group did it)
        self.fold = widgets.Button(
            description="fold the groups back", icon="compress",
            tooltip="draw the expanded groups as one node each again",
            layout=widgets.Layout(display="none", width="auto"),
        )
        self.fold.add_class("wfkit-fold")
        self.fold.on_click(lambda _button: self._fold_all())
        super().__init__(
            children=[
                self.header,
                self.progress,
                self.fold,
                self.dag,
                widgets.HBox(
                    [
                        widgets.Box([self.load], layout=widgets.Layout(flex="0 0 auto")),
                        widgets.Box([self.events], layout=widgets.Layout(flex="1 1 auto")),
                    ],
                    layout=widgets.Layout(width="100%"),
                ),
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.add_class("wfkit-dashboard")
        self._handle: Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_flush = float("-inf")
        self._runs: dict[str, _RunView] = {}
        self._current: _RunView | None = None
        self._dags: dict[str, _DagView] = {}  # the view each workflow's DAG is drawn with
        self._folded: dict[str, _DagView] = {}  # and, while groups are expanded, its folded one
        self._shown: Any = None  # the _DagView (or the run whose note) the DAG widget shows
        self._sent: Any = None  # the node colour codes the DAG widget shows
        self._sent_text: list[str] | None = None  # and, for groups, their counts
        self._latest: deque[Event] = deque(maxlen=max(1, int(max_events)))
        self._load_key: tuple[Any, ...] = ()
        self._load_shape: tuple[Any, ...] = ()
        self._usage: tuple[Any, dict[str, dict[str, float]]] = ((), {})  # a finished run's
        self.redraws = 0
        self.redraw_seconds = 0.0  # time spent redrawing, all runs together
        self._cost = 0.0  # what the latest redraw took (but for drawing a new DAG)
        self._once = 0.0
        # loop times of the latest redraws and what each took: the throttling is checkable
        self.redraw_times: deque[float] = deque(maxlen=1000)
        self.redraw_costs: deque[float] = deque(maxlen=1000)
        self._displays: list[Any] = []  # IPython display handles of this dashboard's outputs
        for fig in (self.dag, self.load):
            fig.on_frontend(self._update_displays)
        self._clicked: tuple[_DagView, str] | None = None  # a DAG node clicked, to act on
        self.dag.observe(self._after_points, names="_js2py_pointsCallback")
        self._on_event, self._follow = self._subscriber()
        self._on_event.shows_progress = True  # type: ignore[attr-defined]  # no default bar
        self._unsubscribe: Callable[[], None] | None = orchestrator.subscribe(self._on_event)
        self._prepare_latest_workflow()
        self._draw_load()

    # -- the subscriber: as cheap as possible -------------------------------------------------

    def _subscriber(self) -> tuple[Callable[[Event], None], Callable[[_RunView, Any], None]]:
        """The event callback, and the function that points its fast path at a run.

        It runs twice per task, so it is a closure that reads locals, not attributes: a task
        event of the followed run is one dict lookup and one byte write, and asks for a
        redraw only when none is pending.
        """
        hot_run: Any = object()
        index: dict[str, int] = {}
        codes = bytearray()
        last: list[Any] | None = None
        spans: list[Any] = []
        code_of = _CODE_OF
        latest = self._latest.append
        other = self._other_event
        dash = self

        def on_event(ev: Any) -> None:
            code = code_of.get(ev.__class__)
            if code is not None and ev.run_id is hot_run:
                if code == FAILED:
                    spans.extend((ev.agent_id, ev.started_at, ev.timestamp))
                    if not ev.final:
                        code = RETRYING
                elif code == COMPLETED:
                    if ev.cached:
                        code = CACHED
                    else:
                        spans.extend((ev.agent_id, ev.started_at, ev.timestamp))
                i = index[ev.task_id]
                codes[i] = code
                if last is not None:
                    last[i] = ev
                latest(ev)
                if dash._handle is None:
                    dash._request()
                return
            other(ev, code)

        def follow(view: _RunView, run_id: Any) -> None:
            nonlocal hot_run, index, codes, last, spans
            hot_run, index, codes, last, spans = (run_id, view.index, view.codes, view.last,
                                                  view.spans)

        return on_event, follow

    def _other_event(self, ev: Event, code: int | None) -> None:
        """Everything but the fast path: run events, and task events of another run."""
        if code is not None:
            view = self._runs.get(ev.run_id)
            if view is None:
                return
            self._follow(view, ev.run_id)  # later events of that run take the fast path
            if code == FAILED and not ev.final:  # type: ignore[attr-defined]
                code = RETRYING
            elif code == COMPLETED and ev.cached:  # type: ignore[attr-defined]
                code = CACHED
            if isinstance(ev, TaskCompleted | TaskFailed) and code != CACHED:
                view.spans.extend((ev.agent_id, ev.started_at, ev.timestamp))
            i = view.index[ev.task_id]  # type: ignore[attr-defined]
            view.codes[i] = code
            if view.last is not None:
                view.last[i] = ev
        elif isinstance(ev, RunStarted):
            dag = self._dags.get(ev.workflow_id)
            index = dag.index_for(ev.task_ids) if dag is not None else None
            view = _RunView(ev, index, rich=len(ev.task_ids) <= self.hover_tasks)
            self._runs[ev.run_id] = view
            self._current = view
            self._follow(view, ev.run_id)
            if len(self._runs) > 20:  # bounded memory over a long session
                for rid in list(self._runs)[:-20]:
                    if self._runs[rid].state != "running":
                        del self._runs[rid]
        elif isinstance(ev, TaskMapped):
            view = self._runs.get(ev.run_id)
            if view is None:
                return
            view.add_children(ev.task_id, ev.count)
            self._follow(view, ev.run_id)  # the fast path reads the grown index
        elif isinstance(ev, WorkflowCreated):
            self._on_loop(lambda: self._prepare_workflow(ev.workflow_id))
            return
        elif isinstance(ev, RunFinished):
            view = self._runs.get(ev.run_id)
            if view is None:
                return
            view.state = ev.status
            view.finished_at = ev.timestamp
            self._latest.append(ev)
            if view is self._current:
                running = [v for v in self._runs.values() if v.state == "running"]
                if running:  # another run of this orchestrator is still going: follow it
                    self._current = running[-1]
            self._flush_now()  # the final state shows before execute_workflow returns
            self._update_displays()  # and a saved notebook keeps it
            return
        else:
            return
        self._latest.append(ev)
        if self._handle is None:
            self._request()

    def _flush_now(self) -> None:
        """Redraw at once on the loop's thread (or hand the redraw over to it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        owner = self._loop
        if loop is None and owner is not None and owner.is_running() and not owner.is_closed():
            owner.call_soon_threadsafe(self.flush)
        else:
            self.flush()

    def _request(self) -> None:
        """Ask the loop for a redraw ``interval`` after the last one (and after this event)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop's thread
            loop = None
        if loop is None:
            owner = self._loop
            if owner is not None and owner.is_running() and not owner.is_closed():
                owner.call_soon_threadsafe(self._request)  # widgets stay on the loop's thread
            else:
                self.flush()  # no loop at all (a plain sync caller): draw now
            return
        self._loop = loop
        if self._handle is not None:
            return
        # Trailing: events that come together are drawn together, never sooner than
        # `interval` after the previous redraw, nor sooner than its cost allows (redrawing
        # takes at most 1 / (1 + _SPACING) of the loop's time, whatever the run's pace).
        gap = max(self.interval, min(self._cost * _SPACING, _MAX_GAP))
        clock = self._clock
        delay = max(self.interval, self._last_flush + gap - clock.monotonic())
        self._handle = clock.call_later(delay, self._timer)

    def _timer(self) -> None:
        self._handle = None
        self.flush()

    def flush(self) -> None:
        """Redraw now with everything received so far (the timer calls this; so can you)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._redraw()

    # -- drawing ------------------------------------------------------------------------------

    def _redraw(self) -> None:
        began = time.perf_counter()
        self._once = 0.0
        try:
            self._draw()
        finally:
            took = time.perf_counter() - began
            self.redraw_seconds += took
            self._cost = took - self._once  # a DAG drawn once does not space the next ones
            self.redraw_costs.append(self._cost)

    def _draw(self) -> None:
        now = self._clock.monotonic()
        self._last_flush = now
        self.redraws += 1
        self.redraw_times.append(now)
        view = self._current
        if view is not None:
            counts = view.counts()
            self.header.value = (f"<div data-redraw='{self.redraws}'>"
                                 f"{self._header_html(view, counts)}</div>")
            total = view.total
            done = sum(counts[s] for s in _FINISHED)
            pct = 100.0 * done / total if total else 100.0
            with self.progress.hold_sync():  # one message for all four
                self.progress.max = max(total, 1)
                self.progress.value = done if total else 1
                self.progress.bar_style = _BAR_STYLE.get(view.state, "info")
                self.progress.description = f"{done:,} / {total:,} tasks · {pct:.0f}%"
            self.progress.style.bar_color = RUN_BAR_COLORS.get(view.state)
            self._draw_dag(view)
        self._draw_load()
        self.events.value = (f"<div data-redraw='{self.redraws}'>"
                             f"{self._events_html(list(self._latest))}</div>")

    def _dag_for(self, workflow_id: str) -> _DagView | None:
        wf = getattr(self.orchestrator, "workflows", {}).get(workflow_id)
        if wf is None:
            return None
        tasks_ref = wf.get("tasks")
        cached = self._dags.get(workflow_id)
        if cached is not None and cached.tasks_ref is tasks_ref:
            return cached
        self._folded.pop(workflow_id, None)  # a new workflow of that name: drawn folded
        if tasks_ref is None or len(tasks_ref) > self.max_dag_tasks:
            return None
        # the orchestrator's public accessor, not its private state (another source has none)
        task_graph = getattr(self.orchestrator, "task_graph", None)
        graph = task_graph(workflow_id) if task_graph is not None else None
        by_id = graph.tasks if graph is not None else {t.task_id: t for t in tasks_ref}
        dag = _DagView(workflow_id, by_id, tasks_ref, graph=graph)
        self._dags[workflow_id] = dag
        return dag

    def _prepare_latest_workflow(self) -> None:
        """Draw the most recently created workflow now, so its DAG shows before it runs."""
        workflows = getattr(self.orchestrator, "workflows", None)
        if workflows:
            dag = self._dag_for(next(reversed(workflows)))
            if dag is not None:
                self._show(dag, None)

    def _prepare_workflow(self, workflow_id: str) -> None:
        """Draw a workflow just created (or re-created), as a dashboard made after it would
        have, so that its run starts with the view built; shown unless another run is live."""
        dag = self._dag_for(workflow_id)
        if dag is not None and (self._current is None or _ended(self._current)):
            self._show(dag, None)

    def _on_loop(self, work: Callable[[], None]) -> None:
        """Do ``work`` now, or on the loop's thread when that loop runs elsewhere."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            owner = self._loop
            if owner is not None and owner.is_running() and not owner.is_closed():
                owner.call_soon_threadsafe(work)
                return
        work()

    def _show(self, dag: _DagView | None, view: _RunView | None) -> None:
        """Put ``dag`` (or a note saying why there is none) in the DAG widget."""
        import numpy as np

        fig = self.dag
        with fig.batch_update():
            fig.data = []
            if dag is None:
                n = view.total if view is not None else 0
                fig.layout = _placeholder(
                    f"DAG: {n:,} tasks are more than max_dag_tasks={self.max_dag_tasks:,}; "
                    f"progress, counts and load are live"
                ).layout
            else:
                fig.add_traces(list(dag.figure.data))
                fig.layout = dag.figure.layout
                fig.layout.showlegend = True  # the placeholder turned it off
                nodes = fig.data[DAG_NODE_TRACE]
                if len(dag.ids) <= self.hover_tasks:
                    nodes.hovertemplate = _HOVER
                    nodes.customdata = ["status: <b>pending</b>"] * len(dag.ids)
                else:  # too many nodes to resend hover text: the colour tells the status
                    nodes.hovertemplate = "%{hovertext}<extra></extra>"
                    nodes.customdata = None
                folded = self._folded.get(dag.workflow_id, dag)
                if folded.grouping is not None:  # a click on a group shows its tasks
                    nodes.on_click(self._on_dag_click)
                    hints = ["a group to show its tasks"] if dag.grouping else []
                    if dag.expanded:
                        hints.append(f"a task of {', '.join(dag.expanded)} to fold it back")
                    fig.layout.title.text = f"{dag.figure.layout.title.text} · click " + \
                        ", ".join(hints)
        expanded = dag is not None and bool(dag.expanded)
        self.fold.layout.display = None if expanded else "none"
        self.fold.description = ("fold " + ", ".join(dag.expanded) + " back"
                                 if expanded and dag is not None else "fold the groups back")
        self._shown = dag if dag is not None else view
        self._sent = None if dag is None else np.zeros(len(dag.ids), dtype=np.int32)
        self._sent_text = None

    # -- groups drawn as their tasks, on a click ---------------------------------------------

    def _on_dag_click(self, _trace: Any, points: Any, _state: Any) -> None:
        """Plotly's click on the DAG's nodes (``FigureWidget`` ``on_click``): a group node
        expands into its tasks, a task of an expanded group folds the group back.

        Plotly is still handing the click to the figure's other traces: the redraw, which
        replaces them, waits until it is done (it then resets ``_js2py_pointsCallback``)."""
        dag = self._shown
        if not isinstance(dag, _DagView) or not points.point_inds:
            return
        i = points.point_inds[0]
        if 0 <= i < len(dag.ids):
            self._clicked = (dag, dag.ids[i])

    def _after_points(self, change: dict[str, Any]) -> None:
        if change["new"] is None and self._clicked is not None:
            (dag, node), self._clicked = self._clicked, None
            if dag is self._shown:
                self._toggle(dag, node)

    def _toggle(self, dag: _DagView, node: str) -> None:
        if self._dag_for(dag.workflow_id) is not dag:  # replaced since: show it as it is now
            self._redraw_dag(dag.workflow_id)
            return
        folded = self._folded.get(dag.workflow_id, dag)
        grouping = folded.grouping
        if grouping is None:  # nothing is grouped: nothing to open or close
            return
        expanded = list(dag.expanded)
        members = dag.grouping.members.get(node) if dag.grouping is not None else None
        if members is not None and len(members) > 1:
            expanded.append(node)  # a group: draw its tasks
        else:
            group = grouping.of.get(node)  # a task: fold its group back, if it was expanded
            if group not in expanded:
                return
            expanded.remove(group)
        self._redraw_dag_with(folded, tuple(expanded))

    def _fold_all(self) -> None:
        dag = self._shown
        if isinstance(dag, _DagView) and dag.expanded:
            self._redraw_dag_with(self._folded[dag.workflow_id], ())

    def _redraw_dag_with(self, folded: _DagView, expanded: tuple[str, ...]) -> None:
        """Draw ``folded``'s workflow with the groups ``expanded`` as their tasks."""
        wid = folded.workflow_id
        if expanded:
            dag = _DagView(wid, folded.tasks, folded.tasks_ref, expand=expanded, like=folded,
                           graph=folded.graph)
            self._folded[wid] = folded
        else:
            dag = folded
            self._folded.pop(wid, None)
        self._dags[wid] = dag
        self._redraw_dag(wid)

    def _redraw_dag(self, workflow_id: str) -> None:
        view = self._current
        if view is not None and view.workflow_id == workflow_id:
            self._draw_dag(view)  # drawn and coloured as the run stands
        else:
            self._show(self._dag_for(workflow_id), None)

    @property
    def expanded_groups(self) -> tuple[str, ...]:
        """The groups the DAG widget draws as their tasks (a click on a group adds it, a
        click on one of its tasks or the fold button takes it away)."""
        dag = self._shown
        return dag.expanded if isinstance(dag, _DagView) else ()

    def _draw_dag(self, view: _RunView) -> None:
        import numpy as np

        began = time.perf_counter()
        dag = self._dag_for(view.workflow_id)
        if self._shown is not (dag if dag is not None else view):
            self._show(dag, view)
            self._once += time.perf_counter() - began
        if dag is None:
            return
        if dag.grouping is not None:
            colors, text = dag.group_codes(view)
            if self._sent is not None and np.array_equal(colors, self._sent) and \
                    text == self._sent_text:
                return
            self.dag.plotly_restyle({"marker.color": [colors], "customdata": [text]},
                                    trace_indexes=[DAG_NODE_TRACE])
            self._sent, self._sent_text = colors, text
            return
        perm = dag.perm(view)
        codes = np.frombuffer(view.codes, dtype=np.uint8)
        colors = np.where(perm >= 0, codes[np.maximum(perm, 0)], PENDING).astype(np.int32)
        if self._sent is not None and np.array_equal(colors, self._sent):
            return  # nothing to send: the widget shows these colours already
        # one restyle: three widget messages (an update would add a relayout's)
        change: dict[str, Any] = {"marker.color": [colors]}
        if view.last is not None:
            change["customdata"] = [[_node_hover(view, i) for i in perm.tolist()]]
        self.dag.plotly_restyle(change, trace_indexes=[DAG_NODE_TRACE])
        self._sent = colors

    def _draw_load(self) -> None:
        agents = getattr(self.orchestrator, "agents", None)
        if not agents:
            return
        profiles = sorted(agents.values(), key=lambda a: a.agent_id)
        names = tuple(a.agent_id if a.availability else f"{a.agent_id} (off)" for a in profiles)
        running = tuple(a.current_load for a in profiles)
        capacity = tuple(a.capacity for a in profiles)
        done = tuple((a.performance_metrics or {}).get("tasks_completed", 0) for a in profiles)
        view = self._current
        ended = _ended(view)
        key = (names, running, capacity, done, ended and view is not None and view.run_id)
        if key == self._load_key:
            return
        self._load_key = key
        if ended and not any(running):
            self._draw_usage(profiles, names, capacity)
            return
        hover = [
            f"<b>{html.escape(a.agent_id)}</b> · {html.escape(a.name)}<br>running {r} of {c}"
            f"<br>{(a.performance_metrics or {}).get('tasks_completed', 0)} completed, "
            f"{(a.performance_metrics or {}).get('tasks_failed', 0)} failed attempts"
            for a, r, c in zip(profiles, running, capacity, strict=True)
        ]
        text = [f"{r}/{c}" for r, c in zip(running, capacity, strict=True)]
        self._restyle_load(names, capacity, list(running), text, hover, _LOAD_TITLE)

    def _restyle_load(self, names: tuple[str, ...], capacity: tuple[int, ...], bars: list[Any],
                      text: list[str], hover: list[str], title: str) -> None:
        """Set the bars over the capacities: one restyle of the bar trace (an update with the
        title when that changes, at a run's end and the next run's start), both traces and
        the axis only when the agents changed (rare), so a redraw sends one small change."""
        fig = self.load
        change = {"y": [bars], "text": [text], "hovertext": [hover]}
        if (names, capacity) == self._load_shape:
            if fig.layout.title.text == title:
                fig.plotly_restyle(change, trace_indexes=[1])
            else:
                fig.plotly_update(change, {"title.text": title}, trace_indexes=[1])
            return
        self._load_shape = (names, capacity)
        fig.plotly_relayout({"yaxis.range": [0, max((*capacity, 1)) * 1.15],
                             "title.text": title})
        fig.plotly_restyle(
            {"x": [list(names)] * 2, "y": [list(capacity), bars],
             "text": [text] * 2, "hovertext": [hover] * 2},
            trace_indexes=[0, 1],
        )

    def _draw_usage(self, profiles: list[Any], names: tuple[str, ...],
                    capacity: tuple[int, ...]) -> None:
        """The end of a run: what each agent did over it (mean running tasks against its
        capacity; the text is the utilisation and the peak concurrency), not the idle 0/N."""
        usage = self.agent_usage
        mean, text, hover = [], [], []
        for a, c in zip(profiles, capacity, strict=True):
            u = usage.get(a.agent_id, {"utilisation": 0.0, "peak": 0, "busy": 0.0})
            mean.append(u["utilisation"] * c)
            text.append(f"{u['utilisation']:.0%} · peak {u['peak']}/{c}")
            hover.append(f"<b>{html.escape(a.agent_id)}</b> · {html.escape(a.name)}<br>"
                         f"utilisation {u['utilisation']:.0%} (busy {_seconds(u['busy'])} "
                         f"of {c} × the run)<br>peak {u['peak']} of {c} at once")
        self._restyle_load(names, capacity, mean, text, hover, _USAGE_TITLE)

    @property
    def agent_usage(self) -> dict[str, dict[str, float]]:
        """What each agent did in the current run (so far): ``busy`` seconds of attempts,
        ``utilisation`` = busy / (capacity × the run's time) and ``peak`` tasks at once.
        A finished run's is worked out once (the load panel and the saved picture both show
        it)."""
        view = self._current
        agents = getattr(self.orchestrator, "agents", None) or {}
        if view is None:
            return {}
        key = (view, len(view.spans), tuple((a, getattr(p, "capacity", 1))
                                            for a, p in agents.items()))
        if view.finished_at is not None and self._usage[0] == key:
            return {a: dict(u) for a, u in self._usage[1].items()}
        end = view.finished_at if view.finished_at is not None else self._clock.time()
        span = max(end - view.started_at, 1e-9)
        busy, peaks = _spans_usage(view.spans)
        out = {}
        for agent_id in sorted({*agents, *busy}):
            profile = agents.get(agent_id)
            cap = max(getattr(profile, "capacity", 1) or 1, 1)
            out[agent_id] = {"busy": busy.get(agent_id, 0.0), "peak": peaks.get(agent_id, 0),
                             "utilisation": busy.get(agent_id, 0.0) / (cap * span)}
        if view.finished_at is not None:
            self._usage = (key, {a: dict(u) for a, u in out.items()})
        return out

    # -- HTML parts ---------------------------------------------------------------------------

    def _header_html(self, view: _RunView | None, counts: dict[str, int] | None = None) -> str:
        if view is None:
            title = "<b>wfkit</b> · no run yet: run a workflow of this orchestrator"
        else:
            end = view.finished_at if view.finished_at is not None else self._clock.time()
            elapsed = max(0.0, end - view.started_at)
            title = (
                f"<b>wfkit</b> · workflow <b>{html.escape(view.workflow_id)}</b> · run "
                f"<code>{html.escape(view.run_id)}</code> · "
                f"<span class='wfkit-state' style='color:{status_color(view.state)}'>"
                f"<b>{html.escape(view.state)}</b></span> · {_seconds(elapsed)}"
                + (f" · {view.resumed} resumed from the store" if view.resumed else "")
            )
        return f"<div>{title}</div>" + self._counts_html(counts or dict.fromkeys(_STATUSES, 0))

    @staticmethod
    def _counts_html(counts: dict[str, int]) -> str:
        badges = []
        for s in _STATUSES:
            n = counts.get(s, 0)
            fg = "#222" if s in ("pending", "retrying") else "#fff"
            badges.append(
                f"<span class='wfkit-count wfkit-{s}' style='background:{status_color(s)};"
                f"color:{fg};border-radius:9px;padding:1px 8px;margin-right:6px;"
                f"font-size:12px;opacity:{1 if n else 0.45}'>{s} <b>{n:,}</b></span>"
            )
        return "<div style='margin:4px 0'>" + "".join(badges) + "</div>"

    def _events_html(self, events: list[Event]) -> str:
        rows = []
        for ev in reversed(events):
            view = self._runs.get(ev.run_id)
            when = f"+{ev.timestamp - view.started_at:.3f} s" if view else ""
            kind, task, agent, detail, status = _describe(ev)
            rows.append(
                f"<tr><td style='color:#666'>{when}</td>"
                f"<td><span style='color:{status_color(status)}'>"
                f"●</span> {kind}</td><td>{html.escape(task)}</td>"
                f"<td>{html.escape(agent)}</td><td>{detail}</td></tr>"
            )
        if not rows:
            rows.append("<tr><td colspan='5' style='color:#666'>no events yet</td></tr>")
        return (
            "<style>.wfkit-events td, .wfkit-events th {padding: 1px 10px 1px 0; "
            "text-align: left; white-space: nowrap} .wfkit-events td:last-child "
            "{white-space: normal}</style>"
            "<div style='font-size:12px;padding-left:12px'><b>Latest events</b>"
            "<table class='wfkit-events' style='border-collapse:collapse'>"
            "<thead><tr style='text-align:left'><th>time</th><th>event</th><th>task</th>"
            "<th>agent</th><th>detail</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></div>"
        )

    # -- what a notebook keeps ------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """True when a browser shows this dashboard: a notebook UI ran the cell that made or
        displayed it, or its figures said so (a headless run does neither)."""
        return self._ui or self.dag.frontend_seen or self.load.frontend_seen

    def snapshot_html(self) -> str:
        """What the dashboard shows now, as plain HTML with the DAG as an SVG picture: the
        output a notebook read without its kernel shows (nbconvert's HTML, JupyterLab)."""
        from wfkit.jupyter import snapshot

        view = self._current
        counts = view.counts() if view is not None else None
        parts = [f"<div class='wfkit-snapshot-header'>{self._header_html(view, counts)}</div>"]
        if view is not None and counts is not None:
            done = view.total - counts["pending"] - counts["running"] - counts["retrying"]
            colour = RUN_BAR_COLORS.get(view.state, STATUS_COLORS["running"])
            parts.append(snapshot.progress_html(done, view.total, colour))
        dag = self._shown if isinstance(self._shown, _DagView) else None
        if dag is not None and len(dag.ids) <= snapshot.SNAPSHOT_DAG_TASKS:
            codes = self._sent if self._sent is not None else [PENDING] * len(dag.ids)
            colours = [STATUS_COLORS[_STATUSES[int(c)]] for c in codes]
            title = html.unescape(str(dag.figure.layout.title.text or "")).replace(
                "<b>", "").replace("</b>", "")
            svg = snapshot.dag_svg(dag.figure, colours, node_trace=DAG_NODE_TRACE, title=title)
            if svg:
                parts.append(snapshot.svg_img(svg, f"DAG of {title}"))
        elif view is not None:
            parts.append(f"<div style='color:#666;font-size:12px'>DAG of {view.total:,} tasks: "
                         f"not drawn in this picture (more than "
                         f"{snapshot.SNAPSHOT_DAG_TASKS:,})</div>")
        agents = getattr(self.orchestrator, "agents", None) or {}
        profiles = sorted(agents.values(), key=lambda a: a.agent_id)
        labels = [a.agent_id + ("" if a.availability else " (off)") for a in profiles]
        rows = [
            (label, a.current_load, a.capacity,
             (a.performance_metrics or {}).get("tasks_completed", 0),
             (a.performance_metrics or {}).get("tasks_failed", 0))
            for label, a in zip(labels, profiles, strict=True)
        ]
        usage = None
        if _ended(view) and not any(a.current_load for a in profiles):
            # as the load panel shows it: what each agent did over the run, not the idle 0/N
            did = self.agent_usage
            usage = {label: did[a.agent_id] for label, a in zip(labels, profiles, strict=True)
                     if a.agent_id in did}
        load = snapshot.load_html(rows, STATUS_COLORS["running"], usage)
        parts.append(
            "<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start'>"
            f"<div>{load}</div><div>{self._events_html(list(self._latest))}</div></div>"
        )
        return ("<div class='wfkit-dashboard-snapshot' style='font-family:sans-serif'>"
                + "".join(parts) + "</div>")

    def _bundle(self) -> dict[str, Any]:
        """The output's data: the live widget while a browser may show it, with the snapshot
        next to it; after a headless run, the snapshot alone, so that nbconvert's HTML shows
        it rather than a widget it cannot load."""
        data: dict[str, Any] = {}
        if self.live or not self._displays_updated:
            data.update(super()._repr_mimebundle_() or {})
        if not self._ui:  # a UI never updates it: a picture would only show the start
            data["text/html"] = self.snapshot_html()
        data["text/plain"] = repr(self)
        return data

    _displays_updated = False

    def _ipython_display_(self) -> None:
        """Display the widget with a static snapshot next to it, under a display id: each
        run's end updates it, so a saved notebook shows the final state."""
        from IPython.display import display

        self._ui = self._ui or run_by_notebook_ui()
        handle = display(self._bundle(), raw=True, display_id=True)
        if handle is not None:
            self._displays.append(handle)

    def _update_displays(self) -> None:
        """Put the current snapshot in the outputs, unless a notebook UI shows the widget:
        there an update would only redraw the live view (and a UI saves no widget state
        unless asked, so its saved output is the widget's own)."""
        if not self._displays or self._ui:
            return
        self._displays_updated = True
        data = self._bundle()
        for handle in self._displays:
            handle.update(data, raw=True)

    # -- state for code and tests -------------------------------------------------------------

    @property
    def status_counts(self) -> dict[str, int]:
        """The current run's tasks per status (what the counts row shows)."""
        view = self._current
        return view.counts() if view is not None else dict.fromkeys(_STATUSES, 0)

    @property
    def task_statuses(self) -> dict[str, str]:
        """Each task of the current run and its status (what the DAG's colours show)."""
        view = self._current
        if view is None:
            return {}
        return {tid: _STATUSES[c] for tid, c in zip(view.task_ids, view.codes, strict=True)}

    @property
    def node_statuses(self) -> dict[str, str]:
        """Each node of the DAG widget and the status its colour shows (read off the widget)."""
        if not isinstance(self._shown, _DagView):
            return {}
        colors = self.dag.data[DAG_NODE_TRACE].marker.color
        return {tid: _STATUSES[int(c)] for tid, c in zip(self._shown.ids, colors, strict=True)}

    @property
    def agent_load(self) -> dict[str, tuple[int, int]]:
        """Agent id -> (running tasks, capacity) now (at the end of a run the load figure
        shows :attr:`agent_usage` instead)."""
        agents = getattr(self.orchestrator, "agents", None) or {}
        return {a.agent_id: (int(a.current_load), int(a.capacity)) for a in agents.values()}

    @property
    def run_id(self) -> str | None:
        return self._current.run_id if self._current is not None else None

    def close(self) -> None:
        """Stop following the orchestrator and close the widgets."""
        unsubscribe = self.__dict__.pop("_unsubscribe", None)  # also when __init__ failed
        if unsubscribe is not None:
            unsubscribe()
        handle = self.__dict__.pop("_handle", None)
        self._handle = None
        if handle is not None:
            handle.cancel()
        # every widget it made: ipywidgets keeps each open one (and the callbacks it holds,
        # which hold this dashboard, its runs and the workflow's graph) until it is closed
        for w in _widget_tree(self):
            if w is not self:
                w.close()
        super().close()

    def __repr__(self) -> str:
        view = self._current
        if view is None:
            return "<wfkit Dashboard: no run yet>"
        counts = view.counts()
        done = sum(counts[s] for s in _FINISHED)
        return (
            f"<wfkit Dashboard {view.workflow_id!r} run {view.run_id} {view.state}: "
            f"{done}/{view.total} tasks finished>"
        )


# -- helpers -------------------------------------------------------------------------------------


def _widget_tree(root: widgets.Widget) -> list[widgets.Widget]:
    """``root``, its children, theirs, ... with each one's layout and style."""
    found: list[widgets.Widget] = []
    todo = [root]
    while todo:
        w = todo.pop()
        found.append(w)
        todo.extend(getattr(w, "children", ()))
        for name in ("layout", "style"):
            part = getattr(w, name, None)
            if isinstance(part, widgets.Widget):
                found.append(part)
    return found


def _ended(view: _RunView | None) -> bool:
    """Whether ``view`` is a run that has finished (the load shows what agents did over it)."""
    return view is not None and view.state != "running" and view.finished_at is not None


def _placeholder(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        template="plotly_white",
        title={"text": html.escape(title), "x": 0.01, "font": {"size": 13}},
        height=220,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"visible": False},
        yaxis={"visible": False},
        showlegend=False,
    )
    return fig


_LOAD_TITLE = "Agent load (running / capacity)"
_USAGE_TITLE = "Agent load over the run (utilisation, peak / capacity)"


def _load_figure() -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=[], y=[], name="capacity",
        marker={"color": "rgba(150, 150, 150, 0.25)", "line": {"color": "#999", "width": 1}},
        hoverinfo="skip", textposition="none",
    ))
    fig.add_trace(go.Bar(
        x=[], y=[], name="running", marker={"color": STATUS_COLORS["running"]},
        textposition="outside", hoverinfo="text", width=0.5,
    ))
    fig.update_layout(
        template="plotly_white",
        title={"text": _LOAD_TITLE, "x": 0.01, "font": {"size": 13}},
        barmode="overlay",
        height=260,
        width=460,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        showlegend=False,
        yaxis={"range": [0, 1], "rangemode": "tozero", "title": "tasks"},
    )
    return fig


def _spans_usage(spans: list[Any]) -> tuple[dict[str, float], dict[str, int]]:
    """Busy seconds and peak attempts at once per agent, from flat (agent, start, end, ...)
    spans. The peak is reached at a start: right after the ``i``-th start (in time order) an
    agent runs ``i + 1`` minus the attempts that ended by then (an end before a start at a
    tie), so two sorts and a search per agent do it: milliseconds for 100,000 attempts."""
    import numpy as np

    names = spans[0::3]
    if not names:
        return {}, {}
    code = {a: k for k, a in enumerate(dict.fromkeys(names))}  # few agents, many spans
    n = len(names)
    agent = np.fromiter(map(code.__getitem__, names), dtype=np.intp, count=n)
    start = np.fromiter(spans[1::3], dtype=float, count=n)
    stop = np.fromiter(spans[2::3], dtype=float, count=n)
    busy_of = np.bincount(agent, weights=np.maximum(stop - start, 0.0), minlength=len(code))
    # as 16-bit numbers the stable sort of the (few) agents is a radix sort: a tenth of the
    # time; within an agent the spans keep their order, nearly that of time (they are kept
    # as attempts end), which a stable sort (timsort) puts right in about one pass
    by_agent = np.argsort(agent.astype(np.uint16) if len(code) < 1 << 16 else agent,
                          kind="stable")
    bounds = np.searchsorted(agent[by_agent], np.arange(len(code) + 1))
    start, stop = start[by_agent], stop[by_agent]
    busy: dict[str, float] = {}
    peak: dict[str, int] = {}
    for a, k in code.items():
        if a is None:  # no agent ran it (a mapped task gathering its children)
            continue
        lo, hi = bounds[k], bounds[k + 1]
        starts = np.sort(start[lo:hi], kind="stable")
        ends = np.sort(stop[lo:hi], kind="stable")
        running = np.arange(1, hi - lo + 1) - np.searchsorted(ends, starts, side="right")
        busy[a] = float(busy_of[k])
        peak[a] = int(running.max())
    return busy, peak


def _node_hover(view: _RunView, i: int) -> str:
    if i < 0:
        return "status: <b>pending</b>"
    status = _STATUSES[view.codes[i]]
    text = f"status: <b>{status}</b>"
    ev = view.last[i] if view.last is not None else None
    if ev is None:
        return text + ("<br>result taken from the stored run" if status == "completed" else "")
    agent = getattr(ev, "agent_id", None)
    if agent:
        text += f"<br>agent: {html.escape(agent)} · attempt {getattr(ev, 'attempt', 1)}"
    if isinstance(ev, TaskCompleted) and ev.cached:
        text += "<br>from the result cache: not run"
    elif isinstance(ev, TaskCompleted | TaskFailed):
        text += f"<br>took {_seconds(ev.timestamp - ev.started_at)}"
    if isinstance(ev, TaskFailed | TaskRetrying):
        text += f"<br>error: {html.escape(_clip(ev.error, 160))}"
        at = _where(ev) if isinstance(ev, TaskFailed) else None
        if at:
            text += f"<br>at {html.escape(_clip(at, 160))}"
    elif isinstance(ev, TaskSkipped):
        text += f"<br>{html.escape(_clip(ev.reason, 160))}"
    return text


def _where(ev: TaskFailed) -> str | None:
    """The user's line where the task failed (``Cell In[3], line 5 in clean: ...``)."""
    from wfkit.jupyter.reprs import where_text

    if ev.traceback:
        return where_text(ev.traceback)
    return ev.where


def _clip(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def _describe(ev: Event) -> tuple[str, str, str, str, str]:
    """(event name, task, agent, detail as HTML, status for the dot) for the events table."""
    esc = html.escape
    if isinstance(ev, TaskMapped):
        return "mapped", ev.task_id, "", f"{ev.count:,} children", "running"
    if isinstance(ev, TaskStarted):
        return "started", ev.task_id, ev.agent_id, f"attempt {ev.attempt}", "running"
    if isinstance(ev, TaskCompleted):
        if ev.cached:
            return "cached", ev.task_id, "", "from the result cache: not run", "cached"
        took = _seconds(ev.timestamp - ev.started_at)
        return "completed", ev.task_id, ev.agent_id or "", took, "completed"
    if isinstance(ev, TaskFailed):
        what = "failed" if ev.final else "failed, will retry"
        detail = esc(_clip(ev.error, 120))
        at = _where(ev)
        if at:
            detail += f"<br><span class='wfkit-where' style='color:#555'>at {esc(_clip(at, 160))}</span>"
        return what, ev.task_id, ev.agent_id or "", detail, "failed"
    if isinstance(ev, TaskRetrying):
        detail = f"attempt {ev.attempt} in {_seconds(ev.delay)}"
        return "retrying", ev.task_id, "", detail, "retrying"
    if isinstance(ev, TaskSkipped):
        return "skipped", ev.task_id, "", esc(_clip(ev.reason, 120)), "skipped"
    if isinstance(ev, TaskCancelled):
        return "cancelled", ev.task_id, ev.agent_id or "", "", "cancelled"
    if isinstance(ev, RunStarted):
        return "run started", ev.workflow_id, "", f"{len(ev.task_ids):,} tasks", "pending"
    if isinstance(ev, RunFinished):
        detail = (f"{ev.successful_tasks}/{ev.total_tasks} completed in "
                  f"{_seconds(ev.timestamp - ev.started_at)}")
        return f"run {esc(ev.status)}", ev.workflow_id, "", detail, ev.status
    return esc(type(ev).__name__), "", "", "", ""
