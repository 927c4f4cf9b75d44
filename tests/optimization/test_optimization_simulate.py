"""simulate(): the engine's dispatch on virtual time, its Schedule, and its input checks."""

import math

import plotly.graph_objects as go
import pytest
from optimization_checks import (
    check_schedule,
    comm_for,
    heterogeneous,
    mixed_pool,
    random_dag,
)

import wfkit
from wfkit import (
    AgentProfile,
    CycleError,
    MissingCapabilityError,
    ScheduleError,
    UnknownPolicyError,
    WorkflowTask,
)
from wfkit.optimization.policies import Heft


def T(tid, d, deps=(), caps=("x",), **kw):
    return WorkflowTask(tid, tid, list(caps), 0, d, list(deps), **kw)


def A(aid, caps=("x",), **kw):
    return AgentProfile(aid, aid, list(caps), **kw)


def test_schedule_fields_on_a_small_graph():
    tasks = [T("a", 2), T("b", 3, ["a"]), T("c", 1, ["a"]), T("d", 1, ["b", "c"])]
    agents = [A("p"), A("q", capacity=2)]
    s = wfkit.simulate(tasks, agents)
    assert isinstance(s, wfkit.Schedule)
    # least_loaded: a -> p; at t=2 b (longer remaining path) goes first and p, q tie at
    # load 0 (p was registered first); c -> q; d after b
    assert s.assignment == {"a": "p", "b": "p", "c": "q", "d": "p"}
    assert s.start == {"a": 0.0, "b": 2.0, "c": 2.0, "d": 5.0}
    assert s.makespan == 6.0 and s.lower_bound == 6.0 and s.gap == 0.0
    assert s.utilization == {"p": 1.0, "q": 1 / 12}
    assert s.order == {"p": ["a", "b", "d"], "q": ["c"]}
    f = s.frame()
    assert list(f.columns) == ["task_id", "agent_id", "slot", "start", "finish", "duration",
                               "status", "attempts"]
    assert f["duration"].tolist() == [2.0, 3.0, 1.0, 1.0]
    assert set(f["status"]) == {"completed"} and set(f["attempts"]) == {1}
    check_schedule(tasks, agents, s)


def test_capacity_is_honoured_and_slots_are_reported():
    tasks = [T(f"t{i}", 1.0) for i in range(7)]
    s = wfkit.simulate(tasks, [A("big", capacity=3)])
    assert s.makespan == 3.0
    assert sorted(s.frame()["slot"].tolist()) == [0, 0, 0, 1, 1, 2, 2]
    assert s.utilization["big"] == pytest.approx(7 / 9)


def test_capabilities_and_availability_are_honoured():
    tasks = [T("x1", 1), T("y1", 1, caps=["y"]), T("y2", 1, caps=["y"]), T("xy", 1, ["x1"],
                                                                          caps=["x", "y"])]
    agents = [A("xonly"), A("yonly", ["y"]), A("both", ["x", "y"]),
              A("idle", ["x", "y"], availability=False, capacity=5)]
    s = wfkit.simulate(tasks, agents, policy="round_robin")
    assert s.assignment["xy"] == "both"
    assert s.assignment["y1"] in ("yonly", "both") and s.assignment["y2"] in ("yonly", "both")
    assert "idle" not in s.assignment.values() and "idle" not in s.utilization
    check_schedule(tasks, agents, s)


def test_transfer_delays_are_paid_across_agents_only():
    tasks = [T("a", 1), T("b", 1, ["a"], caps=["y"]), T("c", 1, ["a"])]
    agents = [A("p"), A("q", ["y"])]
    s = wfkit.simulate(tasks, agents, comm_costs={("a", "b"): 5.0, ("a", "c"): 7.0})
    assert s.start["b"] == 6.0  # a ran on p, b must run on q
    assert s.start["c"] == 1.0  # same agent: no delay
    assert s.makespan == 7.0
    check_schedule(tasks, agents, s, comm_costs={("a", "b"): 5.0, ("a", "c"): 7.0})


@pytest.mark.parametrize("policy", ["least_loaded", "fastest", "round_robin", "heft",
                                    "callable"])
@pytest.mark.parametrize("seed", range(4))
def test_random_heterogeneous_simulations_are_feasible(policy, seed):
    tasks = random_dag(40, seed, capabilities=("x", "y", "x"))
    agents = mixed_pool()
    durations = heterogeneous(tasks, agents, seed)
    comm = comm_for(tasks, seed)
    if policy == "callable":
        policy = lambda task, cands: cands[-1]  # noqa: E731
    s = wfkit.simulate(tasks, agents, policy=policy, durations=durations, comm_costs=comm)
    check_schedule(tasks, agents, s, durations=durations, comm_costs=comm)


def test_callable_durations_and_scalar_matrix_entries():
    tasks = [T("a", 1), T("b", 1, ["a"])]
    agents = [A("p"), A("q")]
    s = wfkit.simulate(tasks, agents, durations=lambda t, a: 4.0 if a.agent_id == "p" else 9.0)
    assert s.makespan == 8.0
    s = wfkit.simulate(tasks, agents, durations={"a": 2.5, "b": {"p": 1.0, "q": 1.0}})
    assert s.makespan == 3.5


