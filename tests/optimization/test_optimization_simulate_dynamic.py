"""simulate() on dynamic workflows: map_sizes, element-wise maps, conditions, trigger rules."""

import pytest

from wfkit import AgentProfile, ScheduleError, WorkflowTask, simulate


def task(tid, deps=None, estimate=1.0, **kw):
    return WorkflowTask(tid, tid, ["w"], 0, estimate, deps, **kw)


AGENTS = [AgentProfile("a", "a", ["w"], capacity=4)]


def test_a_map_is_planned_with_its_given_size():
    tasks = [task("files"), task("parse", map="files", estimate=2.0),
             task("combine", ["parse"])]
    s = simulate(tasks, AGENTS, map_sizes={"parse": 10})
    children = [f"parse[{i}]" for i in range(10)]
    assert s.task_ids == ["files", "combine", *children]
    # 10 children of 2 s on 4 slots: three waves after files, then combine
    assert s.makespan == pytest.approx(1 + 3 * 2 + 1)
    assert s.start["combine"] == pytest.approx(7)
    assert max(s.finish[c] for c in children) == pytest.approx(7)
    assert s.lower_bound == pytest.approx(1 + 20 / 4 + 1)  # the children count as work
    empty = simulate(tasks, AGENTS, map_sizes={"parse": 0})
    assert empty.makespan == pytest.approx(2) and empty.task_ids == ["files", "combine"]


def test_an_element_wise_map_follows_its_source_and_streams():
    tasks = [task("files"), task("parse", map="files", estimate=1.0),
             task("clean", map="parse", estimate=1.0), task("combine", ["clean"])]
    s = simulate(tasks, [AgentProfile("a", "a", ["w"], capacity=8)], map_sizes={"parse": 4})
    assert {f"clean[{i}]" for i in range(4)} <= set(s.task_ids)
    for i in range(4):
        assert s.start[f"clean[{i}]"] == pytest.approx(s.finish[f"parse[{i}]"])
    assert s.makespan == pytest.approx(4)


def test_durations_and_failures_given_for_a_mapped_task_apply_to_its_children():
    tasks = [task("files"), task("parse", map="files")]
    s = simulate(tasks, AGENTS, durations={"files": {"a": 1.0}, "parse": {"a": 3.0}},
                 map_sizes={"parse": 2})
    assert s.finish["parse[1]"] - s.start["parse[1]"] == pytest.approx(3.0)
    failed = simulate(tasks, AGENTS, failures={"parse": 1.0}, map_sizes={"parse": 2}, seed=1)
    assert failed.status["parse[0]"] == failed.status["parse[1]"] == "failed"


def test_conditions_are_planned_as_holding_and_trigger_rules_apply():
    tasks = [task("a"), task("b", ["a"], when=lambda ctx: False),
             task("c", ["a"]),
             task("join", ["b", "c"], trigger="none_failed")]
    s = simulate(tasks, AGENTS)
    assert set(s.task_ids) == {"a", "b", "c", "join"} and s.makespan == pytest.approx(3)
    failing = simulate(tasks, AGENTS, failures={"c": 1.0}, seed=0)
    assert failing.status["c"] == "failed" and failing.status["join"] == "skipped"


def test_map_sizes_are_checked():
    tasks = [task("files"), task("parse", map="files"), task("clean", map="parse")]
    with pytest.raises(ScheduleError, match=r"map_sizes=\{'parse': n\}"):
        simulate(tasks, AGENTS)
    with pytest.raises(ScheduleError, match="'clean' map element by element"):
        simulate(tasks, AGENTS, map_sizes={"parse": 2, "clean": 2})
    with pytest.raises(ScheduleError, match="must be an int >= 0"):
        simulate(tasks, AGENTS, map_sizes={"parse": -1})
    with pytest.raises(ScheduleError, match="'files', which do not map"):
        simulate(tasks, AGENTS, map_sizes={"parse": 1, "files": 1})
