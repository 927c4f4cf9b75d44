"""The live dashboard: its widgets after real runs (ipywidgets work without a frontend).

Time that matters (redraw throttling, how long tasks take) runs on a :class:`ManualClock`;
nothing here sleeps to let something happen.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import ipywidgets
import plotly.graph_objects as go
import pytest

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow
from wfkit.clock import ManualClock
from wfkit.colors import RUN_BAR_COLORS
from wfkit.errors import ValidationError
from wfkit.events import RunStarted, TaskCompleted, TaskStarted
from wfkit.jupyter import dashboard as dashboard_module
from wfkit.jupyter.dashboard import Dashboard
from wfkit.plots import DAG_NODE_TRACE, STATUS_COLORS

STATUSES = list(STATUS_COLORS)
WIDGET = "application/vnd.jupyter.widget-view+json"
CALLS: list[str] = []  # calls of the cached tasks (a global: not part of their cache keys)


def mixed_workflow(name: str = "mixed") -> Workflow:
    """Completed, retried-then-completed, failed and skipped tasks in one run."""
    wf = Workflow(name)

    @wf.task(requires=["analysis"])
    async def load(ctx):
        return 1

    @wf.task(requires=["analysis"], after=[load], retries=1)
    async def flaky(ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return 2

    @wf.task(requires=["analysis"], after=[load])
    async def broken(ctx):
        raise ValueError("bad <input>")

    @wf.task(requires=["analysis"], after=[broken])
    async def after_broken(ctx):
        return 3

    @wf.task(requires=["generation"], after=[flaky])
    async def report(ctx):
        return 4

    return wf


BROKEN_LINE = next(i for i, ln in enumerate(Path(__file__).read_text().splitlines(), 1)
                   if 'raise ValueError("bad <input>")' in ln)


def orchestrator(clock=None) -> CollectiveAgentWorkflowOrchestrator:
    kw = {} if clock is None else {"clock": clock}
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001, **kw)
    orch.register_agent(AgentProfile("a1", "Analyst", ["analysis"], capacity=2))
    orch.register_agent(AgentProfile("w1", "Writer", ["generation"]))
    return orch


async def run_on(clock: ManualClock, work):
    """Await ``work``, moving ``clock`` to each next wake-up whenever the work is asleep
    on it (every task sleeps on the clock, so "asleep" is exact)."""
    runner = asyncio.ensure_future(work)
    while not runner.done():
        asleep = asyncio.ensure_future(clock.sleeping(1))
        await asyncio.wait({runner, asleep}, return_when=asyncio.FIRST_COMPLETED)
        if asleep.done():
            await asyncio.sleep(0)  # let any sibling woken in the same turn fall asleep too
            due = clock.next_due()
            if due is not None:
                clock.advance(due)
        else:
            asleep.cancel()
    return runner.result()


def node_statuses(dash: Dashboard) -> dict[str, str]:
    """What the DAG widget's colours say, read off the widget itself."""
    trace = dash.dag.data[DAG_NODE_TRACE]
    meta = dash.dag.layout.meta
    assert meta["statuses"][: len(STATUSES)] == STATUSES
    pairs = zip(dash._shown.ids, trace.marker.color, strict=True)
    return {tid: meta["statuses"][int(c)] for tid, c in pairs}


async def test_final_state_after_a_run_is_complete_and_correct():
    orch = orchestrator()
    wf = mixed_workflow()
    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    assert isinstance(dash, ipywidgets.VBox)
    assert isinstance(dash.dag, go.FigureWidget) and isinstance(dash.load, go.FigureWidget)
    assert isinstance(dash.progress, ipywidgets.IntProgress)

    result = await orch.execute_workflow("mixed")  # no sleep, no flush: final at once

    expected = {tid: r["status"] for tid, r in result["task_results"].items()}
    assert expected == {"load": "completed", "flaky": "completed", "broken": "failed",
                        "after_broken": "skipped", "report": "completed"}
    assert dash.progress.value == dash.progress.max == 5
    assert dash.progress.bar_style == "danger"  # the run failed: the bar is red
    assert dash.progress.style.bar_color == RUN_BAR_COLORS["failed"] == STATUS_COLORS["failed"]
    assert dash.progress.description == "5 / 5 tasks · 100%"
    counts = dash.status_counts
    assert counts == {"pending": 0, "running": 0, "retrying": 0, "completed": 3, "failed": 1,
                      "skipped": 1, "cancelled": 0, "cached": 0}
    assert node_statuses(dash) == expected
    assert dash.task_statuses == expected
    assert dash.run_id == result["run_id"]
    # the counts row and header say the same
    assert "completed <b>3</b>" in dash.header.value and "failed <b>1</b>" in dash.header.value
    assert result["run_id"] in dash.header.value and ">failed<" in dash.header.value
    # every agent idle again, capacities as registered
    assert dash.agent_load == {"a1": (0, 2), "w1": (0, 1)}
    # hover text of each node: agent, attempt, error (escaped), skip reason
    hover = dict(zip(dash._shown.ids, dash.dag.data[DAG_NODE_TRACE].customdata, strict=True))
    assert "agent: a1 · attempt 2" in hover["flaky"]
    assert "ValueError: bad &lt;input&gt;" in hover["broken"]
    assert f"at tests/jupyter/test_jupyter_dashboard.py:{BROKEN_LINE} in broken: raise " \
        "ValueError(&quot;bad &lt;input&gt;&quot;)" in hover["broken"]
    assert "broken" in hover["after_broken"] and "skipped" in hover["after_broken"]
    # the events table ends with the run's end
    assert "run failed" in dash.events.value and "3/5 completed" in dash.events.value
    assert dash.events.value.count("<tr><td") == 8  # max_events rows
    dash.close()


