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
