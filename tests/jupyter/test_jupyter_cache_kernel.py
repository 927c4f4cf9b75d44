"""The notebook loop in a real Jupyter kernel: edit one task's cell and re-run, and exactly that
task and its descendants run again; change nothing, and nothing runs; restart the kernel with
a run store, and nothing runs either. Calls are counted by the tasks themselves."""

import json
import os
import time

import pytest

pytestmark = pytest.mark.slow  # a real Jupyter kernel

jupyter_client = pytest.importorskip("jupyter_client")

DEFINE = """
import collections, wfkit
calls = collections.Counter()
wf = wfkit.Workflow("sales", cache=True)

def rows():
    return [{"month": m, "revenue": 10 * m, "cost": 3 * m} for m in range(1, 13)]

@wf.task(requires=["w"])
def load(ctx):
    calls["load"] += 1
    return rows()

@wf.task(requires=["w"], after=[load])
def clean(ctx):
    calls["clean"] += 1
    return [r for r in ctx.inputs["load"] if r["revenue"] > 0]

@wf.task(requires=["w"], after=[clean])
def margin(ctx):
    calls["margin"] += 1
    return [r["revenue"] - r["cost"] for r in ctx.inputs["clean"]]

@wf.task(requires=["w"], after=[clean])
def growth(ctx):
    calls["growth"] += 1
    rev = [r["revenue"] for r in ctx.inputs["clean"]]
    return [b - a for a, b in zip(rev, rev[1:])]

@wf.task(requires=["w"], after=[load])
def months(ctx):
    calls["months"] += 1
    return len(ctx.inputs["load"])

@wf.task(requires=["w"], after=[margin, growth])
def report(ctx):
    calls["report"] += 1
    return {"margin": sum(ctx.inputs["margin"]), "growth": sum(ctx.inputs["growth"])}

orch = wfkit.CollectiveAgentWorkflowOrchestrator(store=STORE, progress=False)
orch.register_agent(wfkit.AgentProfile("a", "A", ["w"], capacity=2))
print("defined")
"""

EDIT_CLEAN = """
@wf.task(requires=["w"], after=[load])
def clean(ctx):
    calls["clean"] += 1
    return [r for r in ctx.inputs["load"] if r["revenue"] > 30]   # the edit
print("edited")
"""

RUN = """
calls.clear()
result = await orch.execute_workflow(wf)
print(json.dumps({"status": result["status"], "ran": dict(sorted(calls.items())),
                  "cached": sorted(t for t, r in result["task_results"].items() if r["cached"]),
                  "report": result["task_results"]["report"]["result"]}))
"""


def _execute(kc, code, timeout=120):
    msg_id = kc.execute(code)
    out, error = [], None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert error is None, error
    return "".join(out)


def _run(kc):
    out = _execute(kc, RUN)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def kernel(tmp_path):
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(tmp_path / var.lower())
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.timeout(300)
def test_edit_rerun_and_restart_run_exactly_what_changed(kernel, tmp_path):
    km, kc = kernel
    define = f"import json\nSTORE = {str(tmp_path / 'runs.db')!r}\n" + DEFINE
    assert "defined" in _execute(kc, define)
    everything = ["clean", "growth", "load", "margin", "months", "report"]

    first = _run(kc)
    assert first["status"] == "completed"
    assert first["ran"] == dict.fromkeys(everything, 1) and first["cached"] == []

    again = _run(kc)  # nothing changed: nothing runs
    assert again["ran"] == {} and again["cached"] == everything
    assert again["report"] == first["report"]

    assert "edited" in _execute(kc, EDIT_CLEAN)  # one task's cell, edited and re-run
    edited = _run(kc)
    assert edited["ran"] == dict.fromkeys(["clean", "growth", "margin", "report"], 1)
    assert edited["cached"] == ["load", "months"]  # upstream and the other branch
    assert edited["report"] != first["report"]

    assert _run(kc)["ran"] == {}

    km.restart_kernel(now=True)  # a new process: only the store's file remembers
    kc.wait_for_ready(timeout=60)
    assert "defined" in _execute(kc, define)
    assert "edited" in _execute(kc, EDIT_CLEAN)
    restarted = _run(kc)
    assert restarted["ran"] == {} and restarted["cached"] == everything
    assert restarted["report"] == edited["report"]