async def test_the_events_show_where_a_task_failed():
    orch = orchestrator()
    wf = Workflow("one_failure")

    @wf.task(requires=["analysis"])
    def crunch(ctx):
        return {}["revenu"]

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    result = await orch.execute_workflow("one_failure")
    assert result["status"] == "failed"
    line = next(i for i, ln in enumerate(Path(__file__).read_text().splitlines(), 1)
                if 'return {}["revenu"]' in ln)
    assert ("<span class='wfkit-where' style='color:#555'>at tests/jupyter/"
            f"test_jupyter_dashboard.py:{line} in crunch: return {{}}[&quot;revenu&quot;]"
            "</span>") in dash.events.value
    assert "KeyError: &#x27;revenu&#x27;" in dash.events.value
    dash.close()


async def test_redraws_are_throttled_and_batched():
    clock = ManualClock()
    orch = orchestrator(clock)
    wf = Workflow("chain")
    prev = None
    for i in range(30):
        async def step(ctx):
            clock.advance(1 / 4)  # each step takes 1/4 s (exact in binary)

        prev = wf.task(step, task_id=f"s{i}", requires=["analysis"],
                       after=[prev] if prev else None)
    await orch.create_workflow(wf)
    dash = Dashboard(orch, interval=1.0)  # the longest gap a costly redraw may ask for
    events: list[object] = []
    orch.subscribe(events.append)
    await orch.execute_workflow("chain")

    assert len(events) == 62  # RunStarted, 30 x (started, completed), RunFinished
    times = [t - clock.monotonic() + 30 / 4 for t in dash.redraw_times]  # since the start
    # one redraw per interval (every 4 steps) while events keep coming, then RunFinished's
    assert times == [float(k) for k in range(1, 8)] + [30 / 4]
    assert dash.progress.value == 30


async def test_a_costly_redraw_spaces_the_next_ones_by_its_cost():
    """Redrawing takes at most 1/40 of the loop's time: a gap is at least 39 times what the
    redraw before it took (at most a second, at least the interval), so a slow redraw cannot
    slow a run down. What a redraw takes is real time; the gaps run on the clock."""
    clock = ManualClock()
    orch = orchestrator(clock)
    wf = Workflow("chain")
    prev = None
    for i in range(60):
        async def step(ctx):
            clock.advance(1 / 20)

        prev = wf.task(step, task_id=f"s{i}", requires=["analysis"],
                       after=[prev] if prev else None)
    await orch.create_workflow(wf)
    dash = Dashboard(orch, interval=0.01)
    draw = dash._draw

    def costly() -> None:  # a redraw as slow as a large one on a busy machine
        began = time.perf_counter()
        draw()
        while time.perf_counter() - began < 0.004:
            pass

    dash._draw = costly
    await orch.execute_workflow("chain")
    times, costs = list(dash.redraw_times), list(dash.redraw_costs)
    assert dash.progress.value == 60 and len(times) >= 3  # 3 s of steps, gaps <= 1 s
    assert all(c >= 0.004 for c in costs)
    for before, after, cost in zip(times[:-2], times[1:-1], costs[:-2], strict=True):
        assert after - before >= min(39 * cost, dashboard_module._MAX_GAP) - 1e-9


async def test_a_second_run_and_another_workflow_are_followed():
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow("first"))
    dash = Dashboard(orch)
    r1 = await orch.execute_workflow("first")
    assert dash.run_id == r1["run_id"]

    wf2 = Workflow("second")

    @wf2.task(requires=["analysis"])
    def only(ctx):
        return "x"

    @wf2.task(requires=["analysis"], after=[only])
    def then(ctx):
        return "y"

    await orch.create_workflow(wf2)
    r2 = await orch.execute_workflow("second")
    assert dash.run_id == r2["run_id"]
    assert node_statuses(dash) == {"only": "completed", "then": "completed"}
    assert dash.progress.value == dash.progress.max == 2
    assert dash.progress.bar_style == "success"
    assert dash.progress.style.bar_color == STATUS_COLORS["completed"]

    r3 = await orch.execute_workflow("first")  # back to the first DAG: every node repainted
    assert dash.run_id == r3["run_id"]
    assert node_statuses(dash) == {t: r["status"] for t, r in r3["task_results"].items()}


async def test_a_dashboard_made_before_the_workflow_draws_it_when_it_runs():
    orch = orchestrator()
    dash = Dashboard(orch)
    assert "no run yet" in dash.header.value
    assert len(dash.dag.data) == 0
    await orch.create_workflow(mixed_workflow())
    result = await orch.execute_workflow("mixed")
    assert node_statuses(dash) == {t: r["status"] for t, r in result["task_results"].items()}


async def test_the_dag_is_drawn_before_the_run_when_the_workflow_exists():
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    assert set(dash._shown.ids) == {"load", "flaky", "broken", "after_broken", "report"}
    assert set(node_statuses(dash).values()) == {"pending"}


