"""Damaged and crafted run stores (real SQLite files, changed with the sqlite3 module): every
reader and every resume ends with a StoreError naming the file (exit 2 from the command), never
a traceback or a hang, and nothing is written to the file."""

from __future__ import annotations

import math
import pickle
import shutil
import sqlite3
import sys
import threading
import warnings
from pathlib import Path

import pytest
from store_faults_support import PICKLING_SPEC, digest, spec_folder, wfkit

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    RunStore,
    StoreError,
    WorkflowTask,
)
from wfkit.app.cli import main
from wfkit.metrics import decode
from wfkit.metrics.store import PickledResultsWarning, ResultNotStoredWarning


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """A spec and a store holding one completed run of it (copied by each test)."""
    folder = tmp_path_factory.mktemp("base")
    spec = spec_folder(folder)
    db = folder / "runs.db"
    assert main(["run", str(spec), "--store", str(db), "--no-progress"]) == 0
    return spec, db


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def bomb(levels: int) -> list:
    """A list whose ``levels`` levels each hold the level below twice: 2**levels leaves."""
    value: list = [1]
    for _ in range(levels):
        value = [value, value]
    return value


def row(run_id, **changes):
    fields = dict(run_id=run_id, task_id="load", attempt=1, agent_id="a", status="completed",
                  started_at=1.0, finished_at=2.0, error=None, final=1, encoding="json",
                  result=[1])
    fields.update(changes)
    return tuple(fields.values())


def blob(rows) -> bytes:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # to write the 5,000-deep value the reader must refuse
    try:
        return pickle.dumps(rows, protocol=5)
    finally:
        sys.setrecursionlimit(limit)


def history(make):
    """A craft that appends one transitions row, ``make(run_id)`` giving its blob."""
    def craft(con, run_id):
        con.execute("INSERT INTO transitions VALUES (?, 0, ?)", (run_id, make(run_id)))
    return craft


def runs_column(column, value):
    def craft(con, run_id):
        con.execute(f"UPDATE runs SET {column} = ?", (value,))
    return craft


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def cyclic(run_id):
    looped: list = []
    looped.append(looped)
    return pickle.dumps([row(run_id, result=looped)])


# name -> (craft, which commands must refuse it, what the message says)
CRAFTS = {
    "text timestamp in runs": (runs_column("started_at", "yesterday"), "both",
                               "started_at of run .* not a time"),
    "text finish time in runs": (runs_column("finished_at", "2024-01-01"), "both",
                                 "finished_at of run .* not a time"),
    "participants not JSON": (runs_column("participants", "nope"), "both",
                              "participants of run .* not valid JSON"),
    "agents of the wrong shape": (runs_column("agents", "[1]"), "both",
                                  "agents of run .* not a list of \\[agent id, capacity\\]"),
    "count that is text": (runs_column("total_tasks", "x"), "both",
                           "total_tasks of run .* not a whole number"),
    "pid past any process": (runs_column("pid", 2**40), "both", "pid of run"),
    "params not JSON": (runs_column("params", "{oops"), "both", "params of run"),
    "5,000-deep graph": (runs_column("graph", "[" * 5000 + "]" * 5000), "both",
                         "graph of run .* not valid JSON"),
    "graph of the wrong shape": (runs_column("graph", '{"load": 3}'), "both",
                                 "graph of run .* not a mapping of task ids"),
    "history row that is text": (history(lambda r: "hello"), "both", "str, not a pickled list"),
    "history that is not a list": (history(lambda r: pickle.dumps(5)), "both",
                                   "is 5, not a list of attempt states"),
    "history row too short": (history(lambda r: pickle.dumps([(r, "load")])), "both",
                              "not an attempt state of 11 values"),
    "history truncated": (history(lambda r: pickle.dumps([row(r)])[:-7]), "both",
                          "does not load"),
    "history naming a class": (history(lambda r: pickle.dumps([Exploit()])), "both",
                               "builtins.print"),
    "text timestamp in history": (history(lambda r: blob([row(r, started_at="noon")])), "both",
                                  "started_at is 'noon', not a time"),
    "infinite timestamp in history": (
        history(lambda r: blob([row(r, finished_at=math.inf)])), "both", "finished_at is inf"),
    "attempt past Int64": (history(lambda r: blob([row(r, attempt=2**70)])), "both",
                           "attempt is .* not a whole number"),
    "status that is a number": (history(lambda r: blob([row(r, status=3)])), "both",
                                "status is 3, not text"),
    "attempt of another run": (history(lambda r: blob([row("someone-else")])), "both",
                               "holds an attempt of run 'someone-else'"),
    # results are read (and checked) only by readers that return them: resume, results()
    "result that is a set": (history(lambda r: blob([row(r, result={1, 2})])), "resume",
                             "result holds a set"),
    "result with an int too long to print": (
        history(lambda r: blob([row(r, result=[10**5000])])), "resume", "an integer of"),
    "5,000-deep result": (history(lambda r: blob([row(r, result=deep_list(5000))])), "resume",
                          "result is nested more than 200 deep"),
    "result that contains itself": (history(cyclic), "resume", "result contains itself"),
    "2**40-leaf result in a small blob": (history(lambda r: blob([row(r, result=bomb(40))])),
                                          "resume", "result would expand to more than"),
    "execution that is text": (lambda con, r: con.execute(
        "INSERT INTO transitions VALUES (?, 'x', ?)", (r, blob([row(r)]))), "both",
        "execution number is 'x'"),
}


