"""A 2,000-task run in JupyterLab: the live dashboard draws it as labelled groups.

``make e2e`` runs this. A notebook builds a workflow of the shape of WfCommons' Montage
traces (2,000 tasks named ``mDiffFit_ID0000042`` and so on: eight programs), shows a
``Dashboard`` and runs the workflow with top-level ``await``, as a person would in
JupyterLab in Chromium. The test checks that the DAG is drawn as its eight groups whose
labels (``mDiffFit ×1,180``) are visible on the page, that the run ends with every group
completed, and that nothing shows an error. ``build/e2e/dashboard-grouped.png`` (the
finished run) is the README's picture of a large run (``docs/dashboard-grouped.png``).
A click on a group is checked in ``tests/jupyter/test_jupyter_dashboard.py`` through the
message Plotly's JavaScript sends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lab_support import (
    BROWSER_MARKS,
    BUILD,
    CHROMIUM,
    FLAGS,
    cell_ran,
    jupyter_lab,
    open_notebook,
    run_menu,
)

pytestmark = BROWSER_MARKS

SETUP = """\
import asyncio
import random

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow

rng = random.Random(7)
wf = Workflow("montage_2000")


def work(low, high):
    async def run(ctx):
        await asyncio.sleep(rng.uniform(low, high))
    return run


ids = iter(range(1, 10_000))


def task(program, after=(), low=0.2, high=0.5):
    return wf.task(work(low, high), task_id=f"{program}_ID{next(ids):07d}",
                   requires=["montage"], after=list(after), estimate=(low + high) / 2)


project = [task("mProject") for _ in range(400)]
diff = [task("mDiffFit", [project[i % 400], project[(i * 7 + 1) % 400]]) for i in range(1180)]
concat = task("mConcatFit", diff, 0.3, 0.3)
model = task("mBgModel", [concat], 0.3, 0.3)
background = [task("mBackground", [model, project[i]]) for i in range(400)]
table = [task("mImgtbl", background[50 * i:50 * i + 50], 0.2, 0.2) for i in range(8)]
add = [task("mAdd", [table[i]], 0.2, 0.2) for i in range(8)]
viewer = [task("mViewer", add[4 * i:4 * i + 4], 0.2, 0.2) for i in range(2)]
assert len(wf) == 2000, len(wf)

orch = CollectiveAgentWorkflowOrchestrator(progress=False)
for i in range(3):
    orch.register_agent(AgentProfile(f"node-{i + 1}", f"Node {i + 1}", ["montage"], capacity=24))
await orch.create_workflow(wf)
wf  # its DAG, drawn as groups
"""

SHOW = """\
dash = wfkit.Dashboard(orch)
dash
"""

RUN = """\
result = await orch.execute_workflow("montage_2000")
print("E2E-GROUPED-DONE", result["status"], dash.progress.value, "of", dash.progress.max)
"""

# each group's label on its node: the program and how many of its tasks the node stands for
LABELS = ["mProject ×400", "mDiffFit ×1,180", "mConcatFit", "mBgModel", "mBackground ×400",
          "mImgtbl ×8", "mAdd ×8", "mViewer ×2"]

# the DAG widget's nodes (its third trace): their ids (the groups, by the hover text's first
# line), labels and marker colour codes (1 running, 3 completed)
NODES = """() => {
    const gd = document.querySelector('.wfkit-dashboard .js-plotly-plot');
    const nodes = gd && gd.data && gd.data[2];
    if (!nodes || !nodes.x) return null;
    return {n: nodes.x.length, text: Array.from(nodes.text || []),
            colours: Array.from(nodes.marker.color || [])};
}"""


def _visible_labels(page: Any) -> dict[str, bool]:
    """Each text label drawn in the dashboard's DAG, and whether it shows inside the
    figure (not clipped, not hidden, not of zero size)."""
    return page.evaluate(
        """() => {
            const gd = document.querySelector('.wfkit-dashboard .js-plotly-plot');
            const box = gd.getBoundingClientRect();
            const out = {};
            for (const t of gd.querySelectorAll('.scatterlayer .trace text')) {
                const r = t.getBoundingClientRect();
                const style = getComputedStyle(t);
                out[t.textContent] = r.width > 0 && r.height > 0
                    && style.visibility !== 'hidden' && style.display !== 'none'
                    && Number(style.opacity || 1) > 0
                    && r.left >= box.left && r.right <= box.right
                    && r.top >= box.top && r.bottom <= box.bottom;
            }
            return out;
        }"""
    )


def _show_dag(page: Any) -> None:
    """Scroll the notebook so that the dashboard's DAG fills the view."""
    page.locator(".wfkit-dashboard .js-plotly-plot").first.evaluate(
        "gd => gd.scrollIntoView({block: 'start'})")