async def test_the_dag_comes_from_the_orchestrators_public_task_graph():
    asked = []

    class Watched(CollectiveAgentWorkflowOrchestrator):
        def task_graph(self, workflow_id):
            asked.append(workflow_id)
            return super().task_graph(workflow_id)

    orch = Watched(progress=False)
    orch.register_agent(AgentProfile("a1", "Analyst", ["analysis"], capacity=2))
    orch.register_agent(AgentProfile("w1", "Writer", ["generation"]))
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    assert asked == ["mixed"]
    assert dash._dags["mixed"].graph is orch.task_graph("mixed")
    assert set(dash._shown.ids) == set(orch.task_graph("mixed").ids)


async def test_a_cancelled_run_shows_cancelled_tasks():
    orch = orchestrator()
    wf = Workflow("slow")

    @wf.task(requires=["analysis"])
    async def first(ctx):
        return None

    @wf.task(requires=["analysis"], after=[first])
    async def forever(ctx):
        await asyncio.Event().wait()  # until cancelled

    @wf.task(requires=["analysis"], after=[forever])
    async def never(ctx):
        return None

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    started = asyncio.Event()
    orch.subscribe(lambda e: isinstance(e, TaskStarted) and e.task_id == "forever"
                   and started.set())
    run = asyncio.ensure_future(orch.execute_workflow("slow"))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert dash.task_statuses == {"first": "completed", "forever": "cancelled",
                                  "never": "cancelled"}
    assert dash.progress.style.bar_color == RUN_BAR_COLORS["cancelled"]  # grey, not red
    assert dash.progress.bar_style == ""
    assert dash.progress.value == 3
    assert dash.agent_load["a1"] == (0, 2)


async def test_a_workflow_too_large_to_draw_still_shows_progress():
    orch = orchestrator()
    wf = Workflow("wide")
    for i in range(12):
        wf.task(lambda ctx: None, task_id=f"t{i}", requires=["analysis"])
    await orch.create_workflow(wf)
    dash = Dashboard(orch, max_dag_tasks=10)
    await orch.execute_workflow("wide")
    assert dash.progress.value == 12
    assert "more than max_dag_tasks=10" in dash.dag.layout.title.text
    assert len(dash.dag.data) == 0


async def test_large_workflows_keep_colours_live_without_hover_details():
    orch = orchestrator()
    wf = Workflow("many")
    for i in range(30):
        wf.task(lambda ctx: None, task_id=f"t{i}", requires=["analysis"])
    await orch.create_workflow(wf)
    dash = Dashboard(orch, hover_tasks=10)
    await orch.execute_workflow("many")
    assert set(node_statuses(dash).values()) == {"completed"}
    assert dash.dag.data[DAG_NODE_TRACE].customdata is None


async def test_close_stops_following():
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    assert dashboard_module.follows(orch)
    assert len(orch._bus) == 1
    dash.close()
    assert len(orch._bus) == 0 and not dashboard_module.follows(orch)
    await orch.execute_workflow("mixed")
    assert dash.redraws == 0 and dash.run_id is None


async def test_events_published_from_another_thread_are_drawn_on_the_loop_thread(monkeypatch):
    bus = wfkit.EventBus()

    class Source:
        workflows: dict = {}
        agents: dict = {}

        def subscribe(self, cb):
            return bus.subscribe(cb)

    dash = Dashboard(Source(), interval=0.01)
    drawn_on: list[int] = []
    drawn = asyncio.Event()
    redraw = dash._redraw

    def recording_redraw():
        drawn_on.append(threading.get_ident())
        redraw()
        drawn.set()

    monkeypatch.setattr(dash, "_redraw", recording_redraw)
    bus.emit(RunStarted("r1", 1.0, "w", ("a", "b"), (("x", 1),)))  # on the loop: sets it
    await asyncio.wait_for(drawn.wait(), 10)

    def publish() -> None:
        bus.emit(TaskStarted("r1", 2.0, "w", "a", "x", 1))
        bus.emit(TaskCompleted("r1", 3.0, "w", "a", "x", 1, 2.0, None))

    await asyncio.to_thread(publish)
    while dash.progress.value != 1:  # the last event always asks for one more redraw
        drawn.clear()
        await asyncio.wait_for(drawn.wait(), 10)
    assert dash.task_statuses == {"a": "completed", "b": "pending"}
    assert dash.progress.value == 1
    assert set(drawn_on) == {threading.get_ident()}


def test_without_a_loop_it_draws_at_once():
    bus = wfkit.EventBus()

    class Source:
        def subscribe(self, cb):
            return bus.subscribe(cb)

    dash = Dashboard(Source())
    bus.emit(RunStarted("r1", 1.0, "w", ("a",), ()))
    bus.emit(TaskStarted("r1", 2.0, "w", "a", "x", 1))
    assert dash.task_statuses == {"a": "running"} and dash.redraws == 2
    assert "1 running" not in dash.header.value  # the badge shows the count
    assert "running <b>1</b>" in dash.header.value


def test_bad_input_is_named():
    with pytest.raises(ValidationError, match=r"Dashboard\(\) follows an orchestrator .* got int"):
        Dashboard(3)


def test_the_public_name():
    assert wfkit.Dashboard is Dashboard


def test_events_built_for_subscribers_stay_immutable_dataclasses():
    # events.py fills event slots directly (cheaper for every subscriber, the dashboard's
    # benchmark included); what the dataclasses promised must still hold
    import dataclasses
    import pickle

    from wfkit.events import RunStarted, TaskCompleted

    ev = TaskCompleted("r", 2.0, "w", "t", "a", 1, 1.5)
    assert ev.result is None and ev.started_at == 1.5
    assert ev == pickle.loads(pickle.dumps(ev)) and hash(ev) == hash(dataclasses.replace(ev))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.task_id = "x"
    assert dataclasses.replace(ev, task_id="u").task_id == "u"
    kw = RunStarted(run_id="r", timestamp=1.0, workflow_id="w", task_ids=("a",), agents=())
    assert kw.resumed == () and kw.policy == ""
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'agents'"):
        RunStarted("r", 1.0, "w", ())


