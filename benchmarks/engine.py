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

Whole-process mode (``--process``): what a script pays end to end. A fresh ``python`` runs the
graph through wfkit, ``import wfkit`` and building the tasks included, against a fresh
``python`` doing the same graph with plain asyncio (the floor, its imports included): wall
time of each process and its peak RSS (``ru_maxrss`` of that child), as ratios, the median
of ``--repeat`` alternating pairs; and what ``import wfkit`` alone takes, in milliseconds.
Modules run from cached bytecode, as an installed package does (one warm-up run writes it).
Targets: time and memory <= 1.5x the floor at 10,000 and 100,000 tasks; import <= 100 ms.

    python benchmarks/engine.py --process
    python benchmarks/engine.py --process --sizes 10000 --repeat 7

Other benchmarks import :func:`build_graph`, :func:`make_tasks` and :func:`make_agents`.
Variants live in :data:`VARIANTS`: name -> async function(graph) running the whole graph.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
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


# -- whole-process mode ------------------------------------------------------------------------

# Each child is one small script: the graph (the same code as build_graph), then the variant.
# Nothing else is imported, so each process pays only for what it needs.
_PROCESS_GRAPH = """
import random, sys
n = int(sys.argv[1])
rng = random.Random(7)
graph, layers = [], []
for i in range(n):
    layer = i // 50
    if layer == len(layers):
        layers.append([])
    tid = f"t{i}"
    pool = [t for prev in layers[max(0, layer - 2) : layer] for t in prev]
    deps = rng.sample(pool, rng.randint(1, min(3, len(pool)))) if pool else []
    layers[layer].append(tid)
    graph.append((tid, deps))
"""

PROCESS_VARIANTS = {
    "floor": _PROCESS_GRAPH + """
import asyncio

async def noop():
    return None

async def main():
    loop = asyncio.get_running_loop()
    done = {tid: loop.create_future() for tid, _ in graph}

    async def node(tid, deps):
        for d in deps:
            await done[d]
        await noop()
        done[tid].set_result(None)

    await asyncio.gather(*(node(tid, deps) for tid, deps in graph))

asyncio.run(main())
""",
    "wfkit": _PROCESS_GRAPH + """
import asyncio
import wfkit

async def noop(ctx):
    return None

async def main():
    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
    for i in range(8):
        orch.register_agent(wfkit.AgentProfile(f"a{i}", f"agent {i}", ["work"], capacity=8,
                                               handler=noop))
    tasks = [wfkit.WorkflowTask(tid, tid, ["work"], 0, 1.0, deps) for tid, deps in graph]
    await orch.create_workflow("bench", tasks)
    result = await orch.execute_workflow("bench")
    assert result["successful_tasks"] == n, result
    orch.close()

asyncio.run(main())
""",
}

_IMPORT_TIME = """
import time
t, c = time.perf_counter(), time.process_time()
import wfkit
print(time.perf_counter() - t, time.process_time() - c)
"""


def _child_env() -> dict[str, str]:
    """The environment of a child: bytecode is cached, as for an installed package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run_process(code: str, *args: str) -> tuple[float, float, int, str]:
    """Run ``python -c code args`` in a fresh process: (wall seconds, CPU seconds, peak RSS
    KiB, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=out, stderr=err, env=_child_env(),
            cwd=Path(__file__).resolve().parents[1],
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        elapsed = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise RuntimeError(f"child failed ({code}):\n{err.read().decode()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return elapsed, cpu, usage.ru_maxrss, out.read().decode()


def whole_process(sizes: list[int], repeat: int) -> None:
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    for code in PROCESS_VARIANTS.values():  # warm-up: writes the bytecode caches
        run_process(code, "100")
    walls, cpus, bare = [], [], []
    for _ in range(max(repeat, 5)):
        wall, cpu = map(float, run_process(_IMPORT_TIME)[3].split())
        walls.append(wall)
        cpus.append(cpu)
        bare.append(run_process("pass")[1])
    print(f"import wfkit (target <= 100 ms), median of {len(walls)}: "
          f"{statistics.median(walls) * 1e3:.0f} ms wall (best {min(walls) * 1e3:.0f}), "
          f"{statistics.median(cpus) * 1e3:.0f} ms CPU (best {min(cpus) * 1e3:.0f}); "
          f"a bare python process: {statistics.median(bare) * 1e3:.0f} ms CPU")
    for n in sizes:
        pairs: list[dict[str, tuple[float, float, int]]] = []
        for i in range(repeat):
            order = list(PROCESS_VARIANTS) if i % 2 == 0 else list(reversed(PROCESS_VARIANTS))
            pair = {}
            for name in order:
                seconds, cpu, rss, _ = run_process(PROCESS_VARIANTS[name], str(n))
                pair[name] = (seconds, cpu, rss)
            pairs.append(pair)
        def ratio(i: int, pairs: list[dict[str, tuple[float, float, int]]] = pairs) -> float:
            return statistics.median(p["wfkit"][i] / p["floor"][i] for p in pairs)

        print(f"\n{n:,} tasks, whole processes (median of {repeat} pairs)")
        print(f"{'variant':<10}{'wall s':>9}{'CPU s':>9}{'peak MiB':>10}")
        for name in PROCESS_VARIANTS:
            wall, cpu, rss = (statistics.median(p[name][i] for p in pairs) for i in range(3))
            print(f"{name:<10}{wall:>9.3f}{cpu:>9.3f}{rss / 1024:>10.1f}")
        print(f"wfkit / floor CPU time: {ratio(1):.2f}x  (wall time on a loaded machine measures "
              f"the neighbours too)")
        for what, r in (("wall time", ratio(0)), ("memory", ratio(2))):
            verdict = "ok" if r <= 1.5 else "OVER the 1.5x target"
            print(f"wfkit / floor {what}: {r:.2f}x  ({verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"))
    parser.add_argument("--process", action="store_true",
                        help="whole processes, imports included, against a plain-asyncio one")
    args = parser.parse_args(argv)
    if args.process:
        whole_process(args.sizes, args.repeat)
        return 0
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