def _wait_nodes(page: Any, predicate: str, what: str, timeout: int = 60_000) -> dict[str, Any]:
    """Wait until the DAG's nodes satisfy ``predicate`` (JS, of the NODES object)."""
    try:
        page.wait_for_function(f"() => {{ const d = ({NODES})(); return d && ({predicate}); }}",
                               timeout=timeout)
    except Exception as exc:  # playwright's TimeoutError: say what the page shows
        raise AssertionError(f"{what}: the DAG shows {page.evaluate(NODES)}") from exc
    return page.evaluate(NODES)


def test_a_2000_task_run_draws_as_labelled_groups(tmp_path: Path) -> None:
    import nbformat
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (SETUP, SHOW, RUN,
                                                        "print(dash)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "grouped.ipynb")
    BUILD.mkdir(parents=True, exist_ok=True)
    # the dashboard is drawn below the notebook's visible part: see jupyter_lab(windowing=)
    with jupyter_lab(root, Path(tempfile.mkdtemp(dir=tmp_path)), windowing="defer") as lab, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            open_notebook(page, f"{lab['base']}/lab/tree/grouped.ipynb?token={lab['token']}")
            # run the cells that build the workflow, show the dashboard and run the workflow
            page.locator(".jp-CodeCell", has_text="print(dash)").first.click()
            run_menu(page, "Run All Above Selected Cell", cell_ran("Dashboard(orch)"))
            dash = page.locator(".wfkit-dashboard")
            dash.wait_for(timeout=120_000)
            # JupyterLab draws the outputs in view: bring the dashboard there, as one scrolls
            dash.locator(".widget-hprogress").scroll_into_view_if_needed()
            dash.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=120_000)
            _show_dag(page)
            first = _wait_nodes(page, "d.n === 8", "the 2,000 tasks drawn as 8 groups")
            assert sorted(first["text"]) == sorted(LABELS), first
            page.locator(".jp-OutputArea-output", has_text="E2E-GROUPED-DONE").wait_for(
                timeout=240_000)
            done = page.locator(".jp-OutputArea-output", has_text="E2E-GROUPED-DONE")
            assert "E2E-GROUPED-DONE completed 2000 of 2000" in done.inner_text()
            after = _wait_nodes(page, "d.n === 8 && d.colours.every(c => c === 3)",
                                "every group completed")
            assert sorted(after["text"]) == sorted(LABELS), after
            progress = dash.locator(".widget-hprogress").inner_text()
            assert "2,000 / 2,000 tasks · 100%" in progress, progress
            shown = _visible_labels(page)
            assert all(shown.get(label) for label in LABELS), shown
            page.mouse.move(1, 1)  # no hover label over the picture
            dash.screenshot(path=str(BUILD / "dashboard-grouped.png"))

            text = page.locator(".jp-NotebookPanel").inner_text()
            assert "Traceback" not in text
            assert "Click to show javascript error" not in text
            assert page.locator("div.jupyter-widgets-error-widget").count() == 0
            assert not errors, errors
        finally:
            browser.close()
