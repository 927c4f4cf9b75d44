"""Edge crossings of the DAG drawing: layers in input order against layers ordered by the
barycentre sweeps of :func:`wfkit.plots.dag_layout`.

For the README's example (the showcase workflow) and every WfFormat trace under the directory
(default: ``../shared/benchmarks/wfcommons`` next to the repository) it prints the crossings
between edges of adjacent layers with every task drawn (``group="none"``) and of the graph
``dag_figure`` draws by default (groups above 150 tasks), before and after ordering.

    python benchmarks/crossings.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import wfkit
from wfkit.agents.model import WorkflowTask
from wfkit.app.demo import build_demo
from wfkit.graph import layers, validate_tasks
from wfkit.grouping import group_tasks
from wfkit.plots import _crossings, dag_layout

DEFAULT_ROOT = next(
    (p / "shared" / "benchmarks" / "wfcommons" for p in Path(__file__).resolve().parents
     if (p / "shared" / "benchmarks" / "wfcommons").is_dir()),
    Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "wfcommons",
)


def crossings(tasks: dict[str, WorkflowTask], sweeps: int) -> int:
    layout = dag_layout(tasks, sweeps=sweeps)
    gens: list[list[str]] = [[] for _ in range(layout.depth)]
    pos = {}
    for tid, x, y in zip(layout.ids, layout.x, layout.y, strict=True):
        gens[int(x)].append(tid)
        pos[tid] = -y
    return _crossings(gens, pos, tasks)


def drawn(tasks: dict[str, WorkflowTask]) -> dict[str, WorkflowTask]:
    """The graph dag_figure draws: groups as nodes (or the tasks, when they fit)."""
    g = group_tasks(tasks)
    return {k: WorkflowTask(k, k, [], 0, 1.0, list(g.deps[k])) for k in g.members}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args(argv)
    cases = [("README example (showcase)", build_demo()[0].tasks)]
    cases += [(p.stem, wfkit.load_wfformat(p).tasks) for p in sorted(args.root.glob("*.json"))
              if not p.name.endswith(".schema.json")]
    print(f"{'workflow':42} {'tasks':>6} {'layers':>6}  {'all tasks: before → after':>26}"
          f"  {'as drawn: nodes, before → after':>32}")
    for name, task_list in cases:
        tasks = validate_tasks(task_list)
        nodes = drawn(tasks)
        print(f"{name:42} {len(tasks):>6} {len(layers(tasks)):>6}  "
              f"{crossings(tasks, 0):>12,} → {crossings(tasks, 4):>10,}  "
              f"{len(nodes):>10}, {crossings(nodes, 0):>8,} → {crossings(nodes, 4):>8,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
