"""The result cache: keys follow code, inputs, options and the parameters a task reads; runs
reuse, refresh or ignore it; it lives in memory or in the run store. Calls are counted."""

import collections
import warnings

import numpy as np
import pandas as pd
import pytest

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, ValidationError
from wfkit.cache import UncacheableWarning, function_digest, value_digest
from wfkit.events import TaskCompleted, TaskStarted

calls = collections.Counter()
FACTOR = 2


def helper(x):
    return x * FACTOR


def orchestrator(**kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, **kw)
    orch.register_agent(AgentProfile("a", "A", ["w"], capacity=2))
    return orch


def chain(cache=True):
    wf = wfkit.Workflow("c", cache=cache)

    @wf.task(requires=["w"])
    def a(ctx):
        calls["a"] += 1
        return 1

    @wf.task(requires=["w"], after=[a])
    def b(ctx):
        calls["b"] += 1
        return helper(ctx.inputs["a"])

    @wf.task(requires=["w"], after=[b])
    def c(ctx):
        calls["c"] += 1
        return ctx.inputs["b"] + 1

    @wf.task(requires=["w"], after=[a])
    def d(ctx):
        calls["d"] += 1
        return "side"

    return wf


async def run(orch, wf, **kw):
    calls.clear()
    result = await orch.execute_workflow(wf, **kw)
    assert result.status == "completed", result
    return result


async def test_nothing_changed_nothing_runs_and_the_results_say_cached():
    orch, wf = orchestrator(), chain()
    events = []
    orch.subscribe(events.append)
    first = await run(orch, wf)
    assert calls == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert not any(r["cached"] for r in first.task_results.values())
    events.clear()
    second = await run(orch, wf)
    assert calls == {}
    assert all(r["cached"] for r in second.task_results.values())
    assert second.results() == first.results()
    assert second.task_results["c"]["attempts"] == 0 and second.task_results["c"]["agent_id"] is None
    assert not [e for e in events if isinstance(e, TaskStarted)]
    done = [e for e in events if isinstance(e, TaskCompleted)]
    assert len(done) == 4 and all(e.cached and e.attempt == 0 for e in done)
    assert second.frame()["cached"].tolist() == [True] * 4
    frame = orch.cache.frame()
    assert list(frame.columns) == ["key", "task", "size", "created", "hits"]
    assert sorted(frame["task"]) == ["a", "b", "c", "d"] and frame["hits"].tolist() == [1] * 4
    assert (frame["size"] > 0).all()


async def test_a_changed_task_and_its_descendants_run_again():
    orch, wf = orchestrator(), chain()
    await run(orch, wf)

    @wf.task(requires=["w"], after=["a"])
    def b(ctx):  # redefined: other code
        calls["b"] += 1
        return helper(ctx.inputs["a"]) + 100

    result = await run(orch, wf)
    assert calls == {"b": 1, "c": 1}
    assert result.task_results["c"]["result"] == 103
    assert [t for t, r in result.task_results.items() if r["cached"]] == ["a", "d"]


async def test_a_changed_helper_or_global_value_reruns_the_tasks_that_use_it(monkeypatch):
    orch, wf = orchestrator(), chain()
    await run(orch, wf)
    monkeypatch.setitem(globals(), "FACTOR", 3)  # a module constant the helper reads
    result = await run(orch, wf)
    assert calls == {"b": 1, "c": 1} and result.task_results["c"]["result"] == 4
    monkeypatch.setitem(globals(), "helper", lambda x: x * 10)  # the helper redefined
    result = await run(orch, wf)
    assert calls == {"b": 1, "c": 1} and result.task_results["c"]["result"] == 11


async def test_cache_modes_refresh_and_off():
    orch, wf = orchestrator(), chain()
    await run(orch, wf)
    await run(orch, wf, cache="refresh")
    assert calls == {"a": 1, "b": 1, "c": 1, "d": 1}
    await run(orch, wf)
    assert calls == {}
    result = await run(orch, wf, cache="off")
    assert calls == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert not any(r["cached"] for r in result.task_results.values())
    with pytest.raises(ValidationError, match="cache='maybe'.*'use', 'refresh', 'off'"):
        await orch.execute_workflow(wf, cache="maybe")


async def test_only_cacheable_tasks_are_cached_and_cache_false_opts_out():
    orch = orchestrator()
    wf = wfkit.Workflow("opt")

    @wf.task(requires=["w"], cache=True)
    def kept(ctx):
        calls["kept"] += 1
        return 1

    @wf.task(requires=["w"], after=[kept])
    def plain(ctx):  # the workflow's default: not cached
        calls["plain"] += 1
        return ctx.inputs["kept"]

    await run(orch, wf)
    await run(orch, wf)
    assert calls == {"plain": 1}
    assert len(orch.cache.frame()) == 1

    cached_wf = wfkit.Workflow("opt2", cache=True)
    cached_wf.task(requires=["w"], cache=False, task_id="never")(lambda ctx: calls.update(["n"]))
    await run(orch, cached_wf)
    await run(orch, cached_wf)
    assert calls == {"n": 1}