async def test_the_figures_save_a_loader_not_plotlys_javascript():
    from wfkit.jupyter.livefigure import KEY, LiveFigure, _modules

    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    for fig in (dash.dag, dash.load):
        assert isinstance(fig, LiveFigure)
        esm = fig.get_state()["_esm"]  # what a saved notebook keeps
        assert len(esm) < 5_000 and f'Symbol.for("{KEY}")' in esm
    full, loader = _modules()
    assert len(full) > 1_000_000 and full.rstrip().endswith("}")  # Plotly's, kept on the page
    assert f'Symbol.for("{KEY}")' in full.rsplit("export", 1)[1]
    dash.close()


async def test_a_dashboard_sends_plotlys_module_once_not_once_per_figure(monkeypatch):
    """Each figure's first state went out with Plotly's 5 MB module: two per dashboard, to
    serialise and send every time one is made (and, in a kernel, still going out when the
    run starts). The DAG's figure carries it; the load's opens with the small loader, which
    takes the module from the page."""
    import ipywidgets.widgets.widget as widget_module

    from wfkit.jupyter.livefigure import KEY, LiveFigure, _modules

    full, loader = _modules()
    opened: list[str] = []
    create = widget_module.comm.create_comm

    def record(**kwargs):
        opened.append(kwargs["data"]["state"].get("_esm", ""))
        return create(**kwargs)

    monkeypatch.setattr(widget_module.comm, "create_comm", record)
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    modules = [esm for esm in opened if esm]
    assert modules == [full, loader]  # the DAG's, then the load's: 5 MB once, not twice
    assert sum(map(len, opened)) < len(full) + 100_000
    for fig in (dash.dag, dash.load):  # what a saved notebook keeps: the loader for both
        assert fig.get_state()["_esm"] == loader and f'Symbol.for("{KEY}")' in loader
    dash.close()
    # a figure alone, and a figure a browser is known to show, still open with the module
    opened.clear()
    for fig in (LiveFigure(go.Figure()), LiveFigure(go.Figure(), loader=False, module=False)):
        fig.close()
    assert [esm for esm in opened if esm] == [full, full]


async def test_the_output_is_the_widget_while_a_browser_shows_it_else_a_snapshot():
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    handles: list[dict] = []

    class Handle:  # what IPython's display(..., display_id=True) returns
        def update(self, data, raw=False):
            handles.append(data)

    dash._displays.append(Handle())
    before = dash._bundle()
    assert WIDGET in before and "wfkit-dashboard-snapshot" in before["text/html"]
    await orch.execute_workflow("mixed")
    headless = handles[-1]  # no browser said hello: the snapshot alone
    assert WIDGET not in headless
    assert "failed <b>1</b>" in headless["text/html"] and "run failed" in headless["text/html"]
    dash.dag._on_custom(dash.dag, {"type": "wfkit-frontend"}, [])  # a browser shows it now
    assert dash.live and WIDGET in handles[-1]  # the live view comes back at once
    await orch.execute_workflow("mixed")
    assert WIDGET in handles[-1] and "completed <b>3</b>" in handles[-1]["text/html"]
    dash.close()


async def test_cached_tasks_are_coloured_as_cached_in_the_dashboard_dag_and_repr():
    from wfkit.jupyter.reprs import run_result_html
    from wfkit.plots import dag_figure

    orch = orchestrator()
    wf = Workflow("cached", cache=True)
    calls = CALLS
    calls.clear()

    @wf.task(requires=["analysis"])
    def load(ctx):
        CALLS.append("load")
        return [1, 2, 3]

    @wf.task(requires=["analysis"], after=[load])
    def total(ctx):
        CALLS.append("total")
        return sum(ctx.inputs["load"])

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    await orch.execute_workflow("cached")

    @wf.task(requires=["analysis"], after=[load])  # edited: only it runs again
    def total(ctx):  # noqa: F811 - a redefined task, as in a re-run cell
        CALLS.append("total")
        return sum(ctx.inputs["load"]) * 2

    result = await orch.execute_workflow(wf)
    assert calls == ["load", "total", "total"]
    assert node_statuses(dash) == {"load": "cached", "total": "completed"}
    assert dash.status_counts["cached"] == 1 and "cached <b>1</b>" in dash.header.value
    assert dash.progress.value == 2 and dash.progress.bar_style == "success"
    assert "from the result cache: not run" in dash.events.value
    colours = dict(zip(dash._shown.ids, dash.dag.data[DAG_NODE_TRACE].marker.color,
                       strict=True))
    assert STATUSES[int(colours["load"])] == "cached"

    fig = dag_figure(wf, result)  # the static DAG: a cached node, in the cached colour
    assert "cached" in [t.name for t in fig.data]
    meta = fig.layout.meta["statuses"]
    codes = dict(zip(fig.data[DAG_NODE_TRACE].customdata, fig.data[DAG_NODE_TRACE].marker.color,
                     strict=True))
    assert meta[int(codes["load"])] == "cached" and meta[int(codes["total"])] == "completed"
    assert dag_figure(wf, result.frame()).layout.meta == fig.layout.meta  # from a frame too

    html = run_result_html(result)
    assert "1 from the cache, not run" in html
    assert html.count(">cached</span>") == 1  # load's status badge
    assert "cached <b>1</b>" in html and "completed <b>1</b>" in html
    dash.close()


