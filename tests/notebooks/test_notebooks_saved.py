"""An executed, saved notebook stays small and keeps the final state of its views.

Papermill saves every widget's last state: a Plotly ``FigureWidget`` used to put its ~5 MB
of JavaScript there (10.4 MB for the showcase's dashboard). The dashboard's figures now save
a small loader, and its output a static picture of the final state, which nbconvert's HTML
shows (``tests/e2e/test_e2e_saved_notebook.py`` opens both in Chromium).
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow  # papermill

WIDGET = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
LIMIT = 1_500_000  # bytes: the showcase executed and saved


def test_the_executed_showcase_is_small_and_shows_the_final_state(tmp_path):
    summary, path = run_notebook("02_collective_agents.ipynb", tmp_path)
    size = path.stat().st_size
    assert size <= LIMIT, f"{path.name} is {size:,} bytes"
    nb = nbformat.read(path, as_version=4)
    states = nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    biggest = max((len(json.dumps(s)) for s in states.values()), default=0)
    assert biggest < 50_000, biggest  # no widget carries Plotly's JavaScript
    esms = [s["state"]["_esm"] for s in states.values() if "_esm" in s["state"]]
    assert esms and all("wfkit.plotly-widget/" in e and len(e) < 5_000 for e in esms)

    dash_cell = next(c for c in nb.cells if c.source.startswith("dashboard = Dashboard(orch)"))
    (out,) = dash_cell.outputs
    assert WIDGET not in out.data  # headless: nbconvert would pick a widget it cannot load
    html = out.data["text/html"]
    statuses = list(summary["statuses"].values())
    for status in ("completed", "failed", "skipped"):
        assert f"{status} <b>{statuses.count(status)}</b>" in html
    assert "11 / 11 tasks · 100%" in html and "background-color:#d62728" in html  # red bar
    assert "data:image/svg+xml;base64," in html  # the DAG, coloured by outcome
    assert "<code>forecaster</code>" in html  # the agent load

    result_cell = next(c for c in nb.cells if c.source.startswith("result = await"))
    repr_html = result_cell.outputs[0].data["text/html"]
    assert re.search(r"at <code>Cell In\[\d+\], line \d+</code> in <code>forecast</code>",
                     repr_html)

    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    assert "wfkit-dashboard-snapshot" in body
    assert f'<script type="{WIDGET}">' not in body  # no widget view left to load
