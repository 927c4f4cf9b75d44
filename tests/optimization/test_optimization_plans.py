"""plan_schedule(): HEFT as published, critical-path list scheduling, CP-SAT exact plans."""

import math
import random

import pytest
from optimization_checks import (
    STG_ROOT,
    brute_force_optimum,
    check_schedule,
    comm_for,
    heterogeneous,
    mixed_pool,
    random_dag,
)

import wfkit
from wfkit import AgentProfile, ScheduleError, WorkflowTask

# The example of Topcuoglu, Hariri and Wu (IEEE TPDS 2002), Fig. 2: ten tasks, three
# processors, computation costs W and communication costs on the edges.
W = {1: (14, 16, 9), 2: (13, 19, 18), 3: (11, 13, 19), 4: (13, 8, 17), 5: (12, 13, 10),
     6: (13, 16, 9), 7: (7, 15, 11), 8: (5, 11, 14), 9: (18, 12, 20), 10: (21, 7, 16)}
E = {(1, 2): 18, (1, 3): 12, (1, 4): 9, (1, 5): 11, (1, 6): 14, (2, 8): 19, (2, 9): 16,
     (3, 7): 23, (4, 8): 27, (4, 9): 23, (5, 9): 13, (6, 8): 15, (7, 10): 17, (8, 10): 11,
     (9, 10): 13}


def paper_example():
    tasks = [WorkflowTask(f"n{i}", f"n{i}", ["cpu"], 0, 1.0,
                          [f"n{u}" for (u, v) in E if v == i]) for i in W]
    agents = [AgentProfile(f"P{k + 1}", f"P{k + 1}", ["cpu"]) for k in range(3)]
    durations = {f"n{i}": {f"P{k + 1}": float(W[i][k]) for k in range(3)} for i in W}
    comm = {(f"n{u}", f"n{v}"): float(c) for (u, v), c in E.items()}
    return tasks, agents, durations, comm


def test_heft_reproduces_the_published_example():
    tasks, agents, durations, comm = paper_example()
    s = wfkit.plan_schedule(tasks, agents, durations=durations, comm_costs=comm)
    ranks = {k: round(v, 3) for k, v in s.info["ranks"].items()}
    assert ranks == {"n1": 108.0, "n2": 77.0, "n3": 80.0, "n4": 80.0, "n5": 69.0,
                     "n6": 63.333, "n7": 42.667, "n8": 35.667, "n9": 44.333, "n10": 14.667}
    assert s.makespan == 80.0  # the paper's schedule length for HEFT
    assert s.assignment == {"n1": "P3", "n2": "P1", "n3": "P3", "n4": "P2", "n5": "P3",
                            "n6": "P2", "n7": "P3", "n8": "P1", "n9": "P2", "n10": "P2"}
    assert s.start == {"n1": 0, "n2": 27, "n3": 9, "n4": 18, "n5": 28, "n6": 26, "n7": 38,
                       "n8": 57, "n9": 56, "n10": 73}
    assert not s.optimal
    check_schedule(tasks, agents, s, durations=durations, comm_costs=comm)


def test_exact_beats_heft_on_the_published_example_and_proves_it():
    tasks, agents, durations, comm = paper_example()
    exact = wfkit.plan_schedule(tasks, agents, method="exact", durations=durations,
                                comm_costs=comm)
    assert exact.optimal and exact.makespan == exact.lower_bound
    assert exact.makespan < 80.0
    check_schedule(tasks, agents, exact, durations=durations, comm_costs=comm)
    lst = wfkit.plan_schedule(tasks, agents, method="list", durations=durations,
                              comm_costs=comm)
    check_schedule(tasks, agents, lst, durations=durations, comm_costs=comm)
    assert lst.makespan >= exact.makespan


def test_list_scheduling_on_identical_agents():
    # Graham's classic: a long chain and many short tasks on two identical processors
    tasks = [WorkflowTask("c1", "", ["x"], 0, 3.0), WorkflowTask("c2", "", ["x"], 0, 3.0, ["c1"]),
             *(WorkflowTask(f"s{i}", "", ["x"], 0, 1.0) for i in range(6))]
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"])]
    s = wfkit.plan_schedule(tasks, agents, method="list")
    assert s.start["c1"] == 0.0 and s.start["c2"] == 3.0  # the critical path goes first
    assert s.makespan == 6.0 and s.optimal and s.lower_bound == 6.0
    check_schedule(tasks, agents, s)


@pytest.mark.parametrize("seed", range(6))
def test_exact_matches_brute_force_on_tiny_instances(seed):
    tasks = random_dag(6, seed, window=4)
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"])]
    durations = heterogeneous(tasks, agents, seed)
    comm = comm_for(tasks, seed, high=6.0)
    best = brute_force_optimum(tasks, agents, durations, comm)
    exact = wfkit.plan_schedule(tasks, agents, method="exact", durations=durations,
                                comm_costs=comm)
    check_schedule(tasks, agents, exact, durations=durations, comm_costs=comm)
    assert exact.optimal
    assert math.isclose(exact.makespan, best, rel_tol=1e-9)
    for method in ("heft", "list"):
        s = wfkit.plan_schedule(tasks, agents, method=method, durations=durations,
                                comm_costs=comm)
        check_schedule(tasks, agents, s, durations=durations, comm_costs=comm)
        assert s.makespan >= best - 1e-9
        assert s.optimal == math.isclose(s.makespan, s.lower_bound)


