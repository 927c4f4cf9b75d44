"""Graph analysis: critical path, ranks with mean durations and transfer delays, lower bounds."""

import pytest

from wfkit import AgentProfile, WorkflowTask
from wfkit.graph import (
    critical_path,
    downward_ranks,
    lower_bound,
    lower_bounds,
    mean_durations,
    upward_ranks,
)


def T(tid, d, deps=(), caps=("x",)):
    return WorkflowTask(tid, tid, list(caps), 0, d, list(deps))


@pytest.fixture
def diamond():
    #   a(2) -> b(3) -> d(1)
    #        -> c(5) ->
    return {t.task_id: t for t in [T("a", 2), T("b", 3, ["a"]), T("c", 5, ["a"]),
                                   T("d", 1, ["b", "c"])]}


def test_critical_path_and_ranks(diamond):
    path, length = critical_path(diamond)
    assert path == ["a", "c", "d"] and length == 8
    assert upward_ranks(diamond) == {"d": 1, "b": 4, "c": 6, "a": 8}
    assert downward_ranks(diamond) == {"a": 0, "b": 2, "c": 2, "d": 7}


def test_transfer_delays_change_the_critical_path(diamond):
    delays = {("a", "b"): 10.0, ("b", "d"): 0.0}
    comm = lambda u, v: delays.get((u, v), 0.0)  # noqa: E731
    path, length = critical_path(diamond, comm=comm)
    assert path == ["a", "b", "d"] and length == 2 + 10 + 3 + 1
    up = upward_ranks(diamond, comm=comm)
    assert up["a"] == 16
    down = downward_ranks(diamond, comm=comm)
    assert down["d"] == 15  # a(2) + 10 + b(3)


def test_mean_durations_over_capable_agents_only(diamond):
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"]),
              AgentProfile("r", "", ["z"])]
    speed = {"p": 1.0, "q": 3.0, "r": 100.0}
    means = mean_durations(diamond, agents, lambda t, a: t.estimated_duration * speed[a.agent_id])
    assert means == {"a": 4.0, "b": 6.0, "c": 10.0, "d": 2.0}  # r cannot run them


def test_lower_bound_parts():
    tasks = {t.task_id: t for t in [T("a", 4), T("b", 4), T("c", 4), T("d", 6, caps=["gpu"])]}
    agents = [AgentProfile("cpu", "", ["x"], capacity=3), AgentProfile("gpu", "", ["gpu", "x"])]
    parts = lower_bounds(tasks, agents)
    assert parts["critical_path"] == 6
    assert parts["total"] == 18 / 4
    # only the gpu agent (1 slot) can run d; x-tasks may use all 4 slots
    assert parts["classes"][frozenset({"gpu"})] == 6
    assert parts["classes"][frozenset({"x"})] == 18 / 4
    assert parts["bound"] == lower_bound(tasks, agents) == 6


def test_class_bound_counts_work_confined_to_a_subset():
    # y-tasks run only on "both"; x-tasks on "both" or "xonly"; the y class is confined
    tasks = {t.task_id: t for t in [T("y1", 5, caps=["y"]), T("y2", 5, caps=["y"]),
                                    T("x1", 1)]}
    agents = [AgentProfile("both", "", ["x", "y"]), AgentProfile("xonly", "", ["x"])]
    assert lower_bounds(tasks, agents)["classes"][frozenset({"y"})] == 10
    assert lower_bound(tasks, agents) == 10


def test_heterogeneous_lower_bound_uses_the_fastest_capable_agent(diamond):
    agents = [AgentProfile("fast", "", ["x"]), AgentProfile("slow", "", ["x"])]
    factor = {"fast": 0.5, "slow": 2.0}
    lb = lower_bound(diamond, agents, agent_duration=lambda t, a: t.estimated_duration
                     * factor[a.agent_id])
    assert lb == 4.0  # critical path 8 at half the estimate; work 11 / 2 slots = 2.75


def test_unavailable_agents_do_not_count(diamond):
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"], availability=False)]
    assert lower_bounds(diamond, agents)["total"] == 11.0


def _critical_path_by_id(tasks, comm=None):
    """The critical path as the ranks define it, walked over dicts keyed by id."""
    from wfkit.graph import dependents_of, topological_order

    dependents = dependents_of(tasks)
    order = topological_order(tasks, dependents)
    up = upward_ranks(tasks, comm=comm, order=order, dependents=dependents)
    index = {tid: i for i, tid in enumerate(order)}
    entries = [tid for tid in order if not tasks[tid].dependencies]
    path = [max(entries, key=lambda t: (up[t], -index[t]))]
    while dependents[path[-1]]:
        here = path[-1]
        path.append(max(dependents[here], key=lambda t: (
            up[t] + (comm(here, t) if comm else 0.0), -index[t])))
    return path, up[path[0]]


@pytest.mark.parametrize("seed", range(6))
def test_critical_path_by_number_matches_the_ranks_ties_included(seed):
    import random

    rng = random.Random(seed)
    tasks: list[WorkflowTask] = []
    for i in range(300):  # few distinct durations: many ties to break
        pool = [t.task_id for t in tasks[-40:]]
        deps = rng.sample(pool, min(len(pool), rng.randint(0, 3)))
        tasks.append(T(f"t{i}", rng.choice([1, 2, 3]), deps))
    rng.shuffle(tasks)  # insertion order is not topological
    from wfkit.graph import validate_tasks

    by_id = validate_tasks(sorted(tasks, key=lambda t: int(t.task_id[1:])))
    shuffled = {t.task_id: by_id[t.task_id] for t in tasks}
    comm = (lambda a, b: (7 * int(a[1:]) + int(b[1:])) % 3 / 2) if seed % 2 else None
    from wfkit.graph import TaskGraph

    for given in (by_id, shuffled):
        expected = _critical_path_by_id(given, comm=comm)
        assert critical_path(given, comm=comm) == expected
        assert critical_path(TaskGraph(given), comm=comm) == expected  # numbered already
