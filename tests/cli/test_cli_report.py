"""`wfkit report`: a standalone HTML report from a real run store, checked in a browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_support import wfkit, write

from wfkit.app.cli import main

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def store_with_runs(spec_dir):
    write(spec_dir, """\
        workflow: w
        agents: {a: {capabilities: [x], capacity: 2}}
        tasks:
          ok: {requires: [x], action: "spec_tasks:load"}
          bad: {requires: [x], action: "spec_tasks:boom"}
          later: {requires: [x], after: [bad], action: "spec_tasks:load"}
        """, "mixed.yaml")
    assert main(["run", str(spec_dir / "spec.yaml"), "--store", str(spec_dir / "runs.db"),
                 "--no-progress"]) == 0
    assert main(["run", str(spec_dir / "mixed.yaml"), "--store", str(spec_dir / "runs.db"),
                 "--no-progress"]) == 1
    return spec_dir / "runs.db"


def plotly_plots_rendered(html: Path, screenshot: Path) -> int:
    """Open the file offline in headless Chromium; count drawn Plotly figures."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_context(offline=True, viewport={"width": 1200, "height": 900}
                                       ).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            page.screenshot(path=str(screenshot), full_page=True)
            assert not errors, errors
            return page.locator(".js-plotly-plot").count()
        finally:
            browser.close()


def test_report_of_stored_runs(store_with_runs, tmp_path, capsys):
    out = tmp_path / "sub" / "report.html"
    assert main(["report", str(store_with_runs), "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["report"] == str(out)
    text = out.read_text()
    assert text.count("plotly.js v") == 1  # Plotly's JavaScript embedded once, no CDN
    assert "<script src=\"http" not in text and "<script src=http" not in text
    assert "sales_report" in text and "Run " in text
    assert "Failed attempts (1)" in text and "kaput" in text
    assert text.count('class="plotly-graph-div"') == 5  # summary + 2 runs x (gantt, load)


@pytest.mark.slow  # Chromium
def test_the_report_draws_every_figure_offline_in_a_browser(store_with_runs, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium): browser check skipped")
    out = tmp_path / "report.html"
    assert main(["report", str(store_with_runs), "-o", str(out)]) == 0
    assert plotly_plots_rendered(out, tmp_path / "report.png") == 5


def test_report_command_in_a_child_process(store_with_runs, tmp_path):
    res = wfkit("report", str(store_with_runs), "-o", str(tmp_path / "r.html"), "--runs", "1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"wrote {tmp_path / 'r.html'}"
    assert (tmp_path / "r.html").read_text().count('class="plotly-graph-div"') == 3


def test_report_errors(tmp_path):
    res = wfkit("report", str(tmp_path / "missing.db"), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 2 and "no such run store file" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "r.html").exists()
    other = tmp_path / "notes.db"
    other.write_bytes(b"these are not the runs you are looking for" * 10)
    before = other.read_bytes()
    res = wfkit("report", str(other), "-o", str(tmp_path / "r.html"))
    assert res.returncode == 2 and str(other) in res.stderr and "Traceback" not in res.stderr
    assert other.read_bytes() == before


def test_report_of_an_empty_store(tmp_path):
    from wfkit import RunStore

    RunStore(tmp_path / "empty.db").close()
    assert main(["report", str(tmp_path / "empty.db"), "-o", str(tmp_path / "r.html")]) == 0
    assert "No runs are stored yet" in (tmp_path / "r.html").read_text()


def test_console_script_is_installed():
    exe = shutil.which("wfkit") or str(Path(__import__("sys").executable).parent / "wfkit")
    import subprocess

    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("wfkit ")