async def test_the_totals_grow_as_tasks_are_mapped():
    orch = orchestrator()
    wf = Workflow("mapping")
    seen: list[tuple[int, int]] = []

    @wf.task(requires=["analysis"])
    def items(ctx):
        return list(range(7))

    @wf.task(requires=["analysis"], map=items)
    async def each(ctx):
        seen.append((dash.progress.max, dash.status_counts["running"]))
        return ctx.item

    @wf.task(requires=["generation"], after=[each])
    def total(ctx):
        return sum(ctx.inputs["each"])

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    result = await orch.execute_workflow("mapping")
    assert result["task_results"]["total"]["result"] == 21
    dash.flush()
    assert dash.progress.value == dash.progress.max == 10  # 3 tasks and 7 mapped children
    assert dash.progress.description == "10 / 10 tasks · 100%"
    assert dash.status_counts["completed"] == 10
    assert node_statuses(dash) == {"items": "completed", "each": "completed",
                                   "total": "completed"}


async def test_a_large_workflow_is_drawn_live_as_groups_with_counts():
    orch = orchestrator()
    wf = Workflow("grouped")
    wf.task(lambda ctx: None, task_id="start", requires=["analysis"])
    for i in range(300):
        wf.task(lambda ctx: None, task_id=f"part_{i:04d}", requires=["analysis"],
                after=["start"], group="part")
    for i in range(200):  # no group: with one node each they would not fit, stems do
        wf.task(lambda ctx: None, task_id=f"check_{i:04d}", requires=["analysis"],
                after=[f"part_{i:04d}"])
    wf.task(lambda ctx: None, task_id="end", requires=["analysis"],
            after=[f"check_{i:04d}" for i in range(200)])
    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    assert set(dash._shown.ids) == {"start", "part", "check", "end"}  # 502 tasks, 4 nodes
    assert set(node_statuses(dash).values()) == {"pending"}
    await orch.execute_workflow("grouped")
    assert node_statuses(dash) == dict.fromkeys(["start", "part", "check", "end"], "completed")
    now = dict(zip(dash._shown.ids, dash.dag.data[DAG_NODE_TRACE].customdata, strict=True))
    assert now["part"] == "now: 300 completed" and now["check"] == "now: 200 completed"
    assert "502 tasks in 4 groups" in dash.dag.layout.title.text
    import plotly.io as pio  # the live figure looks as plotly_white, with a lighter template

    white = pio.templates["plotly_white"].layout
    for name in ("paper_bgcolor", "plot_bgcolor", "font", "hoverlabel", "colorway"):
        assert dash.dag.layout.template.layout[name] == white[name], name
    assert "<img" in dash.snapshot_html()  # the saved picture draws the groups too


async def test_at_the_end_of_a_run_the_load_panel_shows_what_each_agent_did():
    clock = ManualClock()
    orch = orchestrator(clock)
    wf = Workflow("usage")
    for i in range(4):
        @wf.task(task_id=f"work{i}", requires=["analysis"])
        async def work(ctx):
            await clock.sleep(0.02)

    @wf.task(requires=["generation"], after=[f"work{i}" for i in range(4)])
    async def write(ctx):
        await clock.sleep(0.01)

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    result = await run_on(clock, orch.execute_workflow("usage"))
    records = result["task_results"].values()
    span = max(r["finished_at"] for r in records) - min(r["started_at"] for r in records)

    def peak(agent: str) -> int:
        marks = sorted(m for r in records if r["agent_id"] == agent
                       for m in ((r["started_at"], 1), (r["finished_at"], -1)))
        now = best = 0
        for _, step in marks:
            now += step
            best = max(best, now)
        return best

    usage = dash.agent_usage
    for agent, cap in (("a1", 2), ("w1", 1)):
        busy = sum(r["finished_at"] - r["started_at"] for r in records if r["agent_id"] == agent)
        assert usage[agent]["busy"] == pytest.approx(busy, abs=1e-6)
        assert usage[agent]["peak"] == peak(agent)
        assert 0 < usage[agent]["utilisation"] <= 1
        assert usage[agent]["utilisation"] == pytest.approx(busy / (cap * span), rel=1e-6)
    # two 0.02 s waves of work on a1 (two at once), then 0.01 s of writing on w1
    assert span == pytest.approx(0.05, abs=1e-6)
    assert (peak("a1"), usage["a1"]["busy"]) == (2, pytest.approx(0.08, abs=1e-6))
    assert usage["w1"]["utilisation"] == pytest.approx(0.2, abs=1e-4)
    bars = dash.load.data[1]
    assert list(bars.x) == ["a1", "w1"]
    assert list(bars.y) == pytest.approx([2 * usage["a1"]["utilisation"],
                                          usage["w1"]["utilisation"]])
    assert list(bars.text) == [f"{usage['a1']['utilisation']:.0%} · peak {peak('a1')}/2",
                               f"{usage['w1']['utilisation']:.0%} · peak 1/1"]
    assert "utilisation" in dash.load.layout.title.text
    assert dash.agent_load == {"a1": (0, 2), "w1": (0, 1)}  # idle now


