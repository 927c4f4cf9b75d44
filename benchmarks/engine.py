"""Engine speed against a plain-asyncio floor (and dask's threaded scheduler when installed).

The graph: a random layered DAG of width 50 where each task has 1-3 dependencies on the two
previous layers; 8 agents of capacity 8; async no-op work. Every measurement runs in a fresh
child process (so peak-memory growth is that run's alone), variants alternate, and each figure
is the best of ``--repeat`` runs. Printed as ratios to the floor, because machines are noisy.

    python benchmarks/engine.py                 # 10,000 and 100,000 tasks
    python benchmarks/engine.py --sizes 10000 --repeat 5 --no-dask
    python benchmarks/engine.py --sizes 10000 --variants floor fanout-static fanout-map

The last compares a task mapped over 10,000 items with 10,000 static tasks doing the same
no-op work (files -> the fan-out -> combine), and prints their ratio.

Other benchmarks import :func:`build_graph`, :func:`make_tasks` and :func:`make_agents`.
Variants live in :data:`VARIANTS`: name -> async function(graph) running the whole graph.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Graph = list[tuple[str, list[str]]]


def build_graph(n: int, width: int = 50, seed: int = 7) -> Graph:
    """Task ids in topological order with their dependencies."""
    rng = random.Random(seed)
    graph: Graph = []
    layers: list[list[str]] = []
    for i in range(n):
        layer = i // width
        if layer == len(layers):
            layers.append([])
        tid = f"t{i}"
        pool = [t for prev in layers[max(0, layer - 2) : layer] for t in prev]
        deps = rng.sample(pool, rng.randint(1, min(3, len(pool)))) if pool else []
        layers[layer].append(tid)
        graph.append((tid, deps))
    return graph


def make_tasks(graph: Graph) -> list[Any]:
    from wfkit import WorkflowTask

    return [WorkflowTask(tid, tid, ["work"], 0, 1.0, deps) for tid, deps in graph]


async def _noop(ctx: Any) -> None:
    return None


def make_agents(n: int = 8, capacity: int = 8, handler: Callable[..., Any] = _noop) -> list[Any]:
    from wfkit import AgentProfile

    return [
        AgentProfile(f"a{i}", f"agent {i}", ["work"], capacity=capacity, handler=handler)
        for i in range(n)
    ]


async def run_floor(graph: Graph) -> None:
    """One asyncio task per node that awaits its dependencies: the least any engine can do."""
    loop = asyncio.get_running_loop()
    done = {tid: loop.create_future() for tid, _ in graph}

    async def node(tid: str, deps: list[str]) -> None:
        for d in deps:
            await done[d]
        await _noop(None)
        done[tid].set_result(None)

    await asyncio.gather(*(node(tid, deps) for tid, deps in graph))


def wfkit_runner(attach: Callable[[Any], Any] | None = None, **orch_kwargs: Any):
    """A variant that runs the graph with wfkit; ``attach(orchestrator)`` adds subscribers."""

    async def run(tasks: list[Any]) -> None:
        from wfkit import CollectiveAgentWorkflowOrchestrator

        orch = CollectiveAgentWorkflowOrchestrator(progress=False, **orch_kwargs)
        for agent in make_agents():
            orch.register_agent(agent)
        if attach is not None:
            attach(orch)
        await orch.create_workflow("bench", tasks)
        result = await orch.execute_workflow("bench")
        assert result["successful_tasks"] == len(tasks), result
        orch.close()

    # The floor gets its graph ready-made; wfkit gets its tasks ready-made. Validation,
    # planning and the run itself are timed.
    run.prepare = make_tasks  # type: ignore[attr-defined]
    return run


async def run_dask(graph: Graph) -> None:
    import dask.threaded

    def noop(*_: Any) -> None:
        return None

    dsk = {tid: (noop, *deps) for tid, deps in graph}
    dask.threaded.get(dsk, [tid for tid, _ in graph[-50:]])


def _imported(run: Any, module: str) -> Any:
    """Import ``module`` before the clock starts, as a session would have (like wfkit)."""
    make = run.prepare

    def prepare(graph: Graph) -> Any:
        __import__(module)
        return make(graph)

    run.prepare = prepare
    return run


def _attach_metrics(orch: Any) -> None:
    from wfkit import AdvancedWorkflowMetrics

    AdvancedWorkflowMetrics().attach(orch)


def _attach_store(orch: Any) -> None:
    """A new store file, opened inside the timed region (like the orchestrator)."""
    import atexit
    import shutil
    import tempfile

    from wfkit import RunStore

    tmp = tempfile.mkdtemp(prefix="wfkit-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    RunStore(Path(tmp) / "runs.db").attach(orch)


def fanout(mapped: bool):
    """files -> N no-op tasks -> combine, as N static tasks or as one task mapped over N
    items. Both time building the workflow, checking it and running it: what a user pays
    for a fan-out of N either way."""

    async def run(n: int) -> None:
        from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow

        orch = CollectiveAgentWorkflowOrchestrator(progress=False)
        for i in range(8):
            orch.register_agent(AgentProfile(f"a{i}", "agent", ["work"], capacity=8))
        wf = Workflow("fanout")

        @wf.task(requires=["work"])
        async def files(ctx):
            return list(range(n))

        if mapped:
            @wf.task(requires=["work"], map=files)
            async def parse(ctx):
                return None

            after = ["parse"]
        else:
            async def parse_one(ctx):
                return None

            after = [f"parse_{i}" for i in range(n)]
            for tid in after:
                wf.task(parse_one, task_id=tid, requires=["work"], after=[files])

        @wf.task(requires=["work"], after=after)
        async def combine(ctx):
            return len(ctx.inputs)

        await orch.create_workflow(wf)
        result = await orch.execute_workflow("fanout")
        assert result["successful_tasks"] == n + 2 + mapped, result
        orch.close()

    def prepare(graph: Graph) -> int:
        import wfkit  # noqa: F401  # imported before the clock starts, as in a session

        return len(graph)

    run.prepare = prepare  # type: ignore[attr-defined]
    return run


VARIANTS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "floor": run_floor,
    "wfkit": wfkit_runner(),
    "wfkit+metrics": _imported(wfkit_runner(_attach_metrics), "wfkit.metrics"),
    "wfkit+store": _imported(wfkit_runner(_attach_store), "wfkit.metrics"),
    "dask": run_dask,
    "fanout-static": fanout(mapped=False),
    "fanout-map": fanout(mapped=True),
}
# Compared with each other, not with the floor (which runs the layered graph).
FANOUT = ("fanout-static", "fanout-map")


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(variant: str, n: int) -> dict[str, float]:
    graph = build_graph(n)
    run = VARIANTS[variant]
    prepare = getattr(run, "prepare", None)
    data = prepare(graph) if prepare else graph
    gc.collect()
    before = _rss_kib()
    loop = asyncio.new_event_loop()
    start = time.perf_counter()
    loop.run_until_complete(run(data))
    elapsed = time.perf_counter() - start
    loop.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "mem_kib": max(0, peak - before)}


def run_child(script: str, variant: str, n: int) -> dict[str, float]:
    """Run ``script --child VARIANT N`` in a fresh interpreter; its last line is JSON."""
    out = subprocess.run(
        [sys.executable, script, "--child", variant, str(n)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(variant: str, n: int) -> dict[str, float]:
    return run_child(__file__, variant, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0

    names = args.variants or [v for v in VARIANTS if v != "dask" and v not in FANOUT]
    try:
        import dask  # noqa: F401

        has_dask = not args.no_dask and "dask" not in names
    except ImportError:
        has_dask = False
    per_task: dict[tuple[str, int], float] = {}
    for n in args.sizes:
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for name in names:
                r = measure(name, n)
                b = best.setdefault(name, r)
                b["seconds"] = min(b["seconds"], r["seconds"])
                b["mem_kib"] = min(b["mem_kib"], r["mem_kib"])
        if has_dask and n <= 10_000:
            best["dask"] = measure("dask", n)  # slow: once, and only at the smaller size
        floor = best["floor"]
        print(f"\n{n:,} tasks (best of {args.repeat}; dask once)")
        print(f"{'variant':<16}{'µs/task':>10}{'time/floor':>12}{'mem MiB':>10}{'mem/floor':>11}")
        for name, r in best.items():
            per_task[(name, n)] = r["seconds"] / n
            print(
                f"{name:<16}{r['seconds'] / n * 1e6:>10.1f}{r['seconds'] / floor['seconds']:>12.2f}"
                f"{r['mem_kib'] / 1024:>10.1f}{r['mem_kib'] / max(floor['mem_kib'], 1):>11.2f}"
            )
        for name in names:
            if name.startswith("wfkit") and name != "wfkit" and "wfkit" in best:
                print(f"{name} / wfkit: {best[name]['seconds'] / best['wfkit']['seconds']:.2f}")
        if all(name in best for name in FANOUT):
            ratio = best["fanout-map"]["seconds"] / best["fanout-static"]["seconds"]
            print(f"a map of {n:,} children / {n:,} static tasks: {ratio:.2f}")
    if len(args.sizes) >= 2:
        small, large = min(args.sizes), max(args.sizes)
        for name in names:
            if (name, small) in per_task and (name, large) in per_task:
                ratio = per_task[(name, large)] / per_task[(name, small)]
                print(f"{name}: time per task at {large:,} / at {small:,} = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
