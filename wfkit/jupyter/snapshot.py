"""Static pictures of what a live view shows, for notebooks read without a kernel.

A saved notebook opened without its kernel (JupyterLab on an executed papermill notebook,
nbconvert's HTML, GitHub) cannot run widgets; what it can show is HTML. These helpers draw the
dashboard's final state as plain HTML with the DAG as an SVG picture (an ``<img>`` with a
``data:`` URI, which JupyterLab keeps when it sanitises an untrusted output, unlike inline SVG
or scripts). The SVG is drawn from the DAG figure's own node positions and edge lines, so it is
the same drawing, coloured by outcome, at a few bytes per node and with no JavaScript.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dag_svg", "svg_img", "progress_html", "load_html", "SNAPSHOT_DAG_TASKS"]

#: Above this many tasks the snapshot leaves the DAG picture out (it would weigh more than the
#: rest of the notebook); counts, progress and load are still shown.
SNAPSHOT_DAG_TASKS = 2_000


def _points(xs: Sequence[Any], ys: Sequence[Any]) -> list[tuple[float, float] | None]:
    out: list[tuple[float, float] | None] = []
    for x, y in zip(xs, ys, strict=True):
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)) or (
                isinstance(y, float) and math.isnan(y)):
            out.append(None)
        else:
            out.append((float(x), float(y)))
    return out


def dag_svg(figure: Any, colors: Sequence[str], *, node_trace: int = 2, width: int = 900,
            title: str | None = None) -> str:
    """The DAG of ``figure`` (a :func:`wfkit.plots.build_dag_figure` figure) as SVG text, node
    ``i`` filled with ``colors[i]``: dependency lines, the critical path drawn thick, the
    nodes ringed thick on the critical path, and task ids up to 40 tasks."""
    nodes = figure.data[node_trace]
    pts = _points(list(nodes.x), list(nodes.y))
    lines = [_points(list(t.x), list(t.y)) for t in figure.data[:node_trace]]
    every = [p for p in pts if p] + [p for ln in lines for p in ln if p]
    if not every:
        return ""
    x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
    y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
    ids = list(nodes.customdata) if nodes.customdata is not None else [""] * len(pts)
    labels = len(pts) <= 40
    r = max(3.0, min(9.0, 16.0 / max(len(pts), 1) ** 0.25))
    pad_x, pad_top, pad_bottom = 40.0, 24.0 + (14 if labels else 0) + (20 if title else 0), 14.0
    depth = max(x1 - x0, 1e-9)
    rows = max(y1 - y0, 1e-9)
    height = int(min(900, max(160, 60 + 34 * (rows + 1)))) if len(pts) > 1 else 160
    sx = (width - 2 * pad_x) / depth if x1 > x0 else 0.0
    sy = (height - pad_top - pad_bottom) / rows if y1 > y0 else 0.0

    def at(p: tuple[float, float]) -> tuple[float, float]:
        x = pad_x + (p[0] - x0) * sx if sx else width / 2
        y = pad_top + (y1 - p[1]) * sy if sy else (height + pad_top - pad_bottom) / 2
        return round(x, 1), round(y, 1)

    def path(points: list[tuple[float, float] | None]) -> str:
        d, pen = [], False
        for p in points:
            if p is None:
                pen = False
                continue
            x, y = at(p)
            d.append(f"{'L' if pen else 'M'}{x:g} {y:g}")
            pen = True
        return "".join(d)

    widths = nodes.marker.line.width
    if widths is None or isinstance(widths, int | float):
        thick = [float(widths or 0.6)] * len(pts)
    else:
        thick = [float(w) for w in widths]
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
    ]
    if title:
        out.append(f"<text x='8' y='18' font-size='14' fill='#2a3f5f'>{html.escape(title)}</text>")
    styles = ("stroke='#6e6e6e' stroke-opacity='0.45' stroke-width='1'",
              "stroke='#222' stroke-width='3.5'")
    for points, style in zip(lines, styles, strict=False):
        d = path(points)
        if d:
            out.append(f"<path d='{d}' fill='none' {style}/>")
    by_colour: dict[tuple[str, bool], list[str]] = {}
    for i, p in enumerate(pts):
        if p is None:
            continue
        x, y = at(p)
        ring = i < len(thick) and thick[i] > 1
        by_colour.setdefault((colors[i], ring), []).append(
            f"<circle cx='{x:g}' cy='{y:g}' r='{r:g}'/>")
    for (colour, ring), circles in by_colour.items():
        stroke = "2.5" if ring else "0.6"
        out.append(f"<g fill='{html.escape(colour)}' stroke='#222' stroke-width='{stroke}'>"
                   + "".join(circles) + "</g>")
    if labels:
        out.append("<g font-size='10' fill='#2a3f5f' text-anchor='middle'>")
        for p, tid in zip(pts, ids, strict=True):
            if p is not None:
                x, y = at(p)
                out.append(f"<text x='{x:g}' y='{y - r - 3:g}'>{html.escape(str(tid))}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def svg_img(svg: str, alt: str) -> str:
    """``svg`` as an ``<img>`` with a ``data:`` URI (kept by notebook sanitisers)."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f"<img class='wfkit-snapshot-dag' alt='{html.escape(alt)}' "
            f"src='data:image/svg+xml;base64,{data}' style='max-width:100%;height:auto'/>")