async def test_cache_version_key_and_expiry(monkeypatch):
    orch = orchestrator()
    wf = wfkit.Workflow("v", cache=True)
    source = {"etag": "1"}

    @wf.task(requires=["w"], cache_version="1")
    def versioned(ctx):
        calls["versioned"] += 1

    @wf.task(requires=["w"], cache_key=lambda ctx: source["etag"])
    def keyed(ctx):
        calls["keyed"] += 1

    @wf.task(requires=["w"], cache_expires=60)
    def expiring(ctx):
        calls["expiring"] += 1

    await run(orch, wf)
    await run(orch, wf)
    assert calls == {}
    wf.task(requires=["w"], cache_version="2", task_id="versioned")(versioned.fn)
    source["etag"] = "2"
    now = [wfkit.cache.time.time() + 61]  # a minute later
    monkeypatch.setattr(wfkit.cache.time, "time", lambda: now[0])
    await run(orch, wf)
    assert calls == {"versioned": 1, "keyed": 1, "expiring": 1}


async def test_inputs_are_hashed_by_value_when_upstream_is_not_cached():
    orch = orchestrator()
    wf = wfkit.Workflow("df")
    data = {"n": 3}

    @wf.task(requires=["w"])  # not cached: runs each time; its value keys the next task
    def frame(ctx):
        return pd.DataFrame({"x": np.arange(data["n"]), "y": ["a"] * data["n"]})

    @wf.task(requires=["w"], after=[frame], cache=True)
    def total(ctx):
        calls["total"] += 1
        return int(ctx.inputs["frame"]["x"].sum())

    await run(orch, wf)
    await run(orch, wf)
    assert calls == {}
    data["n"] = 4
    result = await run(orch, wf)
    assert calls == {"total": 1} and result.task_results["total"]["result"] == 6


async def test_an_unhashable_input_makes_the_task_uncacheable_with_one_warning():
    import threading

    orch = orchestrator()
    wf = wfkit.Workflow("u")

    @wf.task(requires=["w"])
    def lock(ctx):
        return threading.Lock()

    @wf.task(requires=["w"], after=[lock], cache=True)
    def use(ctx):
        calls["use"] += 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await run(orch, wf)
        result = await run(orch, wf)
    assert calls == {"use": 1} and not result.task_results["use"]["cached"]
    msgs = [str(w.message) for w in caught if w.category is UncacheableWarning]
    assert len(msgs) == 2 and "\n" not in msgs[0]
    assert msgs[0].startswith("task 'use' is not cached in this run: its input 'lock' is a lock")


async def test_the_parameters_a_task_reads_are_in_its_key():
    orch = orchestrator()
    wf = wfkit.Workflow("p", cache=True, params={"year": 2007, "unit": "k"})

    @wf.task(requires=["w"])
    def reads_year(ctx):
        calls["reads_year"] += 1
        return ctx.params["year"]

    @wf.task(requires=["w"])
    def reads_nothing(ctx):
        calls["reads_nothing"] += 1
        return 0

    await run(orch, wf)
    await run(orch, wf, params={"unit": "m"})  # not read by anyone: nothing runs
    assert calls == {}
    result = await run(orch, wf, params={"year": 2010})
    assert calls == {"reads_year": 1} and result.task_results["reads_year"]["result"] == 2010
    result = await run(orch, wf)  # back to 2007: that entry is still there
    assert calls == {} and result.task_results["reads_year"]["result"] == 2007


async def test_a_store_keeps_the_cache_for_another_orchestrator_and_clear_empties_it(tmp_path):
    path = tmp_path / "runs.db"
    first = orchestrator(store=path)
    await run(first, chain())
    first.close()
    second = orchestrator(store=path)
    result = await run(second, chain())
    assert calls == {} and all(r["cached"] for r in result.task_results.values())
    frame = second.cache.frame()
    assert sorted(frame["task"]) == ["a", "b", "c", "d"] and frame["hits"].tolist() == [1] * 4
    tasks = second.store.task_frame(run_id=result.run_id)
    assert tasks["cached"].tolist() == [True] * 4 and (tasks["attempt"] == 0).all()
    assert second.cache.clear() == 4 and len(second.cache.frame()) == 0
    await run(second, chain())
    assert calls == {"a": 1, "b": 1, "c": 1, "d": 1}
    second.close()