async def test_the_saved_picture_shows_what_each_agent_did_over_the_run():
    """The snapshot's load table at the end of a run: each agent's utilisation and peak
    concurrency (as the load panel shows them, from the same numbers), not the idle 0/N."""
    import re

    clock = ManualClock()
    orch = orchestrator(clock)
    wf = Workflow("saved_usage")
    seen: list[str] = []
    for i in range(4):
        @wf.task(task_id=f"work{i}", requires=["analysis"])
        async def work(ctx):
            await clock.sleep(0.02)

    @wf.task(requires=["generation"], after=[f"work{i}" for i in range(4)])
    async def write(ctx):
        seen.append(dash.snapshot_html())  # during the run: running / capacity
        await clock.sleep(0.01)

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    await run_on(clock, orch.execute_workflow("saved_usage"))
    assert "1/1 running" in seen[0] and "utilisation" not in seen[0]

    usage = dash.agent_usage
    html = dash.snapshot_html()
    load = html[html.index("wfkit-snapshot-load"):]
    assert "Agent load over the run" in load
    assert "running<" not in load  # no idle 0/2 and 0/1 at the end
    rows = re.findall(r"<code>([^<]+)</code>.*?width:(\d+)%.*?wfkit-snapshot-use[^>]*>([^<]+)<",
                      load)
    assert [r[0] for r in rows] == ["a1", "w1"]
    for agent, width, text in rows:
        cap = orch.agents[agent].capacity
        u = usage[agent]
        assert u["peak"] >= 1 and 0 < u["utilisation"] <= 1
        assert text == f"{u['utilisation']:.0%} utilisation · peak {u['peak']}/{cap} at once"
        assert int(width) == round(100 * u["utilisation"])
    # the load panel says the same
    assert [t.split(" · ")[0] for t in dash.load.data[1].text] == [
        f"{usage[a]['utilisation']:.0%}" for a in ("a1", "w1")]
    dash.close()


def montage_like(name: str = "montage_like") -> Workflow:
    """A Montage-shaped workflow of 160 tasks: five groups by name stem, one of six tasks."""
    wf = Workflow(name)
    for i in range(60):
        wf.task(lambda ctx: None, task_id=f"mProject_{i:03d}", requires=["analysis"])
    for i in range(90):
        wf.task(lambda ctx: None, task_id=f"mDiffFit_{i:03d}", requires=["analysis"],
                after=[f"mProject_{i % 60:03d}", f"mProject_{(i + 1) % 60:03d}"])
    wf.task(lambda ctx: None, task_id="mConcatFit", requires=["analysis"],
            after=[f"mDiffFit_{i:03d}" for i in range(90)])
    wf.task(lambda ctx: None, task_id="mBgModel", requires=["analysis"], after=["mConcatFit"])
    for i in range(6):
        wf.task(lambda ctx: None, task_id=f"mBackground_{i}", requires=["analysis"],
                after=["mBgModel"])
    wf.task(lambda ctx: None, task_id="mAdd", requires=["analysis"],
            after=[f"mBackground_{i}" for i in range(6)])
    return wf


def click(dash: Dashboard, node: str) -> None:
    """Click ``node`` of the DAG widget as a browser does: Plotly's JavaScript sets the
    widget's ``_js2py_pointsCallback`` to this message (plotly_click, the points under the
    mouse by trace and point index, the mouse buttons)."""
    k = dash._shown.ids.index(node)
    nodes = dash.dag.data[DAG_NODE_TRACE]
    dash.dag._js2py_pointsCallback = {
        "event_type": "plotly_click",
        "points": {"trace_indexes": [DAG_NODE_TRACE], "point_indexes": [k],
                   "xs": [float(nodes.x[k])], "ys": [float(nodes.y[k])]},
        "device_state": {"alt": False, "ctrl": False, "meta": False, "shift": False,
                         "button": 0, "buttons": 1},
        "selector": None,
    }


def drawn(dash: Dashboard) -> tuple[int, list[str]]:
    """(markers drawn, their labels), read off the DAG widget."""
    nodes = dash.dag.data[DAG_NODE_TRACE]
    text = () if nodes.text is None else nodes.text  # no labels above 80 groups
    return len(nodes.x), [str(t) for t in text]


async def test_a_click_on_a_group_shows_its_tasks_and_a_click_on_one_folds_it():
    orch = orchestrator()
    wf = montage_like()
    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    folded = drawn(dash)
    assert folded == (6, ["mProject ×60", "mDiffFit ×90", "mConcatFit", "mBgModel",
                          "mBackground ×6", "mAdd"])
    assert "click a group to show its tasks" in dash.dag.layout.title.text
    assert dash.fold.layout.display == "none" and dash.expanded_groups == ()

    click(dash, "mBackground")  # before the run: the DAG as it will run
    n, labels = drawn(dash)
    assert n == 6 - 1 + 6
    assert [t for t in labels if t.startswith("mBackground")] == [
        f"mBackground_{i}" for i in range(6)]
    assert "mProject ×60" in labels and "mDiffFit ×90" in labels  # the others stay folded
    assert dash.expanded_groups == ("mBackground",)
    assert dash.fold.layout.display is None and dash.fold.description == "fold mBackground back"
    assert set(dash.node_statuses.values()) == {"pending"}

    click(dash, "mDiffFit")  # a second group opens too
    assert drawn(dash)[0] == 6 - 2 + 6 + 90
    assert set(dash._shown.ids) >= {f"mDiffFit_{i:03d}" for i in range(90)}
    assert dash.expanded_groups == ("mBackground", "mDiffFit")

    result = await orch.execute_workflow("montage_like")  # the run colours the open groups
    assert result["status"] == "completed"
    assert dash.expanded_groups == ("mBackground", "mDiffFit")
    assert len(dash.node_statuses) == 100
    assert set(dash.node_statuses.values()) == {"completed"}

    click(dash, "mDiffFit_042")  # a task of an open group folds that group back
    n, labels = drawn(dash)
    assert n == 11 and "mDiffFit ×90" in labels and "mBackground_3" in labels
    assert dash.node_statuses["mDiffFit"] == "completed"  # coloured as the run ended

    click(dash, "mAdd")  # a task of no open group: nothing changes
    assert drawn(dash) == (n, labels)

    dash.fold.click()  # the fold button closes what is open
    assert drawn(dash) == folded and dash.expanded_groups == ()
    assert dash.fold.layout.display == "none"
    assert set(dash.node_statuses.values()) == {"completed"}
    dash.close()


