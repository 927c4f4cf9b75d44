"""run_sync works in a plain script and inside a running event loop (a notebook cell)."""

import asyncio
import subprocess
import sys
import textwrap

import wfkit


async def answer():
    await asyncio.sleep(0)
    return 42


def test_run_sync_without_a_loop():
    assert wfkit.run_sync(answer()) == 42


async def test_run_sync_inside_a_running_loop():
    # what a notebook cell does when it calls sync code that calls run_sync
    assert wfkit.run_sync(answer()) == 42


def test_a_script_runs_a_workflow_with_run_sync():
    script = textwrap.dedent(
        """
        import wfkit
        wf = wfkit.Workflow("s")

        @wf.task(requires=["x"])
        def a(ctx):
            return 1

        @wf.task(requires=["x"], after=[a])
        async def b(ctx):
            return ctx.inputs["a"] + 1

        orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
        orch.register_agent(wfkit.AgentProfile("x", "X", ["x"]))
        wfkit.run_sync(orch.create_workflow(wf))
        print(wfkit.run_sync(orch.execute_workflow("s"))["task_results"]["b"]["result"])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "2"


def test_import_is_light():
    code = ("import sys, wfkit; heavy = [m for m in ('pandas', 'plotly', 'ipywidgets', "
            "'sqlalchemy', 'dask', 'networkx', 'httpx') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_in_a_script_cancels_cleanly_and_stays_a_keyboard_interrupt():
    import signal

    script = textwrap.dedent(
        """
        import asyncio, sys, wfkit
        cleaned = []

        async def slow(ctx):
            try:
                print("started", flush=True)
                await asyncio.sleep(60)
            finally:
                cleaned.append(ctx.task.task_id)

        orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
        orch.register_agent(wfkit.AgentProfile("a", "A", ["w"], capacity=2, handler=slow))
        wfkit.run_sync(orch.create_workflow(
            "w", [wfkit.WorkflowTask(f"t{i}", "", ["w"], 0, 1.0) for i in range(3)]))
        try:
            wfkit.run_sync(orch.execute_workflow("w"))
        except KeyboardInterrupt:
            print("interrupted", orch.workflows["w"]["status"], sorted(cleaned),
                  orch.agents["a"].current_load, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert "interrupted cancelled ['t0', 't1'] 0" in out
