"""What ``import wfkit`` costs, counted (not timed): code it generates, modules it loads.

Each check runs in a fresh interpreter, so what another test imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> object:
    """Run ``code`` in a fresh interpreter; it prints one JSON value as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# Counts the methods compiled for event classes: those dataclasses generates, or an event's
# __new__ (while a frame of wfkit/events.py is on the stack).
COUNT_EVENT_COMPILES = """
import json, os, sys
compiled = []
def hook(event, args):
    if event == "compile" and args[1] == "<string>":
        f, generated = sys._getframe(1), False
        while f is not None:
            path = f.f_code.co_filename.replace(os.sep, "/")
            generated = generated or path.endswith("/dataclasses.py") or (
                f.f_code.co_name == "_compile_new"
            )
            if path.endswith("/wfkit/events.py") and generated:
                compiled.append(1)
                break
            f = f.f_back
sys.addaudithook(hook)
"""


def test_importing_the_events_compiles_no_code():
    counts = run(COUNT_EVENT_COMPILES + """
import wfkit.events as e
at_import = len(compiled)
e.TaskStarted("r", 1.0, "w", "t", "a", 1)
first = len(compiled)
e.TaskStarted("r", 2.0, "w", "u", "a", 1)
e.TaskStarted(run_id="r", timestamp=3.0, workflow_id="w", task_id="v", agent_id="a", attempt=2)
print(json.dumps([at_import, first, len(compiled)]))
""")
    # nothing at import; a class compiles its __new__ once, when its first event is built
    assert counts == [0, 1, 1]


def test_a_run_without_subscribers_builds_no_events():
    counts = run(COUNT_EVENT_COMPILES + """
import asyncio, wfkit
async def main():
    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(wfkit.AgentProfile("a", "a", ["x"], capacity=2))
    wf = wfkit.Workflow("w")
    @wf.task(requires=["x"])
    async def one(ctx):
        return 1
    @wf.task(requires=["x"], after=[one])
    async def two(ctx):
        return ctx.inputs["one"] + 1
    result = await orch.execute_workflow(wf)
    return result["successful_tasks"]
done = asyncio.run(main())
print(json.dumps([done, len(compiled)]))
""")
    assert counts == [2, 0]


def test_events_behave_as_frozen_dataclasses():
    import dataclasses
    import pickle

    import pytest

    from wfkit.events import Event, TaskCompleted, TaskFailed, TaskStarted

    ev = TaskCompleted("r", 2.0, "w", "t", "a", 1, 1.5, {"big": "value"}, True)
    assert dataclasses.is_dataclass(ev) and isinstance(ev, Event)
    assert [f.name for f in dataclasses.fields(ev)][-3:] == ["started_at", "result", "cached"]
    assert TaskCompleted.__match_args__[:2] == ("run_id", "timestamp")
    assert repr(ev) == (
        "TaskCompleted(run_id='r', timestamp=2.0, workflow_id='w', task_id='t', agent_id='a', "
        "attempt=1, started_at=1.5, cached=True)"  # the result is not shown
    )
    failed = TaskFailed("r", 2.0, "w", "t", "a", 1, 1.5, "boom", True, "Traceback ...")
    assert "Traceback" not in repr(failed) and failed.where is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ev.cached
    with pytest.raises(dataclasses.FrozenInstanceError):
        failed.error = "other"
    copy = pickle.loads(pickle.dumps(failed))
    assert copy == failed and copy is not failed and hash(copy) == hash(failed)
    assert TaskStarted("r", 1.0, "w", "t", "a", 1) != Event("r", 1.0)
    assert dataclasses.replace(failed, final=False).final is False
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        TaskStarted("r", 1.0, "w", "t", "a", 1, nope=2)
    # built through a mutable twin of its class: what comes out is the frozen class itself
    started = TaskStarted("r", 1.0, "w", "t", "a", 1)
    assert type(started) is TaskStarted and TaskStarted("r", 1.0, "w", "t", "a", 1) == started
    with pytest.raises(dataclasses.FrozenInstanceError):
        started.task_id = "u"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del started.task_id

    class Tagged(TaskStarted):  # a plain subclass (it has a __dict__): built the slow way
        pass

    tagged = Tagged("r", 1.0, "w", "t", "a", 1)
    assert type(tagged) is Tagged and tagged.task_id == "t"
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagged.note = "x"


def test_import_wfkit_leaves_what_a_run_may_never_need_unloaded():
    loaded = run("""
import json, sys
import wfkit
print(json.dumps(sorted(sys.modules)))
""")
    # failures (tracebacks, redaction), retries (random), result keys (hashlib, pickle) and
    # run ids (uuid) load these when they happen
    for name in ("uuid", "random", "hashlib", "pickle", "urllib.parse", "sysconfig",
                 "wfkit.tracebacks", "wfkit.redaction"):
        assert name not in loaded, name
    assert "wfkit.cache" in loaded and "asyncio" in loaded


def test_a_plain_run_loads_no_module_that_import_wfkit_did_not():
    # A script's whole run pays for every module it loads: returning a result must not load
    # the WfFormat writer (pathlib, urllib, ipaddress, datetime come with it).
    new = run("""
import asyncio, json, sys
import wfkit
before = set(sys.modules)
async def work(ctx):
    return len(ctx.inputs)
async def main():
    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(wfkit.AgentProfile("a", "a", ["x"], capacity=2, handler=work))
    tasks = [wfkit.WorkflowTask("one", "one", ["x"], 0, 1.0),
             wfkit.WorkflowTask("two", "two", ["x"], 0, 1.0, ["one"])]
    await orch.create_workflow("w", tasks)
    result = await orch.execute_workflow("w")
    orch.close()
    return result
result = asyncio.run(main())
assert result["graph"] == {"one": [], "two": ["one"]}, result["graph"]
print(json.dumps(sorted(set(sys.modules) - before)))
""")
    assert new == []
