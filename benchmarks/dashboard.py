"""What the live dashboard costs a run: a run of 10,000 (and 100,000) tasks with
``Dashboard(orch)`` displayed against the same run without it (the issue's bar: at most 1.3x
at both sizes, whether the dashboard was made before or after the workflow).

The graph and agents are the engine benchmark's (a layered random DAG of width 50, 8 agents
of capacity 8, async no-op tasks: the worst case, since any real work dilutes the overhead).
Each session is a fresh IPython kernel (``--where kernel``, the default) in which the
dashboard is really displayed, so its widget messages are serialised and sent on the kernel's
channels as in a notebook (``--where process``: the same code in a plain child process). A
session runs every variant ``--repeat`` times, alternating, so that all meet the same machine;
printed are the best of each as a ratio to the best ``plain``, the median of the ratios
within each round (in wall time, and in the process's CPU time, which a busy machine
disturbs less), and the time the dashboard spent redrawing (its share of the run):

- ``plain``       no subscriber at all (the baseline);
- ``subscriber``  a no-op event subscriber: what building events costs, whoever listens;
- ``dashboard``   the dashboard displayed after ``create_workflow`` (its DAG drawn before the
                  run, as when a notebook displays it and then runs);
- ``cold``        the dashboard displayed before the workflow exists, so the DAG is drawn
                  while the run goes on.

    python benchmarks/dashboard.py                       # 10,000 tasks
    python benchmarks/dashboard.py --tasks 10000 100000 --repeat 3 --sessions 1
    python benchmarks/dashboard.py --tasks 10000 --repeat 9 --sessions 1 --where process
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("plain", "subscriber", "dashboard", "cold")

# One session (a notebook kernel, or a process): every variant `rounds` times, alternating,
# so that all of them meet the same machine. `{variants}`, `{n}`, `{rounds}` and `{here}` are
# filled in. Top-level await: it runs as a notebook cell in the kernel, and inside an async
# function in a plain process.
CELL = """
import gc, json, sys, time
sys.path.insert(0, {here!r})
from engine import build_graph, make_agents, make_tasks
import wfkit
from wfkit.jupyter.dashboard import Dashboard

n = {n}
graph = build_graph(n)


async def once(variant):
    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
    for agent in make_agents():
        orch.register_agent(agent)
    dash = None
    if variant == "cold":
        dash = Dashboard(orch)
        display(dash)
    await orch.create_workflow("bench", make_tasks(graph))
    if variant == "dashboard":
        dash = Dashboard(orch)
        display(dash)
    elif variant == "subscriber":
        orch.subscribe(lambda event: None)
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = await orch.execute_workflow("bench")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result["successful_tasks"] == n, result
    redraws, drawing = 0, 0.0
    if dash is not None:
        assert dash.progress.value == n and dash.status_counts["completed"] == n
        redraws, drawing = dash.redraws, dash.redraw_seconds
        dash.close()
    orch.close()
    return elapsed, redraws, drawing, cpu


rounds = []
for _ in range({rounds}):
    rounds.append({{v: await once(v) for v in {variants!r}}})
print("RESULT " + json.dumps(rounds))
"""


def _in_process(code: str) -> str:
    body = textwrap.indent(code, "    ")
    script = (
        "import asyncio\n"
        "def display(obj):\n    pass\n"
        f"async def main():\n{body}\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=HERE.parent
    )
    return out.stdout


def _in_kernel(code: str) -> str:
    import os

    from jupyter_client.manager import start_new_kernel

    lines: list[str] = []

    def hook(msg: dict) -> None:
        kind = msg["msg_type"]
        if kind == "stream":
            lines.append(msg["content"]["text"])
        elif kind == "error":
            lines.append("\n".join(msg["content"]["traceback"]))

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        for var in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
            env[var] = str(Path(tmp) / var.lower())
        km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(HERE.parent))
        try:
            kc.execute_interactive(code, output_hook=hook, timeout=600)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return "".join(lines)


def measure(variants: list[str], n: int, rounds: int, where: str) -> list[dict[str, list]]:
    code = CELL.format(variants=variants, n=n, rounds=rounds, here=str(HERE))
    out = _in_kernel(code) if where == "kernel" else _in_process(code)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"no result:\n{out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000],
                        help="run sizes, each measured on its own")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per session")
    parser.add_argument("--sessions", type=int, default=2, help="fresh kernels/processes")
    parser.add_argument("--where", choices=("kernel", "process"), default="kernel")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--limit", type=float, default=1.3,
                        help="exit 1 when dashboard or cold / plain is above this")
    args = parser.parse_args(argv)
    names = ["plain", *[v for v in args.variants if v != "plain"]]
    worst = 0.0
    for n in args.tasks:
        worst = max(worst, report(names, n, args))
    return 0 if worst <= args.limit else 1


def report(names: list[str], n: int, args: argparse.Namespace) -> float:
    """Measure runs of ``n`` tasks, print the table; the worst dashboard ratio (best of each)."""
    rounds: list[dict[str, list]] = []
    for _ in range(args.sessions):
        rounds += measure(names, n, args.repeat, args.where)
    best = {name: min(r[name][0] for r in rounds) for name in names}
    redraws = {name: max(r[name][1] for r in rounds) for name in names}
    drawing = {name: statistics.median(r[name][2] / r[name][0] for r in rounds)
               for name in names}
    paired = {name: statistics.median(r[name][0] / r["plain"][0] for r in rounds)
              for name in names}
    cpu = {name: statistics.median(r[name][3] / r["plain"][3] for r in rounds)
           for name in names}
    base = best["plain"]
    print(f"\n{n:,} no-op tasks, {len(rounds)} alternating rounds in "
          f"{args.sessions} {args.where}(s)")
    print(f"{'variant':<12}{'best ms':>9}{'best/plain':>12}{'median ratio':>14}{'cpu ratio':>11}"
          f"{'redraws':>9}{'drawing':>9}")
    for name in names:
        print(f"{name:<12}{best[name] * 1000:>9.1f}{best[name] / base:>12.2f}"
              f"{paired[name]:>14.2f}{cpu[name]:>11.2f}{redraws[name]:>9}{drawing[name]:>9.1%}")
    worst = 0.0
    for name in ("dashboard", "cold"):
        if name in best:
            ratio = best[name] / base
            worst = max(worst, ratio)
            verdict = "ok" if ratio <= args.limit else "ABOVE THE LIMIT"
            print(f"{name} / plain = {ratio:.2f} best of each, {paired[name]:.2f} median of "
                  f"rounds, {cpu[name]:.2f} in CPU time (limit {args.limit:.2f}: {verdict})")
    return worst


if __name__ == "__main__":
    sys.exit(main())