def test_user_objects_are_never_changed():
    tasks = [T("a", 1), T("b", 2, ["a"], retries=1)]
    agents = [A("p", performance_metrics={"speed_ratio": 1.0}), A("q")]
    before = [(a.current_load, dict(a.performance_metrics), dict(a.learned_durations))
              for a in agents]
    for policy in ("least_loaded", "fastest", "heft"):
        wfkit.simulate(tasks, agents, policy=policy, failures={"b": 0.5}, seed=1)
    after = [(a.current_load, dict(a.performance_metrics), dict(a.learned_durations))
             for a in agents]
    assert before == after
    assert [t.status for t in tasks] == ["pending", "pending"]


def test_noise_is_seeded_and_changes_durations():
    tasks = random_dag(30, 3)
    agents = [A("p"), A("q"), A("r")]
    a = wfkit.simulate(tasks, agents, noise=0.3, seed=7)
    b = wfkit.simulate(tasks, agents, noise=0.3, seed=7)
    c = wfkit.simulate(tasks, agents, noise=0.3, seed=8)
    plain = wfkit.simulate(tasks, agents)
    assert a.frame().equals(b.frame())
    assert a.makespan != c.makespan
    assert not math.isclose(a.makespan, plain.makespan)
    assert wfkit.simulate(tasks, agents, noise=0.0, seed=7).frame().equals(plain.frame())
    check_schedule(tasks, agents, a, exact_durations=False)
    doubled = wfkit.simulate(tasks, agents, noise=lambda d, rng: 2 * d)
    assert doubled.makespan == 2 * plain.makespan


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_under_noise_the_bound_is_of_the_durations_drawn(factor):
    """The lower bound (and so the gap) of a noisy simulation is computed from the durations
    the noise drew, so it bounds the run that was simulated: a chain takes exactly its bound."""
    chain = [T("a", 2), T("b", 3, ["a"]), T("c", 4, ["b"])]
    agents = [A("p"), A("q")]
    s = wfkit.simulate(chain, agents, noise=lambda d, rng: factor * d)
    assert s.makespan == s.lower_bound == 9 * factor
    assert s.gap == 0.0
    tasks = random_dag(40, 5)
    durations = heterogeneous(tasks, agents, 5)
    for seed in range(5):
        noisy = wfkit.simulate(tasks, agents, durations=durations, noise=0.6, seed=seed)
        assert noisy.lower_bound <= noisy.makespan
        assert noisy.lower_bound != wfkit.simulate(tasks, agents, durations=durations).lower_bound


def test_failures_retries_and_skips_follow_the_engine():
    tasks = [T("a", 1, retries=2), T("b", 1, ["a"]), T("c", 1)]
    agents = [A("p"), A("q")]
    s = wfkit.simulate(tasks, agents, failures={"a": 1.0}, backoff=0.5, seed=0)
    f = s.frame().set_index("task_id")
    assert f.loc["a", "status"] == "failed" and f.loc["a", "attempts"] == 3
    assert f.loc["b", "status"] == "skipped" and f.loc["b", "attempts"] == 0
    assert f.loc["c", "status"] == "completed"
    assert s.success_rate == pytest.approx(1 / 3)
    # three attempts of 1 s, two backoffs between 0.25..0.5 and 0.5..1.0
    assert 3.75 <= s.makespan <= 4.5
    assert s.utilization["p"] + s.utilization["q"] == pytest.approx(4.0 / s.makespan)
    # a flaky task with enough retries completes on most seeds
    rates = [wfkit.simulate(tasks, agents, failures={"a": 0.5}, seed=k).success_rate
             for k in range(50)]
    assert 0.75 < sum(rates) / len(rates) < 1.0


def test_policy_clock_is_restored_after_a_simulation():
    policy = Heft()
    clock = policy.clock
    wfkit.simulate([T("a", 1)], [A("p")], policy=policy)
    assert policy.clock is clock


class _Watching(wfkit.Policy):
    """Looks at what a live policy can: its clock, the tasks' statuses, learned durations."""

    name = "watching"

    def __init__(self):
        self.clock = lambda: 0.0
        self.seen = []

    def select(self, task, candidates):
        done = sum(len(a.learned_durations) for a in candidates)
        self.seen.append((task.task_id, self.clock(), task.status, done))
        return min(candidates, key=lambda a: (len(a.learned_durations), a.agent_id))


