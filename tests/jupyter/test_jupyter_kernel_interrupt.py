"""In a real Jupyter kernel: top-level await works, and interrupting the kernel cancels a run
cleanly (tasks marked cancelled, loads back to 0, nothing left running)."""

import os
import time

import pytest

pytestmark = pytest.mark.slow  # a real Jupyter kernel

jupyter_client = pytest.importorskip("jupyter_client")

SETUP = """
import asyncio, wfkit
cleaned = []

async def slow(ctx):
    try:
        await asyncio.sleep(60)
    finally:
        cleaned.append(ctx.task.task_id)

orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
orch.register_agent(wfkit.AgentProfile("a", "A", ["work"], capacity=2, handler=slow))
tasks = [wfkit.WorkflowTask(f"t{i}", "", ["work"], 0, 1.0) for i in range(4)]
await orch.create_workflow("w", tasks)
print("ready")
"""

RUN = """
print("started", flush=True)
await orch.execute_workflow("w")
"""

CHECK = """
pending = [t for t in asyncio.all_tasks() if not t.done() and 'execute' in repr(t.get_coro())]
print(orch.workflows["w"]["status"], sorted(cleaned), orch.agents["a"].current_load,
      sorted({t.status for t in tasks}), len(pending))
"""


def _execute(kc, code, timeout=60):
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
            error = msg["content"]["ename"]
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    return "".join(out), error


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


def test_interrupt_cancels_the_run(kernel):
    km, kc = kernel
    out, error = _execute(kc, SETUP)
    assert error is None and "ready" in out
    msg_id = kc.execute(RUN)
    # wait until the run has started, then interrupt the kernel as the stop button does
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    time.sleep(0.5)
    km.interrupt_kernel()
    error = None
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            error = msg["content"]["ename"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert error in ("CancelledError", "KeyboardInterrupt")
    out, error = _execute(kc, CHECK)
    assert error is None
    assert out.split() == ["cancelled", "['t0',", "'t1']", "0", "['cancelled']", "0"]
