"""A separate process for the run-store tests (run as a script, never imported by pytest).

    store_child.py sweep STORE INDEX TASKS GO_FILE   three runs of a workflow of TASKS tasks,
                                                      all ready at once, started when GO_FILE
                                                      appears
    store_child.py dag STORE LOG MODE                 the resume DAG; MODE is "kill" (the gate
                                                      and the long tasks block until killed),
                                                      "resume" (resume="latest") or "plain"
    store_child.py map STORE LOG MODE                 a map of 10 children; in "kill" mode
                                                      children 5..9 block until killed

Prints one JSON line describing the run on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, WorkflowTask
from wfkit.events import RunStarted

RUNS = 3  # runs per sweep process


def sweep(store: str, index: int, n: int, go: str) -> dict:
    while not os.path.exists(go):  # start together with the other processes
        time.sleep(0.001)

    async def work(ctx):  # finishing at 40 different times: 40 commits competing per process
        await asyncio.sleep(0.0005 * (int(ctx.task_id[1:]) % 40))
        return {"process": index, "task": ctx.task_id, "square": int(ctx.task_id[1:]) ** 2}

    async def main() -> dict:
        orch = CollectiveAgentWorkflowOrchestrator(store=store, progress=False)
        for a in range(4):
            orch.register_agent(AgentProfile(f"p{index}a{a}", "agent", ["work"],
                                             capacity=max(1, n // 4), handler=work))
        await orch.create_workflow(f"sweep-{index}",
                                   [WorkflowTask(f"t{i}", "", ["work"], 0, 1.0) for i in range(n)])
        runs = [await orch.execute_workflow(f"sweep-{index}") for _ in range(RUNS)]
        orch.store.close()
        return {"run_ids": [r.run_id for r in runs], "statuses": [r.status for r in runs],
                "completed": [r["successful_tasks"] for r in runs]}

    return asyncio.run(main())


def dag(store: str, log_path: str, mode: str) -> dict:
    """a0..a5 -> b0..b5 -> gate -> c0..c5 -> d, with long tasks l0, l1 after a0 feeding d."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()
    marker = Path(log_path + ".gate")

    def note(what: str, tid: str) -> None:
        os.write(fd, f"{pid} {what} {tid}\n".encode())  # one write: survives SIGKILL

    def value(inputs):
        return sum(v["v"] if isinstance(v, dict) else 1 for v in inputs.values())

    async def a(ctx):
        note("start", ctx.task_id)
        i = int(ctx.task_id[1:])
        out = {"v": i * 10}
        if i == 3:
            out = (3, "three")  # pickled: JSON would give a list back
        if i == 4:
            out = Fraction(4, 7)  # pickled
        note("done", ctx.task_id)
        return out

    def b(ctx):  # sync: runs in the executor's threads
        note("start", ctx.task_id)
        out = {"v": value(ctx.inputs) + 1, "from": sorted(ctx.inputs)}
        note("done", ctx.task_id)
        return out

    async def block_in_kill_mode(ctx):
        note("start", ctx.task_id)
        if mode == "kill":
            if ctx.task_id == "gate":
                marker.write_text(str(pid))
            await asyncio.Event().wait()  # until SIGKILL
        out = {"v": value(ctx.inputs) + 100}
        note("done", ctx.task_id)
        return out

    async def c(ctx):
        note("start", ctx.task_id)
        out = {"v": value(ctx.inputs) * 2}
        note("done", ctx.task_id)
        return out

    tasks = [WorkflowTask(f"a{i}", "", ["w"], 0, 1.0, action=a) for i in range(6)]
    tasks += [WorkflowTask(f"b{i}", "", ["w"], 0, 1.0, [f"a{i}", f"a{(i + 1) % 6}"], action=b)
              for i in range(6)]
    tasks += [WorkflowTask(f"l{i}", "", ["w"], 5, 1.0, ["a0"], action=block_in_kill_mode)
              for i in range(2)]
    tasks.append(WorkflowTask("gate", "", ["w"], 0, 1.0, [f"b{i}" for i in range(6)],
                              action=block_in_kill_mode))
    tasks += [WorkflowTask(f"c{i}", "", ["w"], 0, 1.0, ["gate", f"b{i}"], action=c)
              for i in range(6)]
    tasks.append(WorkflowTask("d", "", ["w"], 0, 1.0, [f"c{i}" for i in range(6)] + ["l0", "l1"],
                              action=c))

    async def main() -> dict:
        orch = CollectiveAgentWorkflowOrchestrator(store=store, progress=False)
        for i in range(3):
            orch.register_agent(AgentProfile(f"ag{i}", "agent", ["w"], capacity=4))
        resumed: list[str] = []
        orch.subscribe(lambda e: resumed.extend(e.resumed) if isinstance(e, RunStarted) else None)
        await orch.create_workflow("dag", tasks)
        result = await orch.execute_workflow("dag", resume="latest" if mode == "resume" else None)
        orch.store.close()
        return {
            "run_id": result.run_id,
            "status": result.status,
            "resumed_event": sorted(resumed),
            "resumed_flags": sorted(t for t, r in result.task_results.items() if r["resumed"]),
            "results": {t: repr(v) for t, v in sorted(result.results().items())},
        }

    return asyncio.run(main())


def mapped(store: str, log_path: str, mode: str) -> dict:
    """items -> square (mapped over 10 items) -> total."""
    from wfkit import Workflow

    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()
    wf = Workflow("mapped")

    @wf.task(requires=["w"])
    def items(ctx):
        return list(range(10))

    @wf.task(requires=["w"], map=items)
    async def square(ctx):
        os.write(fd, f"{pid} start {ctx.task_id}\n".encode())
        if mode == "kill" and ctx.item >= 5:
            await asyncio.Event().wait()  # until SIGKILL
        os.write(fd, f"{pid} done {ctx.task_id}\n".encode())
        return ctx.item**2

    @wf.task(requires=["w"], after=[square])
    def total(ctx):
        return ctx.inputs["square"]

    async def main() -> dict:
        orch = CollectiveAgentWorkflowOrchestrator(store=store, progress=False)
        orch.register_agent(AgentProfile("ag", "agent", ["w"], capacity=10))
        await orch.create_workflow(wf)
        result = await orch.execute_workflow(
            "mapped", resume="latest" if mode == "resume" else None
        )
        orch.store.close()
        return {
            "run_id": result.run_id,
            "status": result.status,
            "total": result["task_results"]["total"]["result"],
            "resumed": sorted(t for t, r in result.task_results.items() if r["resumed"]),
        }

    return asyncio.run(main())


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "sweep":
        out = sweep(args[0], int(args[1]), int(args[2]), args[3])
    elif cmd == "dag":
        out = dag(*args)
    elif cmd == "map":
        out = mapped(*args)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    print(json.dumps(out))