async def test_the_store_keeps_each_failed_tasks_traceback(tmp_path):
    orch = orchestrator(store=tmp_path / "runs.db")
    wf = wfkit.Workflow("f")

    @wf.task(requires=["w"])
    def broken(ctx):
        return {}["missing"]

    result = await orch.execute_workflow(wf)
    tb = result.task_results["broken"]["traceback"]
    assert "KeyError: 'missing'" in tb
    orch.close()
    with wfkit.RunStore(tmp_path / "runs.db") as store:
        assert store.tracebacks(result.run_id) == {"broken": tb}


def test_digests_ignore_where_code_is_and_follow_what_it_does():
    src = "def f(x, y=2):\n    return helper(x) + y + {0}\n"
    env: dict = {"helper": helper, "__name__": __name__}
    exec(compile(src.format(1), "cell-1.py", "exec"), env)
    f1 = env["f"]
    exec(compile("\n\n" + src.format(1), "cell-2.py", "exec"), env)  # moved, other file
    f2 = env["f"]
    exec(compile(src.format(5), "cell-3.py", "exec"), env)
    f3 = env["f"]
    assert function_digest(f1) == function_digest(f2) != function_digest(f3)
    assert value_digest(np.arange(3)) == value_digest(np.arange(3)) != value_digest(np.arange(4))
    df = pd.DataFrame({"a": [1, 2]})
    assert value_digest(df) == value_digest(df.copy()) != value_digest(df.rename(columns={"a": "b"}))


async def test_a_store_that_refuses_pickles_caches_json_results_only(tmp_path):
    store = wfkit.RunStore(tmp_path / "runs.db", json_only_results=True)
    orch = orchestrator(store=store)
    wf = wfkit.Workflow("j", cache=True)

    @wf.task(requires=["w"])
    def as_json(ctx):
        calls["as_json"] += 1
        return [1, 2]

    @wf.task(requires=["w"])
    def as_tuple(ctx):  # JSON would give a list back: it needs pickle
        calls["as_tuple"] += 1
        return (1, 2)

    await run(orch, wf)
    result = await run(orch, wf)
    assert calls == {"as_tuple": 1} and result.task_results["as_json"]["cached"]
    assert orch.cache.frame()["task"].tolist() == ["as_json"]
    store.close()


async def test_a_failing_cache_key_makes_the_task_uncacheable_with_a_warning():
    orch = orchestrator()
    wf = wfkit.Workflow("k", cache=True)

    @wf.task(requires=["w"], cache_key=lambda ctx: 1 / 0)
    def keyed(ctx):
        calls["keyed"] += 1

    with pytest.warns(UncacheableWarning, match="'keyed' is not cached in this run: its "
                                                "cache_key raised ZeroDivisionError"):
        await run(orch, wf)
        await run(orch, wf)
    assert calls == {"keyed": 1}


def scaled(ctx, factor):
    calls[f"scaled x{factor}"] += 1
    return factor


async def test_arguments_bound_to_the_action_are_in_its_key():
    import functools

    orch = orchestrator()

    def build(factor):
        wf = wfkit.Workflow("args", cache=True)  # what a spec's args: builds
        wf.add(wfkit.WorkflowTask("s", "", ["w"], 0, 1.0,
                                  action=functools.partial(scaled, factor=factor)))
        return wf

    await run(orch, build(2))
    await run(orch, build(2))
    assert calls == {}
    result = await run(orch, build(3))
    assert calls == {"scaled x3": 1} and result.task_results["s"]["result"] == 3


async def test_a_task_that_changes_its_input_in_place_does_not_change_the_cached_result():
    orch = orchestrator()
    wf = wfkit.Workflow("m")

    @wf.task(requires=["w"], cache=True)
    def rows(ctx):
        calls["rows"] += 1
        return pd.DataFrame({"x": [1.0, None, 3.0]})

    @wf.task(requires=["w"], after=[rows])  # not cached: runs each time, edits in place
    def clean(ctx):
        df = ctx.inputs["rows"]
        missing = int(df["x"].isna().sum())
        df["x"] = df["x"].fillna(0.0)  # changes the frame it was given
        return missing

    first = await run(orch, wf)
    second = await run(orch, wf)
    assert calls == {} and second.task_results["rows"]["cached"]
    assert first.task_results["clean"]["result"] == second.task_results["clean"]["result"] == 1