async def test_a_group_opened_during_a_run_follows_it():
    orch = orchestrator()
    wf = montage_like("opened_live")
    seen: dict[str, str] = {}

    @wf.task(requires=["analysis"], after=["mAdd"])
    async def last(ctx):
        click(dash, "mBackground")
        seen.update(dash.node_statuses)

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    await orch.execute_workflow("opened_live")
    assert [seen[f"mBackground_{i}"] for i in range(6)] == ["completed"] * 6
    assert seen["last"] == "running" and seen["mProject"] == "completed"
    assert dash.node_statuses["last"] == "completed"
    assert dash.expanded_groups == ("mBackground",)
    dash.close()


async def test_a_click_means_nothing_on_a_dag_without_groups():
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow("small"))
    dash = Dashboard(orch)
    before = drawn(dash)
    click(dash, "load")
    assert drawn(dash) == before and dash.expanded_groups == ()
    assert "click" not in dash.dag.layout.title.text


async def test_the_load_panel_ends_a_mapped_run_whose_gathering_no_agent_ran():
    """A mapped task's parent completes with no agent (agent_id None): what each agent did
    is counted from the attempts agents ran, and the end-of-run panel draws."""
    orch = orchestrator()
    wf = Workflow("mapped_usage")

    @wf.task(requires=["analysis"])
    async def items(ctx):
        return [1, 2, 3]

    @wf.task(requires=["analysis"], map=items)
    async def double(ctx):
        return 2 * ctx.item

    await orch.create_workflow(wf)
    dash = Dashboard(orch)
    result = await orch.execute_workflow("mapped_usage")
    assert result["task_results"]["double"]["result"] == [2, 4, 6]
    usage = dash.agent_usage
    assert set(usage) == {"a1", "w1"}
    assert usage["w1"]["busy"] == 0.0 and usage["a1"]["peak"] >= 1
    assert "utilisation" in dash.load.layout.title.text
    dash.close()


def test_busy_time_and_peak_per_agent_from_spans():
    import random

    rng = random.Random(5)
    spans = []
    for _ in range(400):  # starts and ends on a coarse grid: many ties, an end before a start
        start = rng.randrange(50) / 10
        spans.append((rng.choice(["a", "b", "c"]), start, start + rng.randrange(6) / 10))
    spans.append((None, 0.0, 1.0))  # not on an agent: not counted
    busy, peak = dashboard_module._spans_usage([x for span in spans for x in span])
    for agent in ("a", "b", "c"):
        mine = [(s, e) for a, s, e in spans if a == agent]
        assert busy[agent] == pytest.approx(sum(e - s for s, e in mine))
        now = best = 0
        for _, step in sorted(m for s, e in mine for m in ((s, 1), (e, -1))):
            now += step
            best = max(best, now)
        assert peak[agent] == best
    assert set(busy) == set(peak) == {"a", "b", "c"}
    assert dashboard_module._spans_usage([]) == ({}, {})


async def test_a_dashboard_made_before_its_workflow_draws_the_dag_before_the_run():
    """Created when the workflow is, not inside the run: the run starts with the DAG drawn
    (grouped, as a dashboard made after the workflow draws it) and never draws it again."""
    orch = orchestrator()
    dash = Dashboard(orch)
    assert len(dash.dag.data) == 0
    at_start = []

    def probe(ev):  # subscribed after the dashboard: sees what it shows when a run starts
        if isinstance(ev, RunStarted):
            at_start.append((drawn(dash), dash._shown, dash.redraws))

    orch.subscribe(probe)
    wf = montage_like()
    await orch.create_workflow(wf)
    shown = dash._shown
    assert isinstance(shown, dashboard_module._DagView) and shown.grouping is not None
    assert dash.redraws == 0  # drawn outside any redraw
    markers, _ = drawn(dash)
    assert markers == len(shown.ids) < len(wf.tasks)
    assert set(node_statuses(dash).values()) == {"pending"}
    warm = Dashboard(orch)  # made after the workflow: draws the same view
    assert warm._shown.ids == shown.ids
    warm.close()

    result = await orch.execute_workflow(wf)
    assert at_start == [(drawn(dash), shown, 0)]  # the view existed when the run began
    assert dash._shown is shown and dash._dags[wf.workflow_id] is shown  # not rebuilt
    assert result["successful_tasks"] == len(wf.tasks)
    assert set(node_statuses(dash).values()) == {"completed"}


