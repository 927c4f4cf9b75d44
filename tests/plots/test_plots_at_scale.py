"""Gantt and agent load figures of large runs."""

from __future__ import annotations


def test_gantt_of_10000_attempts_uses_webgl_and_names_each_task():
    import pandas as pd
    import plotly.graph_objects as go

    from wfkit.plots import GANTT_WEBGL_ABOVE, gantt_figure

    n = 10_000
    t0 = pd.Timestamp("2026-01-01 12:00:00", tz="UTC")
    frame = pd.DataFrame({
        "task_id": [f"t{i}" for i in range(n)],
        "agent_id": [f"a{i % 4}" for i in range(n)],
        "status": ["failed" if i % 100 == 0 else "completed" for i in range(n)],
        "started_at": [t0 + pd.Timedelta(seconds=i // 4) for i in range(n)],
        "finished_at": [t0 + pd.Timedelta(seconds=i // 4 + 0.5) for i in range(n)],
    })
    assert n > GANTT_WEBGL_ABOVE
    fig = gantt_figure(frame)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    named = {h.split("</b>")[0][3:] for t in fig.data for h in t.hovertext if h}
    assert named == set(frame["task_id"])  # every attempt drawn, hover names its task
    drawn = {t.name: sum(1 for v in t.x if v is None) for t in fig.data}
    assert drawn == {"completed": 9_900, "failed": 100}
    small = gantt_figure(frame.iloc[:100])
    assert all(isinstance(t, go.Bar) for t in small.data)  # bars below the threshold


def test_agent_load_of_a_finished_run_shows_utilisation_next_to_the_steps():
    import pandas as pd

    from wfkit.plots import agent_load_figure

    t0 = pd.Timestamp("2026-01-01 12:00:00", tz="UTC")
    at = [t0 + pd.Timedelta(seconds=s) for s in range(11)]
    frame = pd.DataFrame({  # a1 (capacity 2): two tasks 0-10 s and 0-5 s; a2: one task 5-10 s
        "task_id": ["x", "y", "z"], "agent_id": ["a1", "a1", "a2"],
        "status": ["completed"] * 3,
        "started_at": [at[0], at[0], at[5]], "finished_at": [at[10], at[5], at[10]],
    })
    fig = agent_load_figure(frame, {"a1": 2, "a2": 1})
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["a1 · utilisation 75% · peak 2/2", "a2 · utilisation 50% · peak 1/1"]
    steps = [t for t in fig.data if t.name == "load"]
    assert [t.line.shape for t in steps] == ["hv", "hv"]  # running tasks over time, as steps
    assert list(steps[0].y)[:3] == [2, 1, 0]
