"""The run store across real processes: a kernel killed mid-run and resumed by another one,
and several processes writing one store file at once."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wfkit import ResumeError, RunStore

pytestmark = pytest.mark.slow  # processes killed mid-run

CHILD = Path(__file__).with_name("store_child.py")
REPO = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
}
DAG_TASKS = {*(f"a{i}" for i in range(6)), *(f"b{i}" for i in range(6)), "l0", "l1", "gate",
             *(f"c{i}" for i in range(6)), "d"}


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ENV, cwd=REPO,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "database is locked" not in err
    return json.loads(out.strip().splitlines()[-1])


def log_lines(path: Path) -> list[tuple[int, str, str]]:
    lines = []
    for line in path.read_text().splitlines():
        pid, what, tid = line.split()
        lines.append((int(pid), what, tid))
    return lines


def test_a_run_killed_with_sigkill_resumes_in_a_new_process(tmp_path):
    store_path, log = tmp_path / "runs.db", tmp_path / "effects.log"
    child = start("dag", str(store_path), str(log), "kill")
    marker = Path(str(log) + ".gate")
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the gate task never started"
        time.sleep(0.02)

    # While the first process lives, nobody else may resume its run.
    with RunStore(store_path) as store:
        with pytest.raises(ResumeError, match=r"still running in process \d+ on this machine"):
            store.resume_state("dag", "latest", sorted(DAG_TASKS))

    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    first_pid = child.pid
    before = log_lines(log)
    done_before = {tid for pid, what, tid in before if what == "done"}
    assert done_before == {f"a{i}" for i in range(6)} | {f"b{i}" for i in range(6)}
    in_flight = {tid for pid, what, tid in before if what == "start"} - done_before
    assert in_flight == {"l0", "l1", "gate"}

    # What survived the kill, read as after a kernel restart.
    with RunStore(store_path) as store:
        runs = store.workflow_frame()
        assert list(runs["status"]) == ["interrupted"]
        assert runs["successful_tasks"].iloc[0] == 12
        run_id = runs["run_id"].iloc[0]
        tasks = store.task_frame()
        by_status = tasks.groupby("status")["task_id"].apply(set).to_dict()
        assert by_status == {"completed": done_before, "running": in_flight}

    resumed = finish(start("dag", str(store_path), str(log), "resume"))
    plain = finish(start("dag", str(tmp_path / "plain.db"), str(tmp_path / "plain.log"), "plain"))

    assert resumed["run_id"] == run_id and resumed["status"] == "completed"
    assert resumed["resumed_event"] == sorted(done_before)
    assert resumed["resumed_flags"] == sorted(done_before)
    assert resumed["results"] == plain["results"]
    assert set(resumed["results"]) == DAG_TASKS
    assert resumed["results"]["a3"] == "(3, 'three')"
    assert resumed["results"]["a4"] == "Fraction(4, 7)"

    lines = log_lines(log)
    done = collections.Counter(tid for _, what, tid in lines if what == "done")
    assert done == dict.fromkeys(DAG_TASKS, 1)  # every task completed exactly once in total
    second = {tid for pid, what, tid in lines if pid != first_pid and what == "start"}
    assert second == DAG_TASKS - done_before  # finished work was not started again
    assert {tid for pid, _, tid in lines if pid == first_pid} == done_before | in_flight

    with RunStore(store_path) as store:
        runs = store.workflow_frame()
        assert len(runs) == 1
        row = runs.iloc[0]
        assert (row["status"], row["successful_tasks"], row["resumed_tasks"]) == (
            "completed", len(DAG_TASKS), 12)
        tasks = store.task_frame()
        interrupted = tasks[tasks["status"] == "interrupted"]
        assert set(interrupted["task_id"]) == in_flight
        assert interrupted["finished_at"].isna().all()
        completed = tasks[tasks["status"] == "completed"]
        assert sorted(completed["task_id"]) == sorted(DAG_TASKS)
        assert store.results(run_id).keys() == DAG_TASKS
        load = store.agent_load_frame()  # the attempts cut short by the kill hold no agent
        assert (load.groupby("agent_id")["load"].last() == 0).all()
        assert (load["load"] <= load["capacity"]).all()


def test_processes_share_one_store_without_locking_errors_or_lost_rows(tmp_path):
    store_path, go = tmp_path / "shared.db", tmp_path / "go"
    n_proc, n_tasks = 5, 200
    children = [start("sweep", str(store_path), str(i), str(n_tasks), str(go))
                for i in range(n_proc)]
    time.sleep(0.5)  # let them import; the file does not exist yet: they race to create it
    go.write_text("go")
    reads = 0
    with RunStore(store_path) as reader:  # a notebook reading while the others write
        while any(c.poll() is None for c in children):
            reader.task_frame()
            reader.workflow_frame()
            reads += 1
        outs = [finish(c) for c in children]
        assert reads > 0
        runs_per_process = len(outs[0]["run_ids"])
        for out in outs:
            assert out["statuses"] == ["completed"] * runs_per_process
            assert out["completed"] == [n_tasks] * runs_per_process

        runs = reader.workflow_frame()
        assert len(runs) == n_proc * runs_per_process
        assert runs["workflow_id"].value_counts().to_dict() == {
            f"sweep-{i}": runs_per_process for i in range(n_proc)
        }
        assert (runs["status"] == "completed").all()
        assert (runs["successful_tasks"] == n_tasks).all()
        tasks = reader.task_frame()
        assert len(tasks) == n_proc * runs_per_process * n_tasks
        assert (tasks["status"] == "completed").all()
        assert tasks.groupby("run_id")["task_id"].nunique().eq(n_tasks).all()
        for index, out in enumerate(outs):
            for run_id in out["run_ids"]:
                assert reader.results(run_id) == {
                    f"t{i}": {"process": index, "task": f"t{i}", "square": i * i}
                    for i in range(n_tasks)
                }


def test_a_map_killed_half_way_resumes_with_its_finished_children(tmp_path):
    store_path, log = tmp_path / "runs.db", tmp_path / "effects.log"
    child = start("map", str(store_path), str(log), "kill")
    deadline = time.monotonic() + 120
    done: set[str] = set()
    while len(done) < 5:  # wait until the store holds the five children that finish
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the children never completed"
        time.sleep(0.05)
        if store_path.exists():
            with RunStore(store_path) as store:
                tasks = store.task_frame()
            done = set(tasks.loc[tasks["status"] == "completed", "task_id"]) - {"items"}
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert done == {f"square[{i}]" for i in range(5)}

    with RunStore(store_path) as store:
        tasks = store.task_frame()
        children = tasks[tasks["parent_task_id"] == "square"]
        assert sorted(children["map_index"].dropna().astype(int).unique()) == list(range(10))
        assert set(children.loc[children["status"] == "completed", "task_id"]) == done

    resumed = finish(start("map", str(store_path), str(log), "resume"))
    assert resumed["status"] == "completed"
    assert resumed["total"] == [i * i for i in range(10)]
    assert resumed["resumed"] == sorted(["items", *done])
    second = {tid for pid, what, tid in log_lines(log) if what == "start" and pid != child.pid}
    assert second == {f"square[{i}]" for i in range(5, 10)}  # the finished ones did not run again