@pytest.mark.parametrize("method", ["heft", "list", "exact"])
@pytest.mark.parametrize("seed", range(3))
def test_plans_are_feasible_on_heterogeneous_pools(method, seed):
    tasks = random_dag(30, seed, capabilities=("x", "y", "x"))
    agents = mixed_pool()
    durations = heterogeneous(tasks, agents, seed)
    comm = comm_for(tasks, seed) if seed else None
    s = wfkit.plan_schedule(tasks, agents, method=method, durations=durations, comm_costs=comm,
                            time_limit=3.0)
    check_schedule(tasks, agents, s, durations=durations, comm_costs=comm)
    assert s.lower_bound <= s.makespan
    assert "off" not in s.assignment.values()


def test_exact_with_fractional_and_irrational_durations():
    tasks = random_dag(12, 5)
    agents = [AgentProfile("p", "", ["x"]), AgentProfile("q", "", ["x"], capacity=2)]
    tenths = {t.task_id: t.estimated_duration / 10 for t in tasks}
    s = wfkit.plan_schedule(tasks, agents, method="exact", durations=tenths)
    assert s.optimal
    check_schedule(tasks, agents, s, durations=tenths)
    # the published example in tenths: scaled by 10 exactly, solved and proven
    ptasks, pagents, pdur, pcomm = paper_example()
    whole = wfkit.plan_schedule(ptasks, pagents, method="exact", durations=pdur,
                                comm_costs=pcomm)
    pdur = {t: {a: d / 10 for a, d in row.items()} for t, row in pdur.items()}
    pcomm = {e: c / 10 for e, c in pcomm.items()}
    s = wfkit.plan_schedule(ptasks, pagents, method="exact", durations=pdur, comm_costs=pcomm)
    assert s.info["scale"] == 10 and s.info["exact_scale"] and s.optimal
    assert s.makespan == pytest.approx(whole.makespan / 10)
    check_schedule(ptasks, pagents, s, durations=pdur, comm_costs=pcomm)
    odd = {t.task_id: t.estimated_duration * math.pi for t in tasks}
    s = wfkit.plan_schedule(tasks, agents, method="exact", durations=odd, time_limit=2.0)
    check_schedule(tasks, agents, s, durations=odd)
    heft = wfkit.plan_schedule(tasks, agents, method="heft", durations=odd)
    assert s.makespan <= heft.makespan + 1e-9


def test_unknown_method_and_bad_time_limit():
    tasks = [WorkflowTask("a", "", ["x"], 0, 1.0)]
    agents = [AgentProfile("p", "", ["x"])]
    with pytest.raises(ScheduleError, match="unknown planning method 'greedy'.*'heft', 'list', "
                                            "'exact'"):
        wfkit.plan_schedule(tasks, agents, method="greedy")
    with pytest.raises(ScheduleError, match="time_limit must be a number of seconds > 0"):
        wfkit.plan_schedule(tasks, agents, method="exact", time_limit=0)
    with pytest.raises(ScheduleError, match=r"durations\['a'\] has no duration for agent 'q'"):
        wfkit.plan_schedule(tasks, agents + [AgentProfile("q", "", ["x"])],
                            durations={"a": {"p": 1.0}})


def test_a_plan_meeting_the_bound_is_optimal_without_the_solver():
    tasks = [WorkflowTask(f"t{i}", "", ["x"], 0, 2.0) for i in range(4)]
    agents = [AgentProfile("p", "", ["x"], capacity=2)]
    s = wfkit.plan_schedule(tasks, agents, method="exact")
    assert s.optimal and s.makespan == 4.0 and s.info["status"] == "bound"


needs_stg = pytest.mark.skipif(
    not (STG_ROOT / "optimal_values").is_dir(),
    reason="the STG sample (../shared/benchmarks/stg next to the repository) is not present",
)


@needs_stg
def test_exact_stops_at_the_time_limit_with_a_proven_bound():
    from stg_format import identical_agents, read_stg

    tasks = read_stg(STG_ROOT / "50" / "rand0018.stg")
    s = wfkit.plan_schedule(tasks, identical_agents(2), method="exact", time_limit=0.3,
                            workers=1)
    check_schedule(tasks, identical_agents(2), s)
    assert s.lower_bound >= wfkit.graph.lower_bound(tasks, identical_agents(2))
    # how far 0.3 s of search gets depends on the machine's load: either way the plan says
    # what is proven
    if s.optimal:
        assert s.info["status"] in ("OPTIMAL", "bound") and s.lower_bound == s.makespan
    else:
        assert s.info["status"] == "FEASIBLE"  # the warm start is always a solution
        assert s.lower_bound < s.makespan


