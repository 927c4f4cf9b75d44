"""``wfkit demo`` / ``make demo``: run the showcase and write a standalone HTML report.

The Gapminder workflow of :mod:`wfkit.app.demo` runs first (its report is printed); then the
showcase notebook is executed with papermill (``year`` as its parameter) and exported with
nbconvert, so the report shows the notebook as a reader would see it, with static final
figures that need no kernel. Installed without the repository's notebooks (or without
papermill), the report is written from a run store of the same workflow instead.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["showcase", "execute_notebook", "export_html", "static_outputs", "SHOWCASE_NOTEBOOK"]

SHOWCASE_NOTEBOOK = "02_collective_agents.ipynb"


def _default_notebook() -> Path:
    return Path(__file__).resolve().parents[2] / "notebooks" / SHOWCASE_NOTEBOOK


def execute_notebook(
    notebook: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: dict[str, Any] | None = None,
    *,
    timeout: int = 600,
) -> Path:
    """Execute ``notebook`` with papermill (in its own folder) and save it to ``output``."""
    import papermill as pm

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        os.fspath(notebook),
        os.fspath(out),
        parameters=parameters or {},
        kernel_name="python3",
        progress_bar=False,
        cwd=os.fspath(Path(notebook).resolve().parent),
        execution_timeout=timeout,
    )
    return out


def export_html(notebook: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Export an executed notebook to one HTML file with nbconvert."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(os.fspath(notebook), as_version=4)
    static_outputs(nb)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out


_PLOTLY = "application/vnd.plotly.v1+json"
_WIDGET = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = (
    "<p style='color:#616e7c;font-style:italic'>[a live widget: interactive in a running "
    "notebook; the figures below show the final state]</p>"
)


def static_outputs(nb: Any) -> Any:
    """Make an executed notebook readable without a kernel or a network.

    Plotly figures saved as their JSON mimetype get an HTML rendering (Plotly's JavaScript is
    embedded once, in the first figure); live widgets, whose saved state is only their initial
    one and whose renderer would come from a CDN, are replaced by their static HTML (a
    :class:`wfkit.Dashboard` keeps a picture of its final state) or by a short note.
    """
    import plotly.io as pio

    first = True
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if _WIDGET in data:  # a widget's own static picture (the dashboard's), or a note
                out["data"] = {"text/html": data.get("text/html") or _WIDGET_NOTE}
            elif _PLOTLY in data and "text/html" not in data:
                fig = dict(data[_PLOTLY])
                data["text/html"] = pio.to_html(
                    fig, include_plotlyjs=first, full_html=False, validate=False,
                    config={"displaylogo": False},
                )
                del data[_PLOTLY]
                first = False
    return nb


def showcase(
    *,
    year: int = 2007,
    output: str | os.PathLike[str] | None = "build/report.html",
    notebook: str | os.PathLike[str] | None = None,
    as_json: bool = False,
) -> int:
    """What ``wfkit demo`` does; returns the exit code."""
    from wfkit.app.demo import run_demo
    from wfkit.app.jsonout import to_json
    from wfkit.errors import WfkitError
    from wfkit.runsync import run_sync

    with tempfile.TemporaryDirectory(prefix="wfkit-demo-") as tmp:
        store = Path(tmp) / "demo.db"  # read only by the report written without notebooks
        result = run_sync(run_demo(year, store=store if output is not None else None))
        log = sys.stderr if as_json else sys.stdout
        print(result["task_results"]["report"]["result"], file=log)
        print(file=log)
        print(
            f"{result['workflow_id']}: {result['status']}, {result['successful_tasks']}/"
            f"{result['total_tasks']} tasks by {', '.join(result['participants'])} in "
            f"{result['makespan']:.2f} s; validation: "
            f"{result['task_results']['validate']['result']}",
            file=log,
        )
        report = None
        if output is not None:
            nb = Path(notebook) if notebook is not None else _default_notebook()
            if notebook is not None and not nb.is_file():
                raise WfkitError(f"{nb}: no such notebook; pass the showcase .ipynb file")
            if nb.is_file() and _have("papermill", "nbconvert"):
                print(f"executing {nb.name} with papermill (year={year}) ...", file=log)
                executed = Path(output).with_suffix(".ipynb")
                execute_notebook(nb, executed, {"year": year})
                report = export_html(executed, output)
            else:
                from wfkit.app.report import write_report

                report = write_report(store, output, title=f"wfkit demo: Gapminder {year}")
            print(f"report: {report}", file=log)
    if as_json:
        data = to_json(result)
        data["report"] = None if report is None else str(report)
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0 if result["status"] == "completed" else 1


def _have(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)