@pytest.mark.parametrize("seed", range(3))
def test_the_lean_loop_shows_policies_what_the_general_loop_shows(seed):
    """Without noise, failures or delays, a policy that watches the clock, the statuses or the
    agents' learning is simulated by the lean loop; it sees what the general loop (callable
    durations take that one) shows it, and makes the same choices."""
    tasks = random_dag(40, seed)
    agents = [A("p", capacity=2), A("q"), A("r")]
    runs = []
    for durations in (None, lambda t, a: t.estimated_duration):
        for policy in (_Watching(), Heft()):
            s = wfkit.simulate(tasks, agents, policy=policy, durations=durations)
            seen = policy.seen if isinstance(policy, _Watching) else policy._follower.exact
            runs.append((s.agent, s.start, s.finish, seen))
    assert runs[:2] == runs[2:]
    watching, start = runs[0][3], runs[0][1]
    # it never waits: it sees each task once, pending, at the moment it starts
    assert sorted(tid for tid, *_ in watching) == sorted(t.task_id for t in tasks)
    assert all(now == start[tid] and status == "pending" for tid, now, status, _ in watching)
    assert max(now for _, now, _, _ in watching) > 0
    assert max(learned for *_, learned in watching) > 0
    assert runs[1][3] is True  # the HEFT plan was followed exactly to the end


def test_figure_has_one_bar_per_task():
    tasks = random_dag(12, 1)
    s = wfkit.simulate(tasks, [A("p"), A("q", capacity=2)])
    fig = s.figure()
    assert isinstance(fig, go.Figure)
    assert sum(len(trace.x) for trace in fig.data) == 12
    assert {trace.name for trace in fig.data} <= {"p", "q"}
    assert "makespan" in fig.layout.title.text


def test_inputs_may_be_a_workflow_or_mappings():
    wf = wfkit.Workflow("w")

    @wf.task(requires=["x"], estimate=2.0)
    def first(ctx):
        return 1

    @wf.task(requires=["x"], after=[first], estimate=3.0)
    def second(ctx):
        return 2

    s = wfkit.simulate(wf, {"p": A("p")})
    assert s.makespan == 5.0


# -- bad input -------------------------------------------------------------------------------


def test_a_duration_matrix_missing_an_agent_is_rejected():
    tasks = [T("a", 1)]
    with pytest.raises(ScheduleError, match=r"durations\['a'\] has no duration for agent 'q'"):
        wfkit.simulate(tasks, [A("p"), A("q")], durations={"a": {"p": 1.0}})


@pytest.mark.parametrize(
    ("durations", "message"),
    [
        ({}, "durations has no entry for task 'a'"),
        ({"a": 1.0, "zz": 1.0}, "unknown task\\(s\\) 'zz'"),
        ({"a": -1.0}, r"durations\['a'\] must be a finite number of seconds >= 0"),
        ({"a": {"p": float("nan")}}, "finite number"),
        ({"a": {"p": 1.0, "ghost": 2.0}}, "names agent 'ghost'"),
        ({"a": "fast"}, "must be a number of seconds"),
        (3.0, "durations must be None, a mapping"),
        (lambda t, a: -2.0, r"durations\('a', 'p'\) \(the callable's result\)"),
    ],
)
def test_bad_durations(durations, message):
    with pytest.raises(ScheduleError, match=message):
        wfkit.simulate([T("a", 1)], [A("p")], durations=durations)


@pytest.mark.parametrize(
    ("comm", "message"),
    [
        ({("a", "b"): -1.0}, r"comm_costs\[\('a', 'b'\)\] must be a finite number"),
        ({("b", "a"): 1.0}, "task 'a' does not depend on 'b'"),
        ({"a": 1.0}, "keys are \\(upstream_id, downstream_id\\) pairs"),
        (lambda u, v: -3, "comm_costs\\('a', 'b'\\)"),
        ([1, 2], "comm_costs must be a mapping"),
    ],
)
def test_bad_comm_costs(comm, message):
    with pytest.raises(ScheduleError, match=message):
        wfkit.simulate([T("a", 1), T("b", 1, ["a"])], [A("p")], comm_costs=comm)


def test_other_bad_input():
    tasks = [T("a", 1)]
    with pytest.raises(UnknownPolicyError, match="unknown policy 'quickest'"):
        wfkit.simulate(tasks, [A("p")], policy="quickest")
    with pytest.raises(MissingCapabilityError, match="'a' needs x"):
        wfkit.simulate(tasks, [A("p", ["y"])])
    with pytest.raises(ScheduleError, match="noise .* must be a number of seconds"):
        wfkit.simulate(tasks, [A("p")], noise="high")
    with pytest.raises(ScheduleError, match="probability between 0 and 1"):
        wfkit.simulate(tasks, [A("p")], failures={"a": 1.5})
    with pytest.raises(ScheduleError, match="failures names unknown task"):
        wfkit.simulate(tasks, [A("p")], failures={"zz": 0.5})
    with pytest.raises(CycleError, match="cycle"):
        wfkit.simulate([T("a", 1, ["b"]), T("b", 1, ["a"])], [A("p")])
    with pytest.raises(wfkit.ValidationError, match="appears twice"):
        wfkit.simulate(tasks, [A("p"), A("p")])
    with pytest.raises(wfkit.UnknownDependencyError, match="unknown task"):
        wfkit.simulate([T("a", 1, ["nope"])], [A("p")])
