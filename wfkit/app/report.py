"""A standalone HTML report of the runs in a :class:`wfkit.RunStore` (``wfkit report``).

One file, no kernel and no network needed to read it: Plotly's JavaScript is embedded once and
every figure is drawn from data written into the page.
"""

from __future__ import annotations

import html
import os
import stat
import time
from pathlib import Path
from typing import Any

from wfkit.errors import ReportError, StoreError

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


_SIDECARS = ("-wal", "-shm", "-journal")  # SQLite's files beside a store


def _is_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1024)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith((b"<!doctype html", b"<html"))


def _output_target(source: Path, output: Path) -> Path:
    """The file the report goes to (a symlink is followed, so the link stays). Refuses a
    folder, the store itself (by name, link or hard link) and any existing file that is not
    an HTML page, before anything is read or written."""

    def refuse(why: str) -> ReportError:
        return ReportError(f"{output}: {why}; nothing was written", path=output)

    try:
        if output.is_dir():
            raise refuse(f"is a folder; give a file name such as {output / 'report.html'}")
        target = output.resolve()
        store = source.resolve()
        if target == store or (target.exists() and os.path.samefile(target, store)) or (
            target.parent == store.parent and target.name in {store.name + s for s in _SIDECARS}
        ):
            raise refuse(f"is the run store being reported on ({source}), not a place for the "
                         f"report; write it to another file such as report.html")
        if target.is_file() and target.stat().st_size > 0 and not _is_html(target):
            raise refuse("exists and is not an HTML report, so it is not overwritten; remove "
                         "it first or choose another file name")
    except OSError as exc:
        raise refuse(f"cannot be used as the report file ({exc.strerror or exc})") from None
    return target


def _write_atomically(target: Path, text: str, shown: Path) -> None:
    """Write ``text`` to ``target`` through a temporary file in the same folder and a rename,
    so an interrupted write leaves the old file whole. Devices and pipes (``/dev/stdout``)
    are written directly."""
    tmp: Path | None = None
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                raise ReportError(f"{shown}: cannot write the report there ({folder} is a file, "
                                  f"not a folder); choose another -o path", path=shown)
            break
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not target.is_file():
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise ReportError(
            f"{shown}: cannot write the report there ({exc.strerror or exc}); choose another "
            f"-o path", path=shown,
        ) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_report(
    store_path: str | os.PathLike[str], output: str | os.PathLike[str], **kwargs: Any
) -> Path:
    """Write the HTML report of the store at ``store_path`` to ``output``; returns its path.

    The store must exist (a missing file is an error, not a new empty store). The output must
    not be the store, a folder, or an existing file other than an HTML page: such a path is a
    :class:`~wfkit.ReportError` and nothing is written."""
    from wfkit.metrics.store import RunStore

    source = Path(store_path)
    if not source.is_file():
        raise StoreError(f"{source}: no such run store file; pass the file given to "
                         f"--store / RunStore(...)", path=source)
    out = Path(output)
    target = _output_target(source, out)
    store = RunStore(source)
    try:
        text = report_html(store, **kwargs)
    finally:
        store.close()
    _write_atomically(target, text, out)
    return out
