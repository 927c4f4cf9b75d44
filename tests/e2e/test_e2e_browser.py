"""What a person sees: JupyterLab in a real Chromium, driven by Playwright.

``make e2e`` runs this (it installs Debian's ``chromium`` first when it is absent). The test
starts JupyterLab from this Python environment on 127.0.0.1 with a token and throw-away
``JUPYTER_*`` folders, opens ``dashboard.ipynb`` (a workflow, its DAG, a live ``Dashboard``,
a run with top-level ``await``) and, like a person, runs the cells up to the dashboard, waits
until it is drawn, then runs the rest. It checks that the DAG figure and the progress bar
render, that they change while the run goes on (the bar part-way, nodes drawn running), that
the bar reaches 100 % and every node turns "completed", that the Workflow, RunResult and
agents reprs render, and that no widget shows an error and no cell a traceback. Screenshots
go to ``build/e2e/`` (``dashboard-running.png`` is the README's picture). The server is
stopped by its PID whatever happens.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
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

HERE = Path(__file__).resolve().parent
NOTEBOOK = "dashboard.ipynb"

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A JupyterLab server of our own; yields its URL and token, stops it by PID."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    shutil.copy(HERE / NOTEBOOK, root / NOTEBOOK)
    with jupyter_lab(root, tmp) as server:
        yield server


def test_dashboard_in_jupyterlab(lab: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    BUILD.mkdir(parents=True, exist_ok=True)
    url = f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            open_notebook(page, url)
            # Like a person: run the cells that build the workflow and show the dashboard,
            # wait until it is drawn, then run the workflow and watch it.
            page.locator(".jp-CodeCell", has_text="execute_workflow").first.click()
            run_menu(page, "Run All Above Selected Cell", cell_ran("Dashboard(orch)"))

            # the dashboard, its DAG figure and its progress bar render
            dash = page.locator(".wfkit-dashboard")
            dash.wait_for(timeout=60_000)

            # watch it live: the bar's widths and the DAG's node colours as they change
            page.evaluate(
                """() => {
                    window.wfkitSeen = {widths: new Set(), colours: new Set()};
                    const look = () => {
                        const bar = document.querySelector(
                            '.wfkit-dashboard .widget-hprogress .progress-bar');
                        if (bar) window.wfkitSeen.widths.add(bar.style.width);
                        const gd = document.querySelector('.wfkit-dashboard .js-plotly-plot');
                        const nodes = gd && gd.data && gd.data.find(t => t.name === 'tasks');
                        if (nodes) Array.from(nodes.marker.color || [])
                            .forEach(c => window.wfkitSeen.colours.add(c));
                    };
                    window.wfkitWatch = setInterval(look, 50);
                    window.wfkitChanged = performance.now();
                    new MutationObserver(() => { window.wfkitChanged = performance.now(); })
                        .observe(document.querySelector('.wfkit-dashboard'),
                                 {subtree: true, childList: true, attributes: true,
                                  characterData: true});
                }"""
            )
            dash.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
            dash.locator(".widget-hprogress").wait_for(timeout=60_000)
            page.locator(".jp-CodeCell", has_text="execute_workflow").first.click()
            run_menu(page, "Run Selected Cell and All Below", cell_ran("execute_workflow"))

            try:  # for the README: a picture of a run under way
                page.wait_for_function(
                    """() => {
                        const bar = document.querySelector(
                            '.wfkit-dashboard .widget-hprogress .progress-bar');
                        return bar && parseFloat(bar.style.width) >= 45;
                    }""",
                    timeout=30_000,
                )
                # every part showing the same moment: the running badge, the blue nodes and
                # the load bars agree, and nothing has changed for a little while
                page.wait_for_function(
                    """() => {
                        const dash = document.querySelector('.wfkit-dashboard');
                        const badge = dash.querySelector('.wfkit-running b');
                        const plots = dash.querySelectorAll('.js-plotly-plot');
                        const nodes = plots[0].data.find(t => t.name === 'tasks');
                        const load = plots[1].data.find(t => t.name === 'running');
                        const running = Number(badge.textContent);
                        const blue = Array.from(nodes.marker.color).filter(c => c === 1).length;
                        const busy = Array.from(load.y || []).reduce((a, b) => a + b, 0);
                        const drawn = [...dash.querySelectorAll('[data-redraw]')]
                            .map(e => e.dataset.redraw);
                        return running > 0 && running === blue && running === busy
                            && drawn.length === 2 && drawn[0] === drawn[1]
                            && performance.now() - window.wfkitChanged > 30;
                    }""",
                    timeout=10_000, polling=5,
                )
                dash.screenshot(path=str(BUILD / "dashboard-running.png"))
            except Exception:  # a picture only: the checks below decide
                pass

            # the run ends: the last cell prints, the bar is full, every node is completed
            page.locator(".jp-OutputArea-output", has_text="E2E-DONE").wait_for(timeout=120_000)
            page.wait_for_function(
                """() => {
                    const bar = document.querySelector(
                        '.wfkit-dashboard .widget-hprogress .progress-bar');
                    return bar && bar.style.width === '100%';
                }""",
                timeout=30_000,
            )
            progress = dash.locator(".widget-hprogress").inner_text()
            assert "23 / 23 tasks · 100%" in progress, progress
            colours = page.evaluate(
                """() => {
                    const gd = document.querySelector('.wfkit-dashboard .js-plotly-plot');
                    const nodes = gd.data.find(t => t.name === 'tasks');
                    return Array.from(nodes.marker.color);
                }"""
            )
            assert len(colours) == 23 and set(colours) == {3}, colours  # 3: "completed"
            seen = page.evaluate(
                """() => { clearInterval(window.wfkitWatch);
                           return {widths: [...window.wfkitSeen.widths],
                                   colours: [...window.wfkitSeen.colours]}; }"""
            )
            partial = [w for w in seen["widths"] if w and 0 < float(w.rstrip("%")) < 100]
            assert partial, f"the bar never showed a run under way: {seen}"
            assert 1 in seen["colours"], f"no node was ever drawn running: {seen}"
            header = dash.locator(".widget-html").first.inner_text()
            assert "etl_report" in header and "completed" in header, header

            # the Workflow and RunResult reprs rendered too
            page.locator(".wfkit-run-result").first.wait_for(timeout=10_000)
            page.locator(".wfkit-agents").first.wait_for(timeout=10_000)
            assert page.locator(".js-plotly-plot").count() >= 3  # wf's DAG, dash's DAG and load

            # nothing broken
            text = page.locator(".jp-NotebookPanel").inner_text()
            assert "Traceback" not in text
            assert "Click to show javascript error" not in text
            assert page.locator("div.jupyter-widgets-error-widget").count() == 0
            assert not errors, errors

            dash.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            dash.screenshot(path=str(BUILD / "dashboard.png"))
            page.screenshot(path=str(BUILD / "notebook.png"), full_page=True)
        finally:
            browser.close()
