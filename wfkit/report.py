"""A standalone HTML report of the runs in a :class:`wfkit.RunStore` (``wfkit report``).

One file, no kernel and no network needed to read it: Plotly's JavaScript is embedded once and
every figure is drawn from data written into the page.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

from wfkit.errors import StoreError

__all__ = ["write_report", "report_html"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #1f2933; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .muted { color: #616e7c; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #d9e2ec; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f0f4f8; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
.card { background: #f0f4f8; border-radius: 6px; padding: 0.6rem 1rem; min-width: 8rem; }
.card b { display: block; font-size: 1.4rem; }
"""


def _table(frame: Any, columns: list[str], limit: int = 50) -> str:
    cols = [c for c in columns if c in frame.columns]
    shown = frame[cols].tail(limit)
    return shown.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.3f}")


def report_html(store: Any, *, title: str | None = None, runs: int = 3) -> str:
    """The report as one HTML string: summary cards and figure across runs, then the Gantt chart
    and agent load of the latest ``runs`` runs, the runs table and failed attempts."""
    from wfkit.plots import agent_load_figure, gantt_figure, summary_figure

    wf_frame = store.workflow_frame()
    path = os.fspath(getattr(store, "path", ""))
    title = title or f"wfkit runs: {Path(path).name or 'store'}"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='muted'>{len(wf_frame)} run(s) from {html.escape(path)}, reported "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}</p>",
    ]
    if wf_frame.empty:
        parts.append("<p>No runs are stored yet: run a workflow with this store first "
                     "(<code>wfkit run SPEC.yaml --store FILE</code>).</p></body></html>")
        return "".join(parts)

    figures: list[str] = []

    def add(fig: Any) -> None:
        figures.append(fig.to_html(full_html=False, include_plotlyjs=not figures,
                                   config={"displaylogo": False}))
        parts.append(figures[-1])

    completed = int((wf_frame["status"] == "completed").sum())
    tasks_total = int(wf_frame["total_tasks"].sum())
    cards = [
        ("runs", len(wf_frame)),
        ("workflows", wf_frame["workflow_id"].nunique()),
        ("completed runs", f"{completed}/{len(wf_frame)}"),
        ("tasks run", tasks_total),
        ("mean duration", f"{wf_frame['duration'].mean():.3g} s"),
    ]
    parts.append("<div class='cards'>" + "".join(
        f"<div class='card'><b>{html.escape(str(v))}</b>{html.escape(k)}</div>" for k, v in cards
    ) + "</div>")
    parts.append("<h2>Across runs</h2>")
    add(summary_figure(wf_frame))

    latest = wf_frame.sort_values("started_at").tail(max(runs, 0))
    for row in reversed(list(latest.itertuples(index=False))):
        task_frame = store.task_frame(run_id=row.run_id)
        parts.append(
            f"<h2>Run {html.escape(str(row.run_id))} of {html.escape(str(row.workflow_id))}: "
            f"{html.escape(str(row.status))}</h2><p class='muted'>{row.successful_tasks}/"
            f"{row.total_tasks} tasks completed, {row.failed_tasks} failed, {row.skipped_tasks}"
            f" skipped; {row.duration if row.duration == row.duration else 0:.2f} s</p>"
        )
        add(gantt_figure(task_frame, title=f"Gantt chart of run {row.run_id}"))
        add(agent_load_figure(store.agent_load_frame(run_id=row.run_id),
                              title=f"Agent load in run {row.run_id}"))

    parts.append("<h2>Runs</h2>")
    parts.append(_table(wf_frame.iloc[::-1], [
        "run_id", "workflow_id", "status", "started_at", "duration", "total_tasks",
        "successful_tasks", "failed_tasks", "skipped_tasks", "participants"], limit=200))
    tasks = store.task_frame()
    failed = tasks[tasks["status"] == "failed"]
    parts.append(f"<h2>Failed attempts ({len(failed)})</h2>")
    if failed.empty:
        parts.append("<p>None.</p>")
    else:
        parts.append(_table(failed.iloc[::-1], [
            "run_id", "workflow_id", "task_id", "agent_id", "attempt", "finished_at",
            "error"], limit=100))
    parts.append("</body></html>")
    return "".join(parts)


def write_report(
    store_path: str | os.PathLike[str], output: str | os.PathLike[str], **kwargs: Any
) -> Path:
    """Write the HTML report of the store at ``store_path`` to ``output``; returns its path.

    The store must exist (a missing file is an error, not a new empty store)."""
    from wfkit.metrics.store import RunStore

    source = Path(store_path)
    if not source.is_file():
        raise StoreError(f"{source}: no such run store file; pass the file given to "
                         f"--store / RunStore(...)", path=source)
    store = RunStore(source)
    try:
        text = report_html(store, **kwargs)
    finally:
        store.close()
    out = Path(output)
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