@pytest.mark.parametrize("name", CRAFTS)
def test_a_crafted_store_is_refused_by_every_reader_and_left_unchanged(name, base, tmp_path,
                                                                      capsys):
    spec, original = base
    craft, refused_by, message = CRAFTS[name]
    db = tmp_path / "runs.db"
    shutil.copy(original, db)
    con = sqlite3.connect(db)
    run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
    craft(con, run_id)
    con.commit()
    con.close()
    before = digest(db)
    commands = {
        "report": ["report", str(db), "-o", str(tmp_path / "r.html")],
        "resume": ["run", str(spec), "--store", str(db), "--resume", "--no-progress"],
    }
    for command, argv in commands.items():
        code = main(argv)
        err = capsys.readouterr().err
        if refused_by in ("both", command):
            assert code == 2, (command, err)
            assert err.startswith(f"wfkit: error: {db}: cannot be read: "), err
            assert "damaged or was not written by wfkit" in err
            assert __import__("re").search(message, err), err
            assert digest(db) == before  # nothing written: no rows lost, none added
        else:
            assert code == 0, (command, err)
    assert not (tmp_path / "r.html").exists() or refused_by == "resume"


def test_the_readers_of_the_python_api_raise_store_errors_too(base, tmp_path):
    _, original = base
    db = tmp_path / "runs.db"
    shutil.copy(original, db)
    con = sqlite3.connect(db)
    run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
    history(lambda r: blob([row(r, result=bomb(40))]))(con, run_id)
    runs_column("agents", '{"a": 1}')(con, run_id)
    con.commit()
    con.close()
    with RunStore(db) as store:
        with pytest.raises(StoreError, match=r"task history is damaged .*result would expand"):
            store.results(run_id)
        with pytest.raises(StoreError, match=r"table of runs is damaged .*agents of run"):
            store.agent_load_frame()
        assert store.latest_run("w") == run_id  # what is intact still reads
        assert len(store.task_frame(run_id=run_id)) == 2  # the frames never walk results


def test_the_bound_on_shared_values_costs_the_distinct_objects_only():
    # 2**150 leaves: only a walk memoised by identity can refuse this at all
    with pytest.raises(decode.Damaged, match="would expand to more than 50,000,000 values"):
        decode.measure(bomb(150), "the value")
    text = "x" * 1_000_000
    with pytest.raises(decode.Damaged, match="more than 1,073,741,824 characters"):
        decode.measure([text] * 2_000, "the value")
    assert decode.measure([text] * 1_000, "the value") == (1_001, 1_000_000_000, 1)
    shared = [1, 2, 3]
    assert decode.measure({"a": [shared] * 10}, "v") == (1 + 1 + 10 * 4, 30, 3)
    assert decode.measure(deep_list(199), "v")[2] == 200  # 200 lists, the innermost empty
    # a pickled result may hold any int; JSON text of one past 4,300 digits would fail
    assert decode.measure([10**5000], "v", strict=False) == (2, 1, 1)
    with pytest.raises(decode.Damaged, match="holds an integer of 16610 bits"):
        decode.measure([10**5000], "v")


