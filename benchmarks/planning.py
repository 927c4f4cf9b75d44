"""Planning speed: HEFT plans and ``simulate(policy="heft")`` on large graphs.

The graph is the engine benchmark's random layered DAG (width 50) with durations drawn from
1-10 s, on P = 16 single-slot agents. For each size it times ``plan_schedule(method="heft")``
(best of ``--repeat``), then runs ``simulate(policy="least_loaded")`` and
``simulate(policy="heft")`` back to back ``--repeat`` times (default 7) and prints the median
of the per-run ratios heft / least_loaded, in CPU time (the process's own) and in wall time
(which other work on the machine inflates). The machine's load average is printed with them.
Targets: HEFT plans 20,000 tasks in at most 5 s, and ``simulate(policy="heft")`` takes at most
5x ``least_loaded`` on the same graph (the median CPU ratio, at every size).

    python benchmarks/planning.py
    python benchmarks/planning.py --sizes 2000 8000 20000 --repeat 9
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
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


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, result) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    return time.process_time() - cpu, time.perf_counter() - wall, out


def ratios(simulate: Any, tasks: Any, agents: Any, repeat: int) -> dict[str, float]:
    """Median CPU and wall ratios heft / least_loaded over ``repeat`` back-to-back pairs, and
    the median times of each."""
    cpu: list[float] = []
    wall: list[float] = []
    least_t: list[float] = []
    heft_t: list[float] = []
    for _ in range(repeat):
        c0, w0, least = _timed(simulate, tasks, agents)
        c1, w1, heft = _timed(simulate, tasks, agents, policy="heft")
        assert heft.makespan > 0 and least.makespan > 0
        cpu.append(c1 / c0)
        wall.append(w1 / w0)
        least_t.append(w0)
        heft_t.append(w1)
    return {
        "cpu": statistics.median(cpu),
        "wall": statistics.median(wall),
        "least": statistics.median(least_t),
        "heft": statistics.median(heft_t),
    }


def main(argv: list[str] | None = None) -> int:
    from stg_format import identical_agents

    import wfkit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 20000])
    parser.add_argument("--processors", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    ok = True
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; "
          f"ratios are medians of {args.repeat} runs")
    print(f"{'tasks':>7} {'heft plan s':>12} {'sim least s':>12} {'sim heft s':>11} "
          f"{'ratio cpu':>10} {'ratio wall':>11}")
    for n in args.sizes:
        rng = random.Random(n)
        graph = build_graph(n)
        tasks = [wfkit.WorkflowTask(tid, tid, ["compute"], 0, float(rng.randint(1, 10)), deps)
                 for tid, deps in graph]
        agents = identical_agents(args.processors)
        plan = _best(wfkit.plan_schedule, args.repeat, tasks, agents, method="heft")
        r = ratios(wfkit.simulate, tasks, agents, args.repeat)
        print(f"{n:>7} {plan:>12.2f} {r['least']:>12.3f} {r['heft']:>11.3f} "
              f"{r['cpu']:>10.2f} {r['wall']:>11.2f}", flush=True)
        if n >= 20000:
            ok = ok and plan <= PLAN_SECONDS
        ok = ok and r["cpu"] <= RATIO_TARGET
    print(f"targets: HEFT plan of 20,000 tasks <= {PLAN_SECONDS:.0f} s, "
          f"simulate heft / least_loaded <= {RATIO_TARGET:.0f}x (median CPU ratio): "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
