"""The run store file: what it records, how results are kept, and files it must not touch."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
import threading
from fractions import Fraction

import pandas as pd
import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    RunStore,
    StoreError,
    WorkflowTask,
)
from wfkit.metrics.store import APPLICATION_ID, SCHEMA_VERSION, ResultNotStoredWarning


def task(tid, deps=None, **kw):
    return WorkflowTask(tid, tid, ["w"], 0, 1.0, deps, **kw)


def orchestrator(store, agents=2, capacity=2):
    orch = CollectiveAgentWorkflowOrchestrator(store=store, progress=False)
    for i in range(agents):
        orch.register_agent(AgentProfile(f"ag{i}", "agent", ["w"], capacity=capacity))
    return orch


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_runs_attempts_and_results_are_stored_and_read_back_after_a_restart(tmp_path):
    path = tmp_path / "runs.db"
    calls = {"flaky": 0}

    def flaky(ctx):
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise ConnectionError("first try fails")
        return {"ok": True}

    async def broken(ctx):
        raise ValueError("bad input")

    orch = orchestrator(path)
    orch.backoff = 0.001
    await orch.create_workflow("wf", [
        task("a", action=lambda ctx: [1, 2.5, "x", None, {"k": [True]}]),
        task("b", ["a"], action=flaky, retries=1),
        task("c", ["a"], action=broken),
        task("d", ["c"], action=lambda ctx: 1),
    ])
    result = await orch.execute_workflow("wf")
    assert result.status == "failed"

    # A new process sees exactly what happened (a kernel restart).
    code = (
        "import sys, json; from wfkit import RunStore\n"
        "s = RunStore(sys.argv[1])\n"
        "w = s.workflow_frame(); t = s.task_frame()\n"
        "print(json.dumps([w[['status','total_tasks','successful_tasks','failed_tasks',"
        "'skipped_tasks']].astype(str).values.tolist(), "
        "t[['task_id','attempt','status','final']].astype(str).values.tolist()]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout
    runs, attempts = __import__("json").loads(out)
    assert runs == [["failed", "4", "2", "1", "1"]]
    assert sorted(attempts) == sorted([
        ["a", "1", "completed", "True"],
        ["b", "1", "failed", "False"],
        ["b", "2", "completed", "True"],
        ["c", "1", "failed", "True"],
        ["d", "0", "skipped", "True"],
    ])

    store = RunStore(path)
    frame = store.task_frame()
    assert list(frame.columns) == list(orch.store.task_frame().columns)
    assert str(frame["started_at"].dtype).startswith("datetime64") and frame["started_at"].dt.tz
    assert frame["attempt"].dtype == "Int64" and frame["final"].dtype == "boolean"
    b_failed = frame[(frame.task_id == "b") & (frame.attempt == 1)].iloc[0]
    assert b_failed["error"] == "ConnectionError: first try fails"
    skipped = frame[frame.task_id == "d"].iloc[0]
    assert pd.isna(skipped["started_at"]) and "'c'" in skipped["error"]
    # The recorded times are the engine's own.
    a_row = frame[frame.task_id == "a"].iloc[0]
    assert a_row["started_at"].timestamp() == pytest.approx(
        result.task_results["a"]["started_at"], abs=1e-6)
    assert a_row["duration"] == pytest.approx(
        (a_row["finished_at"] - a_row["started_at"]).total_seconds(), abs=1e-5)
    run = store.workflow_frame().iloc[0]
    assert run["run_id"] == result.run_id and run["participants"] >= 1
    assert set(run["participant_ids"]) == {r["agent_id"] for r in result.task_results.values()
                                           if r["agent_id"]}
    assert store.results(result.run_id) == {"a": [1, 2.5, "x", None, {"k": [True]}],
                                            "b": {"ok": True}}
    assert store.latest_run("wf") == result.run_id and store.latest_run("nope") is None
    store.close()
    orch.store.close()


async def test_results_keep_their_types_json_where_exact_pickle_otherwise(tmp_path):
    class Point:  # defined here: only pickle can keep it
        def __init__(self, x):
            self.x = x

        def __eq__(self, other):
            return isinstance(other, Point) and other.x == self.x

    values = {
        "none": None, "int": 7, "float": 0.1, "text": "é", "list": [1, [2]],
        "dict": {"a": {"b": None}}, "tuple": (1, 2), "set": {3, 4}, "intkeys": {1: "x"},
        "nan": float("nan"), "fraction": Fraction(1, 3), "bytes": b"\x00\x01",
        "big": list(range(10_000)),
    }
    orch = orchestrator(tmp_path / "r.db")
    tasks = [task(name, action=lambda ctx, v=v: v) for name, v in values.items()]
    await orch.create_workflow("types", tasks)
    run = await orch.execute_workflow("types")
    stored = orch.store.results(run.run_id)
    assert stored.keys() == values.keys()
    for name, value in values.items():
        if name == "nan":
            assert stored[name] != stored[name]
        else:
            assert stored[name] == value and type(stored[name]) is type(value), name
    raw = sqlite3.connect(tmp_path / "r.db")
    assert raw.execute("SELECT count(*) FROM pickles").fetchone()[0] == 6  # the non-JSON ones
    orch.store.close()


async def test_an_unstorable_result_warns_naming_the_task_and_does_not_fail_it(tmp_path):
    orch = orchestrator(tmp_path / "r.db")
    await orch.create_workflow("w", [task("lock", action=lambda ctx: threading.Lock()),
                                     task("after", ["lock"], action=lambda ctx: "fine")])
    with pytest.warns(ResultNotStoredWarning, match=r"task 'lock' .*not resumable"):
        result = await orch.execute_workflow("w")
    assert result.status == "completed"
    assert orch.store.results(result.run_id) == {"after": "fine"}
    orch.store.close()


async def test_a_dependent_starts_only_after_its_inputs_are_committed(tmp_path):
    path = tmp_path / "r.db"
    seen = {}

    async def parent(ctx):
        return {"from": ctx.task_id}

    def child(ctx):  # reads the file through its own connection, like another process would
        with RunStore(path) as other:
            seen[ctx.task_id] = set(other.results(ctx.run_id))
        return None

    orch = orchestrator(path, agents=1, capacity=4)
    await orch.create_workflow("w", [
        task("p1", action=parent), task("p2", action=parent),
        task("c1", ["p1"], action=child), task("c2", ["p1", "p2"], action=child),
    ])
    await orch.execute_workflow("w")
    assert {"p1"} <= seen["c1"] and {"p1", "p2"} <= seen["c2"]
    orch.store.close()


async def test_cancelling_a_run_stores_what_finished_and_marks_the_rest(tmp_path):
    orch = orchestrator(tmp_path / "r.db")
    started = asyncio.Event()

    async def hang(ctx):
        started.set()
        await asyncio.Event().wait()

    await orch.create_workflow("w", [task("done", action=lambda ctx: 1),
                                     task("hang", ["done"], action=hang),
                                     task("later", ["hang"], action=lambda ctx: 2)])
    run = asyncio.ensure_future(orch.execute_workflow("w"))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    store = orch.store
    assert store.workflow_frame()["status"].tolist() == ["cancelled"]
    statuses = dict(zip(store.task_frame()["task_id"], store.task_frame()["status"], strict=True))
    assert statuses == {"done": "completed", "hang": "cancelled", "later": "cancelled"}
    store.close()


def test_the_file_identifies_itself_and_carries_the_schema_version(tmp_path):
    path = tmp_path / "sub" / "dir" / "runs.db"  # missing directories are created
    RunStore(path).close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(raw.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["format"] == "wfkit run store"
    raw.close()
    with RunStore(path) as again:  # reopening an existing store
        assert again.workflow_frame().empty


def test_a_file_that_is_not_a_store_is_refused_and_left_unchanged(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n" * 100)
    before = digest(text)
    with pytest.raises(StoreError, match=r"notes\.txt: is not a wfkit run store \(not an SQLite"):
        RunStore(text)
    assert digest(text) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.execute("INSERT INTO customers VALUES (1)")
    con.commit()
    con.close()
    before = digest(other)
    with pytest.raises(StoreError, match=r"other\.sqlite: is an SQLite database but not a wfkit "
                                         r"run store .*customers.*left unchanged") as info:
        RunStore(other)
    assert info.value.path == other
    assert digest(other) == before


def test_a_corrupt_store_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, after the header
    path.write_bytes(bytes(data))
    for sidecar in ("-wal", "-shm"):
        (tmp_path / f"runs.db{sidecar}").unlink(missing_ok=True)
    before = digest(path)
    with pytest.raises(StoreError, match=r"runs\.db: .*corrupt"):
        RunStore(path)
    assert digest(path) == before


def test_a_store_from_a_newer_wfkit_is_refused(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match=r"newer wfkit \(store schema version 2.*upgrade wfkit"):
        RunStore(path)


def test_bad_paths_are_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        RunStore(tmp_path)
    with pytest.raises(StoreError, match="needs a file path"):
        RunStore("")
    store = RunStore(tmp_path / "x.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.workflow_frame()


def test_importing_the_store_does_not_import_pandas():
    code = ("import sys, wfkit.metrics, wfkit.metrics.store, wfkit.metrics.recorder\n"
            "assert 'pandas' not in sys.modules, 'pandas imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_crafted_history_row_cannot_run_code_when_read(tmp_path):
    import pickle

    path = tmp_path / "r.db"
    orch = orchestrator(path)
    await orch.create_workflow("w", [task("a", action=lambda ctx: 1)])
    run = await orch.execute_workflow("w")
    orch.store.close()

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO transitions VALUES (?, 0, ?)",
                (run.run_id, pickle.dumps([Exploit()])))
    raw.commit()
    raw.close()
    with RunStore(path) as store, pytest.raises(
        StoreError, match=r"task history is damaged or was not written by wfkit .*builtins.print"
    ):
        store.task_frame()
