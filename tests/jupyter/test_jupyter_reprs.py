"""Notebook manners: Workflow, RunResult and the agents registry render themselves.

Checked through IPython's own display machinery (what a notebook cell calls), with a
plain-text fallback for logs and papermill.
"""

from __future__ import annotations

import json

import pytest
from IPython.core.formatters import DisplayFormatter
from IPython.lib.pretty import pretty

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow
from wfkit.agents.registry import AgentRegistry

PLOTLY = "application/vnd.plotly.v1+json"


def show(obj):
    data, _ = DisplayFormatter().format(obj)
    return data


def build() -> Workflow:
    wf = Workflow("shop<&>")

    @wf.task(requires=["analysis"], estimate=2)
    def fetch(ctx):
        """Fetch the <orders>."""
        return [1, 2]

    @wf.task(requires=["analysis"], after=[fetch])
    def check(ctx):
        raise RuntimeError("total is <wrong> & late")

    @wf.task(requires=["generation"], after=[check])
    def publish(ctx):
        return "ok"

    return wf


async def ran():
    wf = build()
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("ana", "Ana <lyst>", ["analysis"], capacity=2))
    orch.register_agent(AgentProfile("gen", "Gen", ["generation"], availability=False))
    orch.register_agent(AgentProfile("gen2", "Gen 2", ["generation"]))
    await orch.create_workflow(wf)
    return wf, orch, await orch.execute_workflow(wf.workflow_id)


def test_a_workflow_renders_its_dag_a_table_and_text():
    wf = build()
    data = show(wf)
    assert set(data) >= {PLOTLY, "text/html", "text/plain"}
    fig = data[PLOTLY]
    nodes = next(t for t in fig["data"] if t.get("name") == "tasks")
    assert set(nodes["customdata"]) == {"fetch", "check", "publish"}
    json.dumps(fig)  # what the frontend receives is plain JSON
    assert data["text/plain"] == "<Workflow 'shop<&>': 3 tasks, 2 dependencies>"
    html = data["text/html"]
    assert "shop&lt;&amp;&gt;" in html and "Fetch the &lt;orders&gt;." in html
    assert "critical path" in html and "fetch → check → publish" in html
    # include / exclude are honoured
    assert set(wf._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert PLOTLY not in wf._repr_mimebundle_(exclude=[PLOTLY])


def test_a_large_workflow_renders_a_table_not_a_figure(monkeypatch):
    from wfkit.jupyter import reprs

    monkeypatch.setattr(reprs, "INLINE_DAG_TASKS", 2)
    data = show(build())
    assert PLOTLY not in data and "<table" in data["text/html"]
    empty = show(Workflow("empty"))
    assert PLOTLY not in empty and "0 tasks" in empty["text/html"]


def test_a_long_workflow_table_says_what_it_leaves_out(monkeypatch):
    wf = Workflow("long")
    for i in range(60):
        wf.task(lambda ctx: None, task_id=f"t{i}", requires=["x"])
    assert "… and 10 more tasks not shown" in show(wf)["text/html"]


async def test_a_run_result_renders_a_table_with_problems_first():
    _, _, result = await ran()
    data = show(result)
    assert data["text/plain"] == repr(result)
    html = data["text/html"]
    assert "wfkit-run-result" in html and result["run_id"] in html
    assert "1/3 tasks completed (33%)" in html
    # failed first, then skipped, then completed; errors escaped
    assert html.index("<code>check</code>") < html.index("<code>publish</code>") < html.index(
        "<code>fetch</code>")
    assert "RuntimeError: total is &lt;wrong&gt; &amp; late" in html
    assert "dependency &#x27;check&#x27; failed" in html
    assert "<wrong>" not in html


async def test_the_agents_registry_renders_a_table_and_stays_a_dict():
    _, orch, _ = await ran()
    assert isinstance(orch.agents, AgentRegistry) and isinstance(orch.agents, dict)
    assert list(orch.agents) == ["ana", "gen", "gen2"]
    data = show(orch.agents)
    html = data["text/html"]
    assert "wfkit-agents" in html and "Ana &lt;lyst&gt;" in html and "3 agents" in html
    text = data["text/plain"]
    assert text == pretty(orch.agents)
    lines = text.splitlines()
    assert lines[0].split() == ["agent", "name", "capabilities", "capacity", "running",
                                "available", "completed", "failed", "success", "avg", "time"]
    ana = next(line for line in lines if line.startswith("ana "))
    assert "0/2" in ana and "yes" in ana and " 50% " in ana  # one completed, one failed
    gen = next(line for line in lines if line.startswith("gen "))
    assert " no " in gen
    assert pretty(AgentRegistry()) == "no agents registered"
    assert repr(orch.agents).startswith("{'ana': AgentProfile(")  # code still sees a dict


@pytest.mark.parametrize("obj", [Workflow("w"), wfkit.RunResult(task_results={})])
def test_reprs_never_fail_on_sparse_objects(obj):
    data = show(obj)
    assert "text/plain" in data and "text/html" in data


async def test_a_failed_task_shows_the_users_line_and_folds_the_traceback():
    import inspect

    _, _, result = await ran()
    html = show(result)["text/html"]
    line = next(i for i, ln in enumerate(inspect.getsource(build).splitlines())
                if "total is <wrong>" in ln) + inspect.getsourcelines(build)[1]
    assert "class='wfkit-where'" in html
    assert f"test_jupyter_reprs.py:{line}</code> in <code>check</code>" in html
    assert "raise RuntimeError(&quot;total is &lt;wrong&gt; &amp; late&quot;)" in html
    assert "<details class='wfkit-traceback'>" in html and "Traceback (most recent" in html
    assert "wfkit/agents/engine.py" in html  # the full traceback stays, folded away
    assert html.count("class='wfkit-where'") == 1  # only the failed task, not the skipped one
