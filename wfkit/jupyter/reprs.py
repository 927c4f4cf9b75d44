"""Rich notebook reprs: a bare ``Workflow``, ``RunResult`` or ``orchestrator.agents`` in a cell.

A Workflow renders its DAG (Plotly's own mimetype, which JupyterLab, Notebook 7 and VS Code
draw without a network), with an HTML table of its tasks for viewers that cannot run Plotly
(nbconvert, GitHub) and its ``repr`` as plain text. Run results and the agents registry
render as HTML tables. Everything user-provided is HTML-escaped; long tables are cut with a
line that says how many rows are not shown.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "workflow_bundle", "run_result_html", "agents_html", "agents_text", "INLINE_DAG_TASKS",
    "where", "failure_html",
]

#: A workflow with more tasks than this renders as a table, not an inline DAG figure.
INLINE_DAG_TASKS = 2_000
_ROWS = 50
_PLOTLY_MIME = "application/vnd.plotly.v1+json"
_TABLE = "border-collapse:collapse;font-size:12px;margin-top:4px"
_CELL = "padding:2px 8px;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:top"


def _e(value: Any, limit: int = 200) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


def _seconds(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v < 1:
        return f"{v * 1000:.1f} ms"
    if v < 120:
        return f"{v:.2f} s"
    return f"{v / 60:.1f} min"


def _color(status: str) -> str:
    from wfkit.colors import status_color

    return status_color(status)


def _badge(status: str, n: int | None = None) -> str:
    fg = "#222" if status in ("pending", "retrying") else "#fff"
    label = f"{_e(status)}" + (f" <b>{n:,}</b>" if n is not None else "")
    return (
        f"<span style='background:{_color(status)};color:{fg};border-radius:9px;"
        f"padding:1px 8px;margin-right:4px;font-size:12px;white-space:nowrap'>{label}</span>"
    )


def _table(headers: Iterable[str], rows: list[list[str]], total: int, what: str) -> str:
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL}'>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    more = ""
    if total > len(rows):
        more = (
            f"<div style='font-size:12px;color:#666'>… and {total - len(rows):,} more "
            f"{what} not shown</div>"
        )
    return f"<table style='{_TABLE}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _filter(bundle: dict[str, Any], include: Any, exclude: Any) -> dict[str, Any]:
    if include:
        bundle = {k: v for k, v in bundle.items() if k in include}
    if exclude:
        bundle = {k: v for k, v in bundle.items() if k not in exclude}
    return bundle


# -- Workflow ------------------------------------------------------------------------------------


def workflow_html(wf: Any) -> str:
    """A workflow as an HTML summary and task table (the fallback of its DAG figure)."""
    from wfkit.graph import critical_path

    tasks = wf.tasks
    edges = sum(len(t.dependencies) for t in tasks)
    head = (
        f"<div><b>Workflow {_e(wf.workflow_id)}</b> · {len(tasks):,} task"
        f"{'s' if len(tasks) != 1 else ''} · {edges:,} dependenc"
        f"{'ies' if edges != 1 else 'y'}"
    )
    if tasks:
        path, length = critical_path(tasks)
        head += (
            f" · critical path {_seconds(length)} (estimated): "
            f"{_e(' → '.join(path), 300)}"
        )
    head += "</div>"
    rows = [
        [
            f"<code>{_e(t.task_id, 80)}</code>",
            _e(t.description, 120),
            _e(", ".join(sorted(t.capability_set)) or "any agent"),
            _e(", ".join(t.dependencies), 160),
            f"{t.priority:g}",
            _seconds(t.estimated_duration),
        ]
        for t in tasks[:_ROWS]
    ]
    table = _table(
        ["task", "description", "needs", "after", "priority", "estimate"],
        rows, len(tasks), "tasks",
    )
    return f"<div class='wfkit-workflow'>{head}{table}</div>"


def workflow_bundle(wf: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """The DAG figure (Plotly's mimetype and whatever the active renderer adds), an HTML
    table and the plain-text repr."""
    bundle: dict[str, Any] = {}
    if 0 < len(wf) <= INLINE_DAG_TASKS:
        import plotly.io as pio

        fig = wf.figure()
        if pio.renderers.default:
            bundle.update(fig._repr_mimebundle_(include, exclude) or {})
        if _PLOTLY_MIME not in bundle:
            from plotly.io._utils import validate_coerce_fig_to_dict

            bundle.update(pio.renderers._build_mime_bundle(
                validate_coerce_fig_to_dict(fig, True), "plotly_mimetype"
            ))
    bundle.setdefault("text/html", workflow_html(wf))
    bundle["text/plain"] = repr(wf)
    return _filter(bundle, include, exclude)


# -- where a task failed -----------------------------------------------------------------------


def _place(frame: Any) -> str:
    """``Cell In[3], line 5`` for a notebook cell (as IPython prints it), else ``path:line``
    (relative to the working folder when inside it)."""
    import os

    if frame.location.startswith("Cell In["):
        return frame.location
    try:
        rel = os.path.relpath(frame.filename)
    except ValueError:  # another drive
        rel = frame.filename
    return f"{frame.filename if rel.startswith('..') else rel}:{frame.lineno}"


def where(failure: Any) -> Any:
    """The user's innermost frame of a failure (an exception, a traceback's text, or a task
    result with ``exception`` / ``traceback``), as ``(place, function, code line)`` with the
    place written as the user knows it; None when the failure never reached user code."""
    from wfkit.tracebacks import user_frame

    if isinstance(failure, Mapping):
        failure = failure.get("exception") or failure.get("traceback")
    frame = user_frame(failure)
    if frame is None:
        return None
    return _place(frame), frame.name, frame.line


def where_text(failure: Any) -> str | None:
    """``Cell In[3], line 5 in clean: df["revenu"].sum()``, or None (see :func:`where`)."""
    found = where(failure)
    if found is None:
        return None
    place, name, line = found
    return f"{place} in {name}" + (f": {line}" if line else "")


_TRACEBACK_CHARS = 20_000


def failure_html(error: Any, failure: Any, traceback: str | None = None) -> str:
    """A failure as HTML: the error, the user's line under it, and the full traceback folded
    away in a ``<details>`` (no script: it opens in any viewer, trusted or not)."""
    out = f"<span style='color:{_color('failed')}'>{_e(error, 300)}</span>"
    found = where(failure)
    if found is not None:
        place, name, line = found
        out += (
            f"<div class='wfkit-where' style='font-size:11px'>at <code>{_e(place)}</code> in "
            f"<code>{_e(name, 80)}</code>"
            + (f": <code>{_e(line, 160)}</code>" if line else "")
            + "</div>"
        )
    if traceback:
        text = str(traceback)
        if len(text) > _TRACEBACK_CHARS:  # the end holds the failing frames: keep it
            text = "…" + text[-_TRACEBACK_CHARS:]
        out += (
            "<details class='wfkit-traceback'><summary style='font-size:11px;cursor:pointer'>"
            "full traceback</summary><pre style='font-size:11px;white-space:pre-wrap;"
            f"margin:2px 0'>{html.escape(text)}</pre></details>"
        )
    return out


# -- RunResult ------------------------------------------------------------------------------------

_ORDER = {"failed": 0, "cancelled": 1, "skipped": 2, "completed": 3}


def run_result_html(result: Mapping[str, Any]) -> str:
    """A run's summary line, status counts and task table (problems first; tasks completed
    from the result cache say "cached")."""
    task_results = result.get("task_results") or {}
    cached = sum(1 for r in task_results.values() if r.get("cached"))
    status = str(result.get("status", "?"))
    total = result.get("total_tasks", 0) or 0
    rate = result.get("success_rate")
    head = (
        f"<div><b>Run {_e(result.get('run_id'))}</b> of <b>{_e(result.get('workflow_id'))}</b>"
        f" · <span style='color:{_color(status)}'><b>{_e(status)}</b></span>"
        f" · {result.get('successful_tasks', 0):,}/{total:,} tasks completed"
        + (f" ({rate:.0%})" if isinstance(rate, int | float) else "")
        + f" · makespan {_seconds(result.get('makespan'))}"
        + (f" · {cached:,} from the cache, not run" if cached else "")
        + "</div>"
    )
    params = result.get("params") or {}
    if params:
        head += (
            "<div style='font-size:12px'>params "
            + ", ".join(f"<code>{_e(k, 80)}={_e(repr(v), 120)}</code>" for k, v in params.items())
            + "</div>"
        )
    counts = {
        "completed": (result.get("successful_tasks", 0) or 0) - cached,
        "cached": cached,
        "failed": result.get("failed_tasks", 0),
        "skipped": result.get("skipped_tasks", 0),
        "cancelled": result.get("cancelled_tasks", 0),
    }
    badges = "<div style='margin:4px 0'>" + "".join(
        _badge(s, int(n or 0)) for s, n in counts.items() if n
    ) + "</div>"
    ordered = sorted(
        enumerate(task_results.values()),
        key=lambda p: (_ORDER.get(p[1].get("status"), 1), p[0]),
    )
    rows = []
    for _, r in ordered[:_ROWS]:
        error = r.get("error")
        rows.append([
            f"<code>{_e(r.get('task_id'), 80)}</code>",
            _badge("cached" if r.get("cached") else str(r.get("status"))),
            _e(r.get("agent_id") or "–"),
            str(r.get("attempts", 0)),
            _seconds(r.get("execution_time")) if r.get("agent_id") else "–",
            (failure_html(error, r, r.get("traceback"))
             if error and r.get("status") == "failed" else _e(error, 300)),
        ])
    table = _table(
        ["task", "status", "agent", "attempts", "time", "error / reason"],
        rows, len(task_results), "tasks",
    )
    return f"<div class='wfkit-run-result'>{head}{badges}{table}</div>"


# -- the agents registry ---------------------------------------------------------------------------


def _agent_row(a: Any) -> list[Any]:
    m = a.performance_metrics or {}
    return [
        a.agent_id,
        a.name,
        ", ".join(sorted(a.capability_set)),
        a.capacity,
        a.current_load,
        "yes" if a.availability else "no",
        m.get("tasks_completed", 0),
        m.get("tasks_failed", 0),
        m.get("success_rate", 1.0),
        m.get("avg_duration", 0.0),
    ]


_AGENT_HEADERS = ["agent", "name", "capabilities", "capacity", "running", "available",
                  "completed", "failed", "success", "avg time"]


def agents_html(agents: Mapping[str, Any]) -> str:
    profiles = list(agents.values())
    rows = []
    for a in profiles[:_ROWS]:
        aid, name, caps, cap, load, avail, done, failed, rate, avg = _agent_row(a)
        rows.append([
            f"<code>{_e(aid, 80)}</code>", _e(name, 80), _e(caps), str(cap),
            f"{load}/{cap}", avail if a.availability else f"<b>{avail}</b>",
            f"{done:,}", f"{failed:,}", f"{rate:.0%}", _seconds(avg) if done else "–",
        ])
    head = f"<div><b>{len(profiles):,} agent{'s' if len(profiles) != 1 else ''}</b></div>"
    return (
        f"<div class='wfkit-agents'>{head}"
        f"{_table(_AGENT_HEADERS, rows, len(profiles), 'agents')}</div>"
    )


def agents_text(agents: Mapping[str, Any]) -> str:
    """A fixed-width table of the agents (the plain-text repr in IPython and logs)."""
    profiles = list(agents.values())
    if not profiles:
        return "no agents registered"
    rows = [[str(c) for c in _AGENT_HEADERS]]
    for a in profiles[:_ROWS]:
        aid, name, caps, cap, load, avail, done, failed, rate, avg = _agent_row(a)
        rows.append([aid, name, caps, str(cap), f"{load}/{cap}", avail, str(done), str(failed),
                     f"{rate:.0%}", _seconds(avg) if done else "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if len(profiles) > _ROWS:
        lines.append(f"... and {len(profiles) - _ROWS:,} more agents")
    return "\n".join(lines)
