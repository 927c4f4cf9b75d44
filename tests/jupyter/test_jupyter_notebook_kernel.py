"""The browser-test notebook, headless in a real IPython kernel (papermill): top-level await
runs the workflow, the dashboard ends complete, and nothing raises. ``make e2e`` opens the
same notebook in JupyterLab and Chromium."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow  # a real Jupyter kernel

NOTEBOOK = Path(__file__).resolve().parents[1] / "e2e" / "dashboard.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"


@pytest.mark.timeout(300)
def test_the_dashboard_notebook_runs_in_a_kernel(tmp_path: Path, monkeypatch):
    import papermill

    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "E2E-DONE 23 of 23" in text and "'completed': 23" in text
    data = [o.get("data", {}) for o in outputs]
    assert any(PLOTLY in d for d in data)  # the bare `wf` drew its DAG
    # headless, the dashboard's output ends as a picture of its final state (no widget view
    # that a reader without the kernel could not draw)
    dash = [d for d in data if "wfkit Dashboard" in d.get("text/plain", "")]
    assert len(dash) == 1 and WIDGET not in dash[0]
    assert "wfkit-dashboard-snapshot" in dash[0]["text/html"]
    assert "completed <b>23</b>" in dash[0]["text/html"]
    assert any("wfkit-run-result" in d.get("text/html", "") for d in data)
    assert any("wfkit-agents" in d.get("text/html", "") for d in data)