def test_a_zero_byte_file_is_not_a_store_and_stays_empty(base, tmp_path, capsys):
    spec, _ = base
    zero = tmp_path / "runs.db"
    zero.touch()
    with pytest.raises(StoreError, match=r"runs\.db: is an empty file \(0 bytes\), not a wfkit "
                                         r"run store; it was left unchanged"):
        RunStore(zero)
    assert main(["run", str(spec), "--store", str(zero), "--no-progress"]) == 2
    assert main(["report", str(zero), "-o", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.count("is an empty file (0 bytes)") == 2
    assert zero.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_a_new_store_appears_whole_even_when_threads_create_it_at_once(tmp_path):
    path = tmp_path / "new" / "runs.db"
    stores, errors = [], []
    start = threading.Barrier(8)

    def create():
        start.wait()
        try:
            stores.append(RunStore(path))
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 8
    for store in stores:
        assert store.workflow_frame().empty
        store.close()
    assert [p.name for p in path.parent.iterdir() if not p.name.startswith("runs.db")] == []


def corrupt_page_of(db: Path, index: str) -> None:
    """Overwrite the root page of ``index``: a page that opening a store never reads."""
    con = sqlite3.connect(db)
    page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    data[(page - 1) * size: page * size] = b"\xff" * size
    db.write_bytes(bytes(data))


def test_a_store_corrupt_where_opening_does_not_look_is_checked_before_any_write(base, tmp_path,
                                                                                capsys):
    spec, original = base
    db = tmp_path / "runs.db"
    shutil.copy(original, db)
    corrupt_page_of(db, "pickles_by_run")
    before = digest(db)
    with RunStore(db) as store:  # reading needs no check, and what is intact reads
        assert store.workflow_frame()["status"].tolist() == ["completed"]
    with pytest.raises(StoreError, match=r"runs\.db: is corrupt \(PRAGMA quick_check: .*"
                                         r"nothing was written to it"):
        CollectiveAgentWorkflowOrchestrator(store=db)
    assert main(["run", str(spec), "--store", str(db), "--no-progress"]) == 2
    assert "is corrupt (PRAGMA quick_check" in capsys.readouterr().err
    assert digest(db) == before
    # a healthy store from elsewhere passes the check and is written to
    healthy = tmp_path / "healthy.db"
    shutil.copy(original, healthy)
    assert main(["run", str(spec), "--store", str(healthy), "--no-progress"]) == 0
    with RunStore(healthy) as store:
        assert len(store.workflow_frame()) == 2


def pickling_store(folder: Path) -> tuple[Path, Path]:
    spec = spec_folder(folder).with_name("pickling.yaml")
    assert spec.read_text() == PICKLING_SPEC
    db = folder / "runs.db"
    assert main(["run", str(spec), "--store", str(db), "--no-progress"]) == 0
    return spec, db


def test_resuming_pickled_results_warns_once_per_store_and_process(tmp_path):
    spec, db = pickling_store(tmp_path)
    (tmp_path / "b").mkdir()
    other_spec, other_db = pickling_store(tmp_path / "b")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert main(["run", str(spec), "--store", str(db), "--resume",
                         "--no-progress"]) == 0
        assert main(["run", str(other_spec), "--store", str(other_db), "--resume",
                     "--no-progress"]) == 0
    pickled = [str(w.message) for w in caught if w.category is PickledResultsWarning]
    assert len(pickled) == 2, pickled
    assert pickled[0].startswith(f"{db}: loading pickled task results")
    assert pickled[1].startswith(f"{other_db}: loading pickled task results")
    assert "--json-only-results" in pickled[0] and "\n" not in pickled[0]


def test_json_only_results_refuses_pickles_in_the_api_and_the_command(tmp_path):
    spec, db = pickling_store(tmp_path)
    before = digest(db)
    orch = CollectiveAgentWorkflowOrchestrator(store=RunStore(db, json_only_results=True))
    orch.register_agent(AgentProfile("a", "a", ["x"], capacity=2))

    async def resume():
        await orch.create_workflow("p", [
            WorkflowTask("pair", "", ["x"], 0, 1.0, action=lambda ctx: (1, 2)),
            WorkflowTask("load", "", ["x"], 0, 1.0, action=lambda ctx: [0, 1, 2])])
        return await orch.execute_workflow("p", resume="latest")

    import asyncio

    with pytest.raises(StoreError, match=r"results stored with pickle \(tasks 'pair'\).*"
                                         r"json_only_results=True \(--json-only-results\)"):
        asyncio.run(resume())
    orch.store.close()
    assert digest(db) == before
    res = wfkit("run", str(spec), "--store", str(db), "--resume", "--json-only-results",
                "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"wfkit: error: {db}: run " in res.stderr and "refuses them" in res.stderr
    assert digest(db) == before
    # without the switch: the results load, with one line saying what that means
    res = wfkit("run", str(spec), "--store", str(db), "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        f"wfkit: warning: {db}: loading pickled task results, which runs code chosen by "
        f"whoever wrote this store; refuse them with --json-only-results "
        f"(RunStore(..., json_only_results=True))"
    ]


async def test_results_too_large_or_deep_for_inline_json_are_stored_and_the_run_ends(tmp_path):
    """A result of shared lists (2**40 leaves) and a 5,000-deep one: writing them checks a
    bounded part only, and loading the shared one back is refused (the task runs again)."""
    calls = []

    def shared(ctx):
        calls.append(ctx.task_id)
        return bomb(40)

    def deep(ctx):
        return deep_list(5000)

    db = tmp_path / "runs.db"
    orch = CollectiveAgentWorkflowOrchestrator(store=db, progress=False)
    orch.register_agent(AgentProfile("a", "a", ["x"], capacity=2))
    tasks = [WorkflowTask("shared", "", ["x"], 0, 1.0, action=shared),
             WorkflowTask("deep", "", ["x"], 0, 1.0, action=deep)]
    await orch.create_workflow("big", tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultNotStoredWarning)  # the deep one cannot pickle
        first = await orch.execute_workflow("big")
    assert first.status == "completed"
    encodings = {
        tid: enc for tid, enc in
        ((r[1], r[9]) for b, in sqlite3.connect(db).execute("SELECT rows FROM transitions")
         for r in pickle.loads(b) if r[4] == "completed")
    }
    assert encodings == {"shared": "pickle", "deep": "unstorable"}
    with pytest.warns(ResultNotStoredWarning, match=r"'shared' .*cannot be loaded .*would "
                                                    r"expand to more than"):
        again = await orch.execute_workflow("big", resume="latest")
    assert again.status == "completed" and calls == ["shared", "shared"]
    orch.close()
    with RunStore(db) as store:
        assert len(store.task_frame()) == 4


@pytest.mark.parametrize("column, value", [("params", "not json"), ("created", "yesterday"),
                                           ("hits", "x"), ("params", '{"year": 2007}'),
                                           ("params", "[" * 5000 + "]" * 5000)])
async def test_a_damaged_cache_entry_is_a_miss_for_a_run_and_a_store_error_for_a_reader(
    tmp_path, column, value
):
    import wfkit

    calls = []

    def make():
        wf = wfkit.Workflow("c", cache=True)

        @wf.task(requires=["x"])
        def step(ctx):
            calls.append(1)
            return {"n": len(calls)}

        return wf

    def orchestrator():
        orch = CollectiveAgentWorkflowOrchestrator(store=tmp_path / "runs.db", progress=False)
        orch.register_agent(AgentProfile("a", "a", ["x"]))
        return orch

    first = orchestrator()
    await first.execute_workflow(make())
    first.close()
    con = sqlite3.connect(tmp_path / "runs.db")
    con.execute(f"UPDATE cache SET {column} = ?", (value,))
    con.commit()
    con.close()
    second = orchestrator()
    result = await second.execute_workflow(make())  # the entry is not used: the task runs
    assert result.status == "completed" and len(calls) == 2
    assert not result.task_results["step"]["cached"]
    with pytest.raises(StoreError, match=r"runs\.db: cannot be read: its result cache is "
                                         r"damaged or was not written by wfkit"):
        second.cache.frame()
    second.close()
