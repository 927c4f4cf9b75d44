"""`wfkit demo` / `make demo`: the executed showcase notebook as a standalone HTML report whose
final figures render in a browser with no kernel and no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import wfkit.app.showcase as showcase

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # papermill


def rendered_plots(html: Path, screenshot: Path) -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_context(offline=True).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            page.screenshot(path=str(screenshot), full_page=True)
            assert page.locator("div.jupyter-widgets-error-widget").count() == 0
            assert not [e for e in errors if "Plotly" in e], errors
            return page.locator(".js-plotly-plot").count()
        finally:
            browser.close()


def test_demo_writes_a_report_with_static_final_figures(tmp_path):
    out = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "wfkit", "demo", "--year", "1952", "-o", str(out),
                          "--json"], capture_output=True, text=True, timeout=500, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(res.stdout)
    assert data["report"] == str(out) and data["status"] == "completed"
    assert "executing 02_collective_agents.ipynb with papermill (year=1952)" in res.stderr
    html = out.read_text()
    assert "Gapminder 1952" in html and "Oceania: 69.17 years" in html  # the parameter took
    # no cell raised (a failed task's own traceback is folded in its row, on purpose)
    assert "Traceback" not in re.sub(r"<details class=.wfkit-traceback.>.*?</details>", "", html,
                                     flags=re.S)
    assert "wfkit-traceback" in html
    assert "wfkit-dashboard-snapshot" in html  # the dashboard's final state, not a dead widget
    assert "application/vnd.jupyter.widget-view+json" not in html
    assert html.count("plotly.js v") == 1  # Plotly's JavaScript embedded once
    assert html.count('class="plotly-graph-div"') >= 3  # final DAG, Gantt, agent load
    assert (tmp_path / "report.ipynb").is_file()  # the executed notebook sits next to it
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium): browser check skipped")
    shot = Path(__file__).resolve().parents[2] / "build" / "demo-report.png"
    shot.parent.mkdir(exist_ok=True)
    assert rendered_plots(out, shot) >= 3


def test_without_the_notebooks_the_report_comes_from_a_run_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(showcase, "_default_notebook", lambda: tmp_path / "absent.ipynb")
    assert showcase.showcase(year=2002, output=tmp_path / "r.html") == 0
    html = (tmp_path / "r.html").read_text()
    assert "wfkit demo: Gapminder 2002" in html and "gapminder_report" in html
    assert html.count('class="plotly-graph-div"') == 3
    assert "gapminder_report: completed, 8/8 tasks" in capsys.readouterr().out


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "wfkit", "demo", "--notebook",
                          str(tmp_path / "nope.ipynb"), "-o", str(tmp_path / "r.html")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "no such notebook" in res.stderr
    assert "Traceback" not in res.stderr
