"""What the result cache saves, and what checking it costs.

1. Re-running an unchanged workflow: 1,000 cacheable tasks of 10 ms of sync work each (a
   random layered DAG, see benchmarks/engine.py), on 4 agents of capacity 1 (4 worker
   threads). The first run computes and keeps every result; the re-run finds every one in the
   cache. Target: re-run <= 5 % of the first run (in memory, and with a run store).
2. Checking the cache: 10,000 cacheable async no-op tasks on 8 agents of capacity 8, run with
   ``cache="use"`` on an empty cache (every key computed, looked up and kept) against the same
   run with ``cache="off"``, back to back, in CPU time (the run is CPU-bound; wall time on a
   shared machine mostly measures the neighbours). Target: the median ratio <= 1.2.

Re-run figures are the best of ``--repeat`` runs; check figures are the median ratio of
back-to-back pairs. All are printed as ratios: the machine is shared and noisy.

    python benchmarks/cache.py
    python benchmarks/cache.py --tasks 1000 --noop-tasks 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import build_graph  # noqa: E402

import wfkit  # noqa: E402


def sleep_10ms(ctx: Any) -> int:
    time.sleep(0.01)
    return len(ctx.inputs)


async def noop(ctx: Any) -> None:
    return None


def workflow(n: int, action: Any, name: str) -> wfkit.Workflow:
    wf = wfkit.Workflow(name, cache=True)
    for tid, deps in build_graph(n):
        wf.add(wfkit.WorkflowTask(tid, tid, ["work"], 0, 1.0, deps, action=action))
    return wf


def orchestrator(agents: int, capacity: int, store: Any = None) -> Any:
    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False, store=store)
    for i in range(agents):
        orch.register_agent(wfkit.AgentProfile(f"a{i}", f"a{i}", ["work"], capacity=capacity))
    return orch


async def timed(orch: Any, wf: Any, cpu: bool = False, **kw: Any) -> tuple[float, Any]:
    """Wall time of one run, or with ``cpu`` the CPU time this process spent on it (what a
    CPU-bound run of no-op tasks costs, whatever else the shared machine is doing)."""
    clock = time.process_time if cpu else time.perf_counter
    gc.collect()
    t0 = clock()
    result = await orch.execute_workflow(wf, **kw)
    took = clock() - t0
    assert result["status"] == "completed", result
    return took, result


async def rerun(n: int, repeat: int, store: bool) -> tuple[float, float]:
    firsts, reruns = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            path = Path(tmp) / f"runs{i}.db" if store else None
            orch = orchestrator(4, 1, store=path)
            wf = workflow(n, sleep_10ms, "rerun")
            first, r1 = await timed(orch, wf)
            again, r2 = await timed(orch, wf)
            cached = sum(1 for r in r2["task_results"].values() if r["cached"])
            assert cached == n and not any(r["cached"] for r in r1["task_results"].values())
            firsts.append(first)
            reruns.append(again)
            orch.close()
    return min(firsts), min(reruns)


async def check_cost(n: int, repeat: int) -> tuple[float, float, float]:
    """Best times of each variant, and the median of the ratios of back-to-back pairs (the
    order alternating), which drifting load on a shared machine disturbs least."""
    off, on, ratios = [], [], []
    for i in range(repeat):
        pair = {}
        for mode in (("off", "use") if i % 2 == 0 else ("use", "off")):
            orch = orchestrator(8, 8)
            wf = workflow(n, noop, "noop")
            took, result = await timed(orch, wf, cpu=True, cache=mode)
            kept = len(orch.cache.frame()) if mode == "use" else 0
            assert kept == (n if mode == "use" else 0)
            pair[mode] = took
            orch.close()
        off.append(pair["off"])
        on.append(pair["use"])
        ratios.append(pair["use"] / pair["off"])
    return min(off), min(on), statistics.median(ratios)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--noop-tasks", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--check-repeat", type=int, default=9,
                   help="runs of each variant for the (short, noise-prone) check cost")
    args = p.parse_args()

    print(f"re-running {args.tasks} unchanged 10 ms tasks on 4 worker threads "
          f"(best of {args.repeat}):")
    for store in (False, True):
        first, again = await rerun(args.tasks, args.repeat, store)
        where = "run store" if store else "in memory"
        verdict = "ok" if again <= 0.05 * first else "OVER the 5 % target"
        print(f"  {where:9}  first run {first:7.3f} s   re-run {again:7.3f} s   "
              f"ratio {again / first:6.2%}  ({verdict})")

    off, on, ratio = await check_cost(args.noop_tasks, args.check_repeat)
    verdict = "ok" if ratio <= 1.2 else "OVER the 20 % target"
    print(f"checking the cache, {args.noop_tasks} no-op tasks ({args.check_repeat} pairs):")
    print(f"  CPU time: cache='off' best {off:6.3f} s   cache='use' on an empty cache best "
          f"{on:6.3f} s   median pair ratio {ratio:4.2f}x (best/best {on / off:4.2f}x)  "
          f"({verdict})")


if __name__ == "__main__":
    asyncio.run(main())