def progress_html(done: int, total: int, color: str) -> str:
    """A progress bar as two ``div``s (what ipywidgets draws, without ipywidgets)."""
    pct = 100.0 * done / total if total else 100.0
    return (
        "<div class='wfkit-snapshot-progress' style='display:flex;align-items:center;"
        "gap:8px;margin:4px 0;font-size:13px'>"
        f"<span style='white-space:nowrap'>{done:,} / {total:,} tasks · {pct:.0f}%</span>"
        "<div style='flex:1 1 auto;background-color:#eee;height:16px'>"
        f"<div class='wfkit-snapshot-bar' style='width:{pct:.1f}%;height:16px;"
        f"background-color:{html.escape(color)}'></div></div></div>"
    )


def load_html(rows: Sequence[tuple[str, int, int, int, int]], running_color: str,
              usage: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Each agent's running tasks against its capacity, with its completed and failed counts:
    ``rows`` of (agent, running, capacity, completed, failed).

    ``usage`` (agent -> ``utilisation``, ``peak``, ``busy``, as
    :attr:`wfkit.jupyter.Dashboard.agent_usage` gives them) is for a finished run: the bars
    then show what each agent did over the run rather than the idle 0/N of its end."""
    if not rows:
        return ""
    cells = []
    for agent, running, capacity, completed, failed in rows:
        used = usage.get(agent) if usage is not None else None
        if used is not None:
            share = float(used.get("utilisation", 0.0))
            what = (f"{share:.0%} utilisation · peak {int(used.get('peak', 0))}/{capacity} "
                    f"at once")
        else:
            share = running / capacity if capacity else 0.0
            what = f"{running}/{capacity} running"
        pct = 100.0 * min(max(share, 0.0), 1.0)
        cells.append(
            f"<tr><td style='padding:1px 8px 1px 0'><code>{html.escape(agent)}</code></td>"
            "<td style='width:160px;padding:1px 8px 1px 0'><div style='background-color:"
            "rgba(150,150,150,0.25);height:12px;width:150px'><div style='width:"
            f"{pct:.0f}%;height:12px;background-color:{running_color}'></div></div></td>"
            f"<td class='wfkit-snapshot-use' style='padding:1px 8px 1px 0'>{what}</td>"
            f"<td style='padding:1px 8px 1px 0'>{completed:,} completed, {failed:,} failed "
            "attempts</td></tr>"
        )
    title = ("Agent load over the run (utilisation, peak / capacity)" if usage is not None
             else "Agent load")
    return (
        f"<div class='wfkit-snapshot-load' style='font-size:12px'><b>{title}</b>"
        "<table style='border-collapse:collapse'>" + "".join(cells) + "</table></div>"
    )
