"""Simulation speed: the same graph simulated on virtual time vs run by the engine.

The graph and the pool are those of ``benchmarks/engine.py`` (a random layered DAG of width 50,
8 agents of capacity 8); the engine runs it with async no-op work. Both variants get the tasks
ready-made and time the rest (the engine: orchestrator, validation, the run; the simulator:
validation, the run on virtual time, the Schedule). Each measurement runs in a fresh child
process, variants alternate, and each figure is the best of ``--repeat`` runs. The target is a
ratio simulate / engine of at most 0.5.

    python benchmarks/simulation.py                 # 100,000 tasks
    python benchmarks/simulation.py --sizes 10000 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import build_graph, make_agents, make_tasks, run_child, wfkit_runner  # noqa: E402

TARGET = 0.5


def _engine(tasks: list[Any]) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(wfkit_runner()(tasks))
    finally:
        loop.close()


def _simulate(tasks: list[Any]) -> None:
    import wfkit

    schedule = wfkit.simulate(tasks, make_agents())
    assert len(schedule.finish) == len(tasks)


def _simulate_frame(tasks: list[Any]) -> None:
    import wfkit

    frame = wfkit.simulate(tasks, make_agents()).frame()
    assert len(frame) == len(tasks)


VARIANTS: dict[str, Callable[[list[Any]], None]] = {
    "engine": _engine,
    "simulate": _simulate,
    "simulate+frame": _simulate_frame,
}


def child(variant: str, n: int) -> dict[str, float]:
    import wfkit  # noqa: F401 - imported before the clock starts, as in a session

    tasks = make_tasks(build_graph(n))
    if variant != "engine":
        import pandas  # noqa: F401 - the frame's import is not what we measure
    gc.collect()
    start = time.perf_counter()
    VARIANTS[variant](tasks)
    return {"seconds": time.perf_counter() - start}


def measure(variant: str, n: int) -> float:
    return float(run_child(__file__, variant, n)["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    names = ["engine", *[v for v in args.variants if v != "engine"]]
    ok = True
    for n in args.sizes:
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name in names:
                seconds = measure(name, n)
                best[name] = min(best.get(name, seconds), seconds)
        print(f"\n{n:,} tasks (best of {args.repeat})")
        print(f"{'variant':<16}{'seconds':>9}{'µs/task':>10}{'/engine':>9}")
        for name in names:
            s = best[name]
            print(f"{name:<16}{s:>9.3f}{s / n * 1e6:>10.1f}{s / best['engine']:>9.2f}")
        ratio = best["simulate"] / best["engine"]
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(f"simulate / engine = {ratio:.2f} ({verdict} the target of {TARGET})")
        ok = ok and ratio <= TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
