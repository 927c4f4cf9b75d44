"""The remaining critical path (upward rank) is computed in one place: the dispatcher, HEFT
and the critical path drawn in figures agree on it, and no module keeps a copy of the pass."""

import ast
import random
from pathlib import Path

import pytest

import wfkit
from wfkit import AgentProfile, WorkflowTask
from wfkit.agents.dispatch import RunState
from wfkit.agents.policies import LeastLoaded
from wfkit.graph import TaskGraph, critical_path, upward_ranks
from wfkit.optimization.heft import heft_ranks
from wfkit.optimization.problem import Problem
from wfkit.plots import dag_figure


def random_dag(seed, n=80, shuffled=False):
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        deps = sorted(rng.sample(range(i), min(i, rng.randint(0, 3))))
        tasks.append(WorkflowTask(f"t{i}", "", ["x"], rng.choice([0, 1]),
                                  round(rng.uniform(0, 5), 3), [f"t{d}" for d in deps]))
    if shuffled:  # dependencies named before their tasks: the graph's general path
        rng.shuffle(tasks)
    return tasks


def longest_tails(tasks):
    """The definition, written out independently: duration + the longest tail below."""
    by_id = {t.task_id: t for t in tasks}
    below = {tid: [u for u in by_id if tid in by_id[u].dependencies] for tid in by_id}
    memo = {}

    def up(tid):
        if tid not in memo:
            memo[tid] = by_id[tid].estimated_duration + max(
                (up(u) for u in below[tid]), default=0.0)
        return memo[tid]

    return {tid: up(tid) for tid in by_id}


@pytest.mark.parametrize("seed,shuffled", [(1, False), (2, True), (3, False), (4, True)])
def test_dispatch_heft_and_figures_rank_alike(seed, shuffled):
    tasks = random_dag(seed, shuffled=shuffled)
    expected = longest_tails(tasks)
    graph = TaskGraph(tasks)
    ranks = dict(zip(graph.ids, graph.upward_ranks(), strict=True))
    assert ranks == pytest.approx(expected, abs=1e-9)

    # the dispatcher's heap keys: (-priority, -rank, insertion index, id, class)
    state = RunState(graph, [AgentProfile("a", "a", ["x"])], LeastLoaded())
    assert {e[3]: -e[1] for e in state._entries} == ranks

    # HEFT on one agent and no transfer delays: the same figures, to the bit
    assert heft_ranks(Problem(tasks, [AgentProfile("a", "a", ["x"])])) == ranks
    assert upward_ranks({t.task_id: t for t in tasks}) == ranks
    assert upward_ranks(graph) == ranks

    # the critical path a figure draws starts at the top rank and runs down the ranks
    path, length = critical_path(graph)
    assert length == max(ranks.values()) == ranks[path[0]]
    fig = dag_figure(tasks)
    assert fig.layout.meta["critical_path"] == path
    for a, b in zip(path, path[1:], strict=False):
        assert ranks[a] == pytest.approx(graph.tasks[a].estimated_duration + ranks[b])


def test_the_dispatch_order_follows_the_rank():
    # one slot: ready tasks of equal priority start by decreasing remaining critical path
    tasks = [WorkflowTask("short", "", ["x"], 0, 1.0), WorkflowTask("long", "", ["x"], 0, 1.0),
             WorkflowTask("tail", "", ["x"], 0, 5.0, ["long"])]
    state = RunState(TaskGraph(tasks), [AgentProfile("a", "a", ["x"])], LeastLoaded())
    started = []
    while not state.done:
        (task, _agent), = state.assign()
        started.append(task.task_id)
        state.complete(task.task_id)
    assert started == ["long", "tail", "short"]


def test_a_changed_estimate_changes_the_kept_ranks():
    tasks = [WorkflowTask("a", "", ["x"], 0, 1.0), WorkflowTask("b", "", ["x"], 0, 2.0, ["a"])]
    graph = TaskGraph(tasks)
    assert graph.upward_ranks() == [3.0, 2.0]
    assert graph.upward_ranks() is graph.upward_ranks()  # kept between runs
    tasks[1].estimated_duration = 10.0
    assert graph.upward_ranks() == [11.0, 10.0]
    copies = {t.task_id: WorkflowTask(t.task_id, "", ["x"], 0, 0.5, t.dependencies)
              for t in tasks}
    assert graph.with_tasks(copies).upward_ranks() == [1.0, 0.5]
    assert graph.upward_ranks() == [11.0, 10.0]


def test_no_module_keeps_its_own_rank_pass():
    """Every reverse topological walk in the package is the one in ``graph._upward``."""
    root = Path(wfkit.__file__).parent
    walks = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                    and getattr(node.iter.func, "id", None) == "reversed"
                    and "order" in ast.unparse(node.iter.args[0])):
                walks.append(f"{path.relative_to(root)}:{node.lineno}")
    assert len(walks) == 2 and all(w.startswith("graph.py:") for w in walks), walks
