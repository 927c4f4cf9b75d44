"""A LiveFigure on a page that never saw Plotly's module: it asks the kernel for it.

A figure made headless saves a small loader in place of Plotly's JavaScript; a browser that
shows such a figure later (a reloaded page, Voila after the run) has no Plotly on the page.
The test makes a ``LiveFigure`` with its loader in JupyterLab, saves the notebook, reloads the
page (the kernel keeps running) and checks that the figure draws again, from the module the
kernel sends once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lab_support import BROWSER_MARKS, BUILD, CHROMIUM, FLAGS, jupyter_lab

pytestmark = BROWSER_MARKS

CELL = """\
import plotly.graph_objects as go
from wfkit.jupyter.livefigure import LiveFigure
fig = LiveFigure(go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="late")), loader=True)
fig.update_layout(title="asked of the kernel")
fig.data[0].y = [1, 2, 3]  # an update after creation must show too
fig
"""

DRAWN = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    return gd && gd.data && gd.data.length === 1 && gd.layout.title
        && gd.layout.title.text === 'asked of the kernel'
        && Array.from(gd.data[0].y).join() === '1,2,3';
}"""


def test_a_page_without_plotly_gets_it_from_the_kernel(tmp_path: Path) -> None:
    import nbformat
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "late.ipynb")
    BUILD.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(root, Path(tempfile.mkdtemp(dir=tmp_path))) as lab, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{lab['base']}/lab/tree/late.ipynb?token={lab['token']}",
                      wait_until="domcontentloaded", timeout=120_000)
            page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(
                timeout=120_000)
            for _ in range(4):  # a click while the kernel still starts runs nothing
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                try:
                    page.wait_for_function(DRAWN, timeout=60_000)
                    break
                except Exception:  # playwright's TimeoutError: click again
                    continue
            else:
                raise AssertionError("the figure was never drawn")
            page.keyboard.press("Control+s")
            page.wait_for_timeout(1500)

            page.reload(wait_until="domcontentloaded")
            assert page.evaluate("() => !Object.getOwnPropertySymbols(globalThis).some("
                                 "s => String(s).includes('wfkit.plotly-widget'))")
            page.wait_for_function(DRAWN, timeout=120_000)
            assert page.locator("div.jupyter-widgets-error-widget").count() == 0
            page.locator(".js-plotly-plot").first.screenshot(
                path=str(BUILD / "live-figure-asked.png"))
        finally:
            browser.close()