def test_base_keys_are_the_digest_of_their_parts_in_any_thread():
    """A key is the 16-byte blake2b of its parts (code digest, task id, 0xFF, the inputs' raw
    keys), whatever thread makes it: stored entries keep matching, and the hash object the
    keys are copied from is never changed by making one."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from wfkit.cache import KeyMaker

    task = wfkit.WorkflowTask("t", "t", ["w"], 0, 1.0, ["u"], action=helper)
    code = bytes.fromhex(function_digest(helper))
    upstream = bytes(range(16))
    expected = hashlib.blake2b(code + b"t\xff" + upstream, digest_size=16).digest()

    def key(_):
        return KeyMaker({}).key(task, helper, {"u": upstream}, {})

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(key, range(200))) == {expected}
    assert key(0) == expected
    assert KeyMaker({}).base_key(task, helper, {"u": upstream.hex()}, {}) == expected.hex()


def test_a_keys_parts_cannot_be_mistaken_for_each_other():
    """The task id ends at a byte UTF-8 never has, options are length-prefixed and inputs'
    keys have a fixed width: an id, a version, a map index or an input cannot pass for
    another part, so different tasks never share a key."""
    from wfkit.cache import KeyMaker

    up = bytes(16)

    def key(tid, deps=(), **kw):
        task = wfkit.WorkflowTask(tid, "d", ["w"], 0, 1.0, list(deps), action=helper, **kw)
        return KeyMaker({}).key(task, helper, {"u": up, "v": up}, {})

    keys = [
        key("t"), key("t", ["u"]), key("t", ["u", "v"]), key("t" + up.decode()),
        key("t", cache_version=2), key("t", cache_version="2"), key("tv2"),
        key("t\x01v2"), key("t", ["u"], cache_version=2),
    ]
    assert len(set(keys)) == len(keys) and all(len(k) == 16 for k in keys)
    mapped = wfkit.WorkflowTask("m[0]", "d", ["w"], 0, 1.0, [], action=helper)
    mapped.map_index = 0
    assert KeyMaker({}).key(mapped, helper, {}, {}) != key("m[0]")
    handled = wfkit.WorkflowTask("h", "d", ["w"], 0, 1.0, [])
    other = wfkit.WorkflowTask("h", "e", ["w"], 0, 1.0, [])
    assert KeyMaker({}).key(handled, helper, {}, {}) != KeyMaker({}).key(other, helper, {}, {})


async def test_entries_stored_under_keys_of_the_older_layout_are_never_hit(tmp_path):
    """A store written before keys were hashed from raw parts holds hex-joined keys: a run
    does not find them (its tasks run once more, nothing stale comes back) and keeps its
    results under the current keys, which the next run finds."""
    import hashlib
    import sqlite3

    path = tmp_path / "runs.db"
    first = orchestrator(store=path)
    await run(first, chain())
    first.close()
    wf = chain()
    old: dict[str, str] = {}
    for task in wf.tasks:  # the older layout: hex keys of the inputs, code, id joined by \x01
        parts = [old[d] for d in task.dependencies] + [function_digest(task.action), task.task_id]
        old[task.task_id] = hashlib.blake2b("\x01".join(parts).encode(), digest_size=16).hexdigest()
    con = sqlite3.connect(path)
    with con:
        for tid, key in old.items():
            con.execute("UPDATE cache SET key = ?, base = ?, data = ? WHERE task_id = ?",
                        (key, key, "999", tid))
    con.close()
    second = orchestrator(store=path)
    result = await run(second, chain())
    assert calls == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert not any(r["cached"] for r in result.task_results.values())
    assert result.task_results["c"]["result"] == 3
    again = await run(second, chain())
    assert calls == {} and again.task_results["c"]["result"] == 3
    frame = second.cache.frame()
    assert set(old.values()) <= set(frame["key"]) and len(frame) == 8
    second.close()


async def test_memory_entries_report_their_size_and_hits_and_give_private_copies():
    """In memory a plain value is kept as it is and a frame as a pickle (its size is the
    pickle's); each hit counts and gets its own copy."""
    import pickle
    import sys

    wf = wfkit.Workflow("sizes", cache=True)
    frame = pd.DataFrame({"x": [1.0, 2.0]})

    @wf.task(requires=["w"])
    def number(ctx):
        return 12345

    @wf.task(requires=["w"])
    def table(ctx):
        return frame.copy()

    orch = orchestrator()
    await run(orch, wf)
    hits = [await run(orch, wf) for _ in range(2)]
    got = orch.cache.frame().set_index("task")
    assert got.loc["number", "size"] == sys.getsizeof(12345)
    pickled = len(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
    assert got.loc["table", "size"] == pickled
    assert got["hits"].tolist() == [2, 2]
    a, b = (r.task_results["table"]["result"] for r in hits)
    assert a is not b and a.equals(frame) and b.equals(frame)
    assert all(len(k) == 32 for k in got["key"])