def test_the_gap_search_finds_what_a_scan_of_every_interval_finds():
    """HEFT's lanes search idle gaps only; a scan over every busy interval agrees."""
    from wfkit.optimization.heft import _Lane, earliest_gap

    rng = random.Random(5)
    for _ in range(200):
        lane = _Lane()
        starts, finishes = [], []
        for _ in range(40):
            ready = rng.choice([0.0, rng.uniform(0, 50), float(rng.randint(0, 50))])
            d = rng.choice([0.0, float(rng.randint(1, 6)), rng.uniform(0, 5)])
            t = lane.earliest(ready, d)
            assert t == earliest_gap(starts, finishes, ready, d)
            lane.insert(t, d)
            at = sum(1 for f in finishes if f <= t)
            starts.insert(at, t)
            finishes.insert(at, t + d)


def _scan_every_slot(problem, rank, busy=None, not_before=0.0):
    """HEFT's processor selection as published: every slot of every capable agent, in order,
    the first with the earliest finish (what pooling interchangeable slots must reproduce)."""
    from wfkit.optimization.heft import earliest_gap

    lanes = {}
    for a in problem.agents:
        releases = sorted((busy or {}).get(a.agent_id, ()))[: a.capacity]
        lanes[a.agent_id] = [
            ([not_before], [releases[k]]) if k < len(releases) and releases[k] > not_before
            else ([], [])
            for k in range(a.capacity)
        ]
    done, placed = {}, {}
    for tid in sorted(problem.tasks, key=lambda t: (-rank[t], problem.index[t])):
        ready = max([not_before] + [done[d] for d in problem.tasks[tid].dependencies])
        best = None
        for agent in problem.candidates(tid):
            d = problem.dur[tid][agent.agent_id]
            for k, (starts, finishes) in enumerate(lanes[agent.agent_id]):
                st = earliest_gap(starts, finishes, ready, d)
                if best is None or st + d < best[0]:
                    best = (st + d, st, agent.agent_id, k)
        eft, st, aid, k = best
        starts, finishes = lanes[aid][k]
        at = sum(1 for f in finishes if f <= st)
        starts.insert(at, st)
        finishes.insert(at, eft)
        done[tid] = eft
        placed[tid] = (aid, k, st, eft)
    return placed


@pytest.mark.parametrize("seed", range(12))
def test_pooled_identical_slots_place_as_a_scan_of_every_slot(seed):
    """Interchangeable slots (same capabilities, same duration) are searched together; the
    plan is the published per-slot scan's, ties and idle-gap insertions included."""
    from wfkit.optimization.heft import heft_ranks, place
    from wfkit.optimization.problem import Problem

    rng = random.Random(seed)
    choices = [0.0, 0.1, 0.2, 0.3, 1 / 3, 1.0, 2.0, 7.0]
    tasks = [
        WorkflowTask(t.task_id, t.task_id, rng.choice([["cpu"], ["cpu", "gpu"]]), 0,
                     rng.choice(choices + [rng.uniform(0, 5)]), t.dependencies)
        for t in random_dag(rng.randint(20, 120), seed, window=10)
    ]
    agents = [AgentProfile(f"c{i}", f"c{i}", ["cpu"], capacity=rng.choice([1, 1, 2]))
              for i in range(rng.randint(2, 6))]
    agents += [AgentProfile(f"g{i}", f"g{i}", ["cpu", "gpu"], capacity=rng.choice([1, 2]))
               for i in range(rng.randint(1, 3))]
    problem = Problem(tasks, agents)
    rank = heft_ranks(problem)
    busy, not_before = None, 0.0
    if seed % 3 == 1:  # re-planning a run in progress
        busy = {a.agent_id: [rng.uniform(0, 15) for _ in range(a.capacity)] for a in agents}
        not_before = 2.0
    agent_of, slot_of, start, finish = place(problem, rank, busy=busy, not_before=not_before)
    expected = _scan_every_slot(problem, rank, busy, not_before)
    assert {t: (agent_of[t], slot_of[t], start[t], finish[t]) for t in agent_of} == expected


def test_a_task_that_takes_the_same_on_every_agent_has_that_one_figure():
    """Problem.flat names the tasks whose duration does not depend on the agent; HEFT's mean
    duration of such a task is that figure exactly (a sum over ten agents rounds 0.1 off)."""
    from wfkit.optimization.heft import heft_ranks
    from wfkit.optimization.problem import Problem

    agents = [AgentProfile(f"c{i}", f"c{i}", ["cpu"]) for i in range(10)]
    tasks = [WorkflowTask("a", "a", ["cpu"], 0, 1.0), WorkflowTask("b", "b", ["cpu"], 0, 1.0),
             WorkflowTask("c", "c", ["cpu"], 0, 1.0)]
    durations = {"a": 0.1, "b": {a.agent_id: 0.1 for a in agents},
                 "c": {a.agent_id: 0.1 * (i + 1) for i, a in enumerate(agents)}}
    problem = Problem(tasks, agents, durations)
    assert problem.flat == {"a": 0.1, "b": 0.1}
    assert heft_ranks(problem)["a"] == heft_ranks(problem)["b"] == 0.1
    assert Problem(tasks, agents).flat == {"a": 1.0, "b": 1.0, "c": 1.0}
