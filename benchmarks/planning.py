"""Planning speed: HEFT plans and ``simulate(policy="heft")`` on large graphs.

The graph is the engine benchmark's random layered DAG (width 50) with durations drawn from
1-10 s, on P = 16 single-slot agents. For each size it times ``plan_schedule(method="heft")``,
``simulate(policy="least_loaded")`` and ``simulate(policy="heft")`` (best of ``--repeat``) and
prints the ratio heft-simulation / least_loaded-simulation. Targets: HEFT plans 20,000 tasks in
at most 5 s, and ``simulate(policy="heft")`` takes at most 5x ``least_loaded`` on the same graph.

    python benchmarks/planning.py
    python benchmarks/planning.py --sizes 2000 8000 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import build_graph  # noqa: E402

PLAN_SECONDS = 5.0
RATIO_TARGET = 5.0


def _best(fn: Any, repeat: int, *args: Any, **kw: Any) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn(*args, **kw)
        best = min(best, time.perf_counter() - began)
    return best


def main(argv: list[str] | None = None) -> int:
    from stg_format import identical_agents

    import wfkit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 20000])
    parser.add_argument("--processors", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    ok = True
    print(f"{'tasks':>7} {'heft plan s':>12} {'sim least s':>12} {'sim heft s':>11} {'ratio':>7}")
    for n in args.sizes:
        rng = random.Random(n)
        graph = build_graph(n)
        tasks = [wfkit.WorkflowTask(tid, tid, ["compute"], 0, float(rng.randint(1, 10)), deps)
                 for tid, deps in graph]
        agents = identical_agents(args.processors)
        plan = _best(wfkit.plan_schedule, args.repeat, tasks, agents, method="heft")
        least = _best(wfkit.simulate, args.repeat, tasks, agents)
        heft = _best(wfkit.simulate, args.repeat, tasks, agents, policy="heft")
        ratio = heft / least
        print(f"{n:>7} {plan:>12.2f} {least:>12.3f} {heft:>11.2f} {ratio:>7.1f}", flush=True)
        if n >= 20000:
            ok = ok and plan <= PLAN_SECONDS
        ok = ok and ratio <= RATIO_TARGET
    print(f"targets: HEFT plan of 20,000 tasks <= {PLAN_SECONDS:.0f} s, "
          f"simulate heft / least_loaded <= {RATIO_TARGET:.0f}x: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
