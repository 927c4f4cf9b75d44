"""The layers only look down: the library never needs the Jupyter layer or the application
layer to import or to run, and its packages import each other without cycles.

Views (reprs, progress bars, the dashboard, figures) are looked up when one is asked for, so
a script that runs workflows pays for none of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

VIEWS = ("wfkit.jupyter", "wfkit.app", "wfkit.plots", "ipywidgets", "plotly", "IPython")

_RUN_WITHOUT_VIEWS = textwrap.dedent(
    """
    import json, sys

    VIEWS = {views!r}

    def loaded():
        return sorted(m for m in sys.modules if m.split(".")[0] in VIEWS
                      or any(m == v or m.startswith(v + ".") for v in VIEWS))

    seen = {{}}
    import wfkit
    seen["import wfkit"] = loaded()

    from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow, run_sync

    wf = Workflow("layers")

    @wf.task(requires=["x"])
    def load(ctx):
        return [1, 2, 3]

    @wf.task(requires=["x"], after=[load])
    def total(ctx):
        return sum(ctx.inputs["load"])

    @wf.task(requires=["x"], after=[load], retries=1)
    def flaky(ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.0)
    orch.register_agent(AgentProfile("a", "A", ["x"], capacity=2))
    result = run_sync(orch.execute_workflow(wf))
    assert result["status"] == "completed", result
    assert result["task_results"]["total"]["result"] == 6
    assert result["task_results"]["flaky"]["attempts"] == 2
    orch.close()
    seen["run a workflow"] = loaded()

    sim = wfkit.simulate(wf.tasks, [AgentProfile("a", "A", ["x"], capacity=2)])
    assert sim.makespan > 0
    seen["simulate it"] = loaded()
    print(json.dumps(seen))
    """
)


def test_running_workflows_imports_no_view_layer():
    code = _RUN_WITHOUT_VIEWS.format(views=VIEWS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"import wfkit": [], "run a workflow": [], "simulate it": []}
