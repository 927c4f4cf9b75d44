"""Shared-resource speed against ``asyncio.Lock`` (the floor), in the same run.

50 tasks contend for one resource; each does ``--pairs`` acquire/release pairs and yields once
inside the critical section, so every acquire after the first really waits in the queue. The
floor does the same with a bare ``asyncio.Lock``; wfkit does it through
``manager.resource(...)`` with FIFO hand-over, a lease on every holding and deadlock detection
on every wait. Variants alternate, each figure is the best of ``--repeat`` runs, and the result
is printed as a ratio to the floor (target: at least 0.3x the floor's rate).

    python benchmarks/coordination.py
    python benchmarks/coordination.py --tasks 50 --pairs 400 --repeat 7
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable

TARGET = 0.3


async def run_floor(tasks: int, pairs: int) -> int:
    lock = asyncio.Lock()
    done = 0

    async def worker() -> None:
        nonlocal done
        for _ in range(pairs):
            async with lock:
                await asyncio.sleep(0)
                done += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done


def wfkit_runner(*, lease: float | None = 60.0, subscribed: bool = False):
    async def run(tasks: int, pairs: int) -> int:
        from wfkit import CoordinationCollaborationManager

        manager = CoordinationCollaborationManager()
        if subscribed:
            manager.subscribe(lambda event: None)
        done = 0
        inside = 0

        async def worker(name: str) -> None:
            nonlocal done, inside
            resource = manager.resource
            for _ in range(pairs):
                async with resource("shared", name, lease=lease):
                    inside += 1
                    assert inside == 1
                    await asyncio.sleep(0)
                    inside -= 1
                    done += 1

        await asyncio.gather(*(worker(f"p{i}") for i in range(tasks)))
        stats = manager.resource_statistics("shared")
        assert stats["acquisitions"] == tasks * pairs == stats["releases"], stats
        manager.close()
        return done

    return run


VARIANTS: dict[str, Callable[[int, int], Awaitable[int]]] = {
    "asyncio.Lock": run_floor,
    "wfkit": wfkit_runner(),
    "wfkit+events": wfkit_runner(subscribed=True),
}


def measure(run: Callable[[int, int], Awaitable[int]], tasks: int, pairs: int) -> float:
    """Acquire/release pairs per second for one run on a fresh event loop."""
    gc.collect()
    loop = asyncio.new_event_loop()
    try:
        start = time.perf_counter()
        done = loop.run_until_complete(run(tasks, pairs))
        elapsed = time.perf_counter() - start
    finally:
        loop.close()
    assert done == tasks * pairs
    return done / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=400, help="acquire/release pairs per task")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import wfkit.coordination  # noqa: F401  (imported before the clock starts)

    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, run in VARIANTS.items():
            rate = measure(run, args.tasks, args.pairs)
            best[name] = max(best.get(name, 0.0), rate)
    floor = best["asyncio.Lock"]
    print(
        f"{args.tasks} tasks x {args.pairs} pairs on one resource "
        f"(best of {args.repeat}, alternating)"
    )
    print(f"{'variant':<16}{'pairs/s':>12}{'rate/floor':>12}")
    for name, rate in best.items():
        print(f"{name:<16}{rate:>12,.0f}{rate / floor:>12.2f}")
    ratio = best["wfkit"] / floor
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"wfkit / asyncio.Lock = {ratio:.2f} ({verdict} the {TARGET}x target)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
