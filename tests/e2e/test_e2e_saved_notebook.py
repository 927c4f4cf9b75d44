"""A notebook executed headless and saved shows what happened, without a kernel.

The showcase notebook (a live ``Dashboard``, a retried task, a failed one and a skipped
branch) is executed with papermill, then read as a person would: exported by nbconvert to
HTML and opened offline in Chromium, and opened in JupyterLab without running a cell. Both
must show the dashboard's final state: the counts, a red bar, the DAG picture (loaded), the
agent load, with no broken widget. ``make e2e`` runs this; screenshots go to ``build/e2e/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lab_support import BROWSER_MARKS, BUILD, CHROMIUM, FLAGS, REPO, jupyter_lab

SHOWCASE = REPO / "notebooks" / "02_collective_agents.ipynb"

pytestmark = BROWSER_MARKS

# what the dashboard picture must say (the showcase's default parameters: the forecaster is
# offline, so its task fails and the task after it is skipped)
COUNTS = {"completed": 9, "failed": 1, "skipped": 1}
RED = "rgb(214, 39, 40)"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import papermill

    tmp = tmp_path_factory.mktemp("saved")
    env = {name: str(tmp / name.lower()) for name in
           ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    root = tmp / "root"
    root.mkdir()
    out = root / "showcase.ipynb"
    try:
        papermill.execute_notebook(str(SHOWCASE), str(out), kernel_name="python3",
                                   progress_bar=False, cwd=str(root))
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    html = tmp / "showcase.html"
    subprocess.run([str(Path(sys.executable).with_name("jupyter")), "nbconvert", "--to", "html",
                    str(out), "--output", str(html)], check=True, capture_output=True,
                   env={**os.environ, **env})
    return {"root": root, "notebook": out, "html": html, "tmp": tmp}


def _check_snapshot(page: Any) -> None:
    """The dashboard's picture on ``page``: counts, a full red bar, a loaded DAG, the load."""
    snap = page.locator(".wfkit-dashboard-snapshot").first
    snap.wait_for(timeout=60_000)
    text = snap.inner_text()
    for status, n in COUNTS.items():
        assert f"{status} {n}" in text, text
    assert "gapminder_report" in text and "11 / 11 tasks · 100%" in text, text
    bar = snap.locator(".wfkit-snapshot-bar")
    style = bar.evaluate("e => [getComputedStyle(e).backgroundColor, e.style.width]")
    assert style == [RED, "100%"], style  # the run failed: a red bar
    img = snap.locator("img.wfkit-snapshot-dag")
    page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=img.element_handle(),
                           timeout=10_000)
    assert "analyst-1" in snap.locator(".wfkit-snapshot-load").inner_text()
    assert "Latest events" in text and "run failed" in text


def test_nbconvert_html_shows_the_final_state_offline(executed: dict[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    BUILD.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_context(offline=True).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(executed["html"].resolve().as_uri())
            _check_snapshot(page)
            assert "Traceback" not in page.locator("body").inner_text()
            page.screenshot(path=str(BUILD / "saved-nbconvert.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


def test_jupyterlab_shows_the_final_state_without_running(executed: dict[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    BUILD.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(executed["root"], executed["tmp"]) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            url = f"{lab['base']}/lab/tree/showcase.ipynb?token={lab['token']}"
            page.goto(url, wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=120_000)
            _check_snapshot(page)
            # the static figures at the end (Plotly's own mimetype, drawn by JupyterLab)
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
            text = page.locator(".jp-NotebookPanel").inner_text()
            assert "Error displaying widget" not in text
            assert "Click to show javascript error" not in text
            assert page.locator("div.jupyter-widgets-error-widget").count() == 0
            page.locator(".wfkit-dashboard-snapshot").first.screenshot(
                path=str(BUILD / "saved-jupyterlab.png"))
        finally:
            browser.close()


def test_the_saved_notebook_says_what_ran(executed: dict[str, Path]) -> None:
    import nbformat

    nb = nbformat.read(executed["notebook"], as_version=4)
    summary = next(c for c in nb.cells if "summary" in c.metadata.get("tags", []))
    data = json.loads(summary.outputs[-1]["text"].strip().splitlines()[-1])
    statuses = list(data["statuses"].values())
    assert {s: statuses.count(s) for s in COUNTS} == COUNTS