async def test_a_re_created_workflow_is_redrawn_before_its_next_run():
    orch = orchestrator()
    dash = Dashboard(orch)
    first = Workflow("cell")
    first.task(lambda ctx: 1, task_id="a", requires=["analysis"])
    await orch.create_workflow(first)
    assert set(dash._shown.ids) == {"a"}
    await orch.execute_workflow("cell")
    assert node_statuses(dash) == {"a": "completed"}

    again = Workflow("cell")  # the cell run again, edited
    again.task(lambda ctx: 1, task_id="a", requires=["analysis"])
    again.task(lambda ctx: 2, task_id="b", requires=["analysis"], after=["a"])
    await orch.create_workflow(again)
    assert node_statuses(dash) == {"a": "pending", "b": "pending"}  # the new DAG, unrun
    drawn_before = dash._shown
    result = await orch.execute_workflow("cell")
    assert dash._shown is drawn_before
    assert node_statuses(dash) == {t: r["status"] for t, r in result["task_results"].items()}
    assert dash.progress.value == dash.progress.max == 2


async def test_a_workflow_created_during_another_run_waits_for_its_own():
    orch = orchestrator()
    dash = Dashboard(orch)
    await orch.create_workflow(mixed_workflow("running"))
    shown_during = []

    other = Workflow("other")
    other.task(lambda ctx: 1, task_id="x", requires=["generation"])

    def create_other(ev):  # a workflow created while "running" runs
        if isinstance(ev, TaskStarted) and not shown_during:
            asyncio.get_running_loop().create_task(orch.create_workflow(other))
            shown_during.append(ev)

    orch.subscribe(create_other)
    await orch.execute_workflow("running")
    assert set(dash._shown.ids) == {"load", "flaky", "broken", "after_broken", "report"}
    assert "other" in dash._dags  # drawn already, shown when it runs
    drawn_other = dash._dags["other"]
    await orch.execute_workflow("other")
    assert dash._shown is drawn_other and node_statuses(dash) == {"x": "completed"}


async def test_a_closed_dashboard_lets_go_of_its_widgets_and_runs():
    """ipywidgets keeps every open widget: a child left open (the fold button's callback
    holds the dashboard) kept each closed dashboard, its runs and its workflow alive."""
    import gc
    import weakref

    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    await orch.execute_workflow("mixed")
    refs = [weakref.ref(dash), weakref.ref(dash.fold), weakref.ref(dash.header.layout),
            weakref.ref(dash.dag)]
    dash.close()
    del dash
    gc.collect()
    assert [ref() for ref in refs] == [None] * len(refs)


async def test_a_finished_runs_load_is_worked_out_once_and_sent_in_one_change(monkeypatch):
    """At a run's end the load panel and the saved picture both show what each agent did:
    worked out once from the run's attempts, and the bars with their new title go to the
    figure as one update (each Plotly message costs a kernel several widget messages)."""
    calls = []
    spans_usage = dashboard_module._spans_usage
    monkeypatch.setattr(dashboard_module, "_spans_usage",
                        lambda spans: calls.append(len(spans)) or spans_usage(spans))
    orch = orchestrator()
    await orch.create_workflow(mixed_workflow())
    dash = Dashboard(orch)
    sent: list[str] = []
    dash.load.observe(lambda change: change["new"] is not None and sent.append(change["name"]),
                      names=["_py2js_restyle", "_py2js_relayout", "_py2js_update"])
    await orch.execute_workflow("mixed")
    assert "utilisation" in dash.load.layout.title.text
    assert sent[-1] == "_py2js_update" and "_py2js_relayout" not in sent
    first = dash.agent_usage
    assert "peak" in dash.snapshot_html()  # the saved picture's load table
    assert dash.agent_usage == first and len(calls) == 1
    first["a1"]["busy"] = -1.0  # a caller's copy: what the dashboard keeps is untouched
    assert dash.agent_usage["a1"]["busy"] >= 0
    sent.clear()
    await orch.execute_workflow("mixed")  # a new run: worked out again, for that run
    assert len(calls) == 2
    dash.close()


def test_a_live_figure_sends_each_plotly_edit_as_one_widget_message():
    """Plotly sends an edit as four widget messages (two edit ids, the edit, its reset to
    None); a live figure sends the ids with the edit in one: a kernel pays per message."""
    from wfkit.jupyter.livefigure import LiveFigure

    fig = LiveFigure(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])))
    sent: list[dict] = []
    fig.comm.send = lambda data=None, metadata=None, buffers=None: sent.append(data["state"])
    fig.plotly_restyle({"y": [[3, 4]]}, trace_indexes=[0])
    fig.plotly_relayout({"title.text": "load"})
    fig.plotly_update({"y": [[5, 6]]}, {"title.text": "usage"}, trace_indexes=[0])
    assert [sorted(state) for state in sent] == [
        ["_last_layout_edit_id", "_last_trace_edit_id", "_py2js_restyle"],
        ["_last_layout_edit_id", "_last_trace_edit_id", "_py2js_relayout"],
        ["_last_layout_edit_id", "_last_trace_edit_id", "_py2js_update"],
    ]
    # each message carries the ids its edit was made with, as Plotly's own messages did
    assert [(s["_last_layout_edit_id"], s["_last_trace_edit_id"]) for s in sent] == \
        [(1, 1), (2, 1), (3, 2)]
    assert sent[0]["_py2js_restyle"]["restyle_data"] == {"y": [[3, 4]]}
    assert sent[2]["_py2js_update"]["layout_data"] == {"title.text": "usage"}
    assert list(fig.data[0].y) == [5, 6] and fig.layout.title.text == "usage"
    fig.close()
