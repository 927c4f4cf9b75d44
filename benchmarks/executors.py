"""Process and Dask executors against the thread executor, on CPU-bound pure-Python work.

The graph: 64 tasks of about 0.2 s of pure-Python arithmetic each, in 8 independent chains of
8 (each task adds its predecessor's result to its own). On a thread pool the GIL runs them one
at a time; the process pool and a Dask ``LocalCluster`` (one single-threaded worker process per
core) run them in parallel. The same graph is also submitted directly with ``client.submit``
on the same cluster, to measure what wfkit adds on top of Dask.

Variants alternate within each round and each figure is the best of ``--repeat`` rounds,
printed as ratios (machines are noisy; ratios within one run are what can be compared):

- threads / processes and threads / dask: at least 1.7 on two cores;
- wfkit on dask / client.submit: at most 1.2.

    python benchmarks/executors.py               # 64 tasks x 0.2 s, best of 3
    python benchmarks/executors.py --repeat 5 --seconds 0.1

Exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

TASKS = 64
CHAINS = 8


def spin(n: int) -> int:
    """Pure-Python arithmetic that holds the GIL for the whole loop."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def work(n: int, ctx: Any) -> int:
    """A task's action: spin, then add the predecessor's result."""
    return spin(n) + sum(ctx.inputs.values())


def raw_work(n: int, *deps: int) -> int:
    """The same work for plain ``client.submit``."""
    return spin(n) + sum(deps)


def calibrate(seconds: float) -> int:
    """Iterations of :func:`spin` that take about ``seconds`` here."""
    n = 20_000
    while True:
        start = time.perf_counter()
        spin(n)
        took = time.perf_counter() - start
        if took > 0.05:
            return max(1, int(n * seconds / took))
        n *= 2


def graph() -> list[tuple[str, list[str]]]:
    return [(f"t{i}", [f"t{i - CHAINS}"] if i >= CHAINS else []) for i in range(TASKS)]


def make_tasks(n: int) -> list[Any]:
    from wfkit import WorkflowTask

    action = functools.partial(work, n)
    return [
        WorkflowTask(tid, tid, ["cpu"], 0, 0.2, deps, action=action) for tid, deps in graph()
    ]


async def run_wfkit(executor: Any, n: int, capacity: int) -> dict[str, Any]:
    from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator

    orch = CollectiveAgentWorkflowOrchestrator(executor=executor, progress=False)
    orch.register_agent(AgentProfile("cpu", "cpu", ["cpu"], capacity=capacity))
    await orch.create_workflow("bench", make_tasks(n))
    result = await orch.execute_workflow("bench")
    if result.status != "completed":
        raise RuntimeError(f"the benchmark run {result.status}: {result!r}")
    return result.results()


def run_direct(client: Any, n: int) -> dict[str, Any]:
    futures: dict[str, Any] = {}
    for tid, deps in graph():
        futures[tid] = client.submit(
            raw_work, n, *(futures[d] for d in deps), key=f"{tid}-direct-{time.monotonic_ns()}",
            pure=False,
        )
    values = client.gather(list(futures.values()))
    return dict(zip(futures, values, strict=True))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the best")
    parser.add_argument("--seconds", type=float, default=0.2, help="work per task (seconds)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="processes")
    args = parser.parse_args(argv)

    import distributed

    from wfkit import DaskExecutor, ProcessExecutor, ThreadExecutor

    n = calibrate(args.seconds)
    capacity = 2 * args.workers  # enough slots that no worker waits on the engine
    cluster = distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    threads = ThreadExecutor()
    processes = ProcessExecutor(max_workers=args.workers)
    dask = DaskExecutor(client)

    variants: dict[str, Callable[[int], Any]] = {
        "threads": lambda k: asyncio.run(run_wfkit(threads, k, capacity)),
        "processes": lambda k: asyncio.run(run_wfkit(processes, k, capacity)),
        "dask": lambda k: asyncio.run(run_wfkit(dask, k, capacity)),
        "client.submit": lambda k: run_direct(client, k),
    }
    try:
        expected = None
        for name, variant in variants.items():  # warm up: pools, imports, the cluster
            out = variant(1000)
            expected = expected or out
            if out != expected:
                raise RuntimeError(f"{name} computed different results")
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(args.repeat):
            for name, variant in variants.items():
                took, _out = timed(functools.partial(variant, n))
                best[name] = min(best[name], took)
    finally:
        threads.close()
        processes.close()
        dask.close()
        client.close()
        cluster.close()

    speed_processes = best["threads"] / best["processes"]
    speed_dask = best["threads"] / best["dask"]
    overhead = best["dask"] / best["client.submit"]
    checks = [
        ("threads / processes", speed_processes, speed_processes >= 1.7, ">= 1.7"),
        ("threads / dask", speed_dask, speed_dask >= 1.7, ">= 1.7"),
        ("wfkit on dask / client.submit", overhead, overhead <= 1.2, "<= 1.2"),
    ]
    print(
        f"executors: {TASKS} tasks x {args.seconds:g} s of pure-Python work, "
        f"{args.workers} worker processes, best of {args.repeat}"
    )
    for name, seconds in best.items():
        print(f"  {name:<15} {seconds:7.2f} s")
    for label, ratio, ok, target in checks:
        print(f"  {label:<30} {ratio:5.2f}x  (target {target}) {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for *_, ok, _t in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
