"""experiment(): every variant for every seed, in one tidy frame."""

import pytest
from optimization_checks import random_dag

import wfkit
from wfkit import AgentProfile, ScheduleError
from wfkit.optimization.policies import Heft


def pool(n, capacity=1):
    return [AgentProfile(f"a{i}", "", ["x"], capacity=capacity) for i in range(n)]


def test_variants_by_seeds_in_one_frame():
    tasks = random_dag(30, 1)
    frame = wfkit.experiment(
        tasks,
        pool(3),
        variants={
            "least_loaded": {},
            "heft": {"policy": "heft", "noise": 0.2},
            "round_robin": {"policy": "round_robin", "noise": 0.2},
            "bigger pool": {"agents": pool(6), "noise": 0.2},
            "planned": {"policy": Heft(), "noise": 0.2},
        },
        seeds=range(4),
    )
    assert len(frame) == 5 * 4
    assert list(frame.columns[:13]) == [
        "variant", "seed", "policy", "makespan", "lower_bound", "gap", "utilization",
        "success_rate", "completed", "failed", "skipped", "agents", "capacity"]
    assert "noise" in frame.columns
    assert frame.set_index(["variant", "seed"]).index.is_unique
    row = frame[frame["variant"] == "bigger pool"].iloc[0]
    assert row["agents"] == 6 and row["capacity"] == 6
    assert set(frame["policy"]) == {"least_loaded", "heft", "round_robin"}
    # each row is the simulation it names
    again = wfkit.simulate(tasks, pool(3), policy="round_robin", noise=0.2, seed=2)
    got = frame[(frame["variant"] == "round_robin") & (frame["seed"] == 2)].iloc[0]
    assert got["makespan"] == again.makespan
    assert got["utilization"] == pytest.approx(again.mean_utilization)
    assert got["gap"] == pytest.approx(again.makespan / again.lower_bound - 1)
    # without noise the seed changes nothing; with noise it does
    plain = frame[frame["variant"] == "least_loaded"]["makespan"]
    assert plain.nunique() == 1
    assert frame[frame["variant"] == "heft"]["makespan"].nunique() > 1
    summary = frame.groupby("variant")["makespan"].mean()
    assert summary["bigger pool"] <= summary["least_loaded"] * 1.5


def test_failures_show_up_in_the_counts():
    tasks = random_dag(10, 2)
    frame = wfkit.experiment(tasks, pool(2), {"flaky": {"failures": 0.3}}, seeds=range(20))
    assert (frame["completed"] + frame["failed"] + frame["skipped"] == 10).all()
    assert frame["failed"].sum() > 0
    assert frame["success_rate"].between(0, 1).all()


def test_bad_variants():
    tasks = random_dag(5, 3)
    with pytest.raises(ScheduleError, match="unknown keyword\\(s\\) speed"):
        wfkit.experiment(tasks, pool(2), {"v": {"speed": 2}})
    with pytest.raises(ScheduleError, match="must be a dict of simulate\\(\\) keyword"):
        wfkit.experiment(tasks, pool(2), {"v": "heft"})
    with pytest.raises(ScheduleError, match="at least one seed"):
        wfkit.experiment(tasks, pool(2), {"v": {}}, seeds=[])
