"""The plan follower leaves exact following at the first sign that the run is not the plan.

The follower is driven here as the dispatcher drives it: a clock, the tasks' statuses, the
agents' loads and learned durations, and ``select`` for each task to dispatch. Whether it
still follows the plan exactly is checked after every call.
"""

from __future__ import annotations

import pytest

from wfkit import AgentProfile, WorkflowTask
from wfkit.optimization.planpolicy import PlanFollower

DURATIONS = {"A": 5.0, "B": 8.0, "C": 1.0, "D": 1.0}


class Run:
    def __init__(self) -> None:
        self.tasks = {
            "A": WorkflowTask("A", "A", ["x"], 0, 5.0),
            "B": WorkflowTask("B", "B", ["x"], 0, 8.0),
            "C": WorkflowTask("C", "C", ["x"], 0, 1.0, ["A"]),
            "D": WorkflowTask("D", "D", ["x"], 0, 1.0, ["B"]),
        }
        self.agents = {aid: AgentProfile(aid, aid, ["x"]) for aid in ("a0", "a1")}
        self.now = 0.0
        self.follower = PlanFollower(
            self.tasks, list(self.agents.values()), durations=DURATIONS, clock=lambda: self.now
        )
        # B on a0 for [0, 8], then D for [8, 9]; A on a1 for [0, 5], then C for [5, 6]
        assert self.follower.plan.agent == {"A": "a1", "B": "a0", "C": "a1", "D": "a0"}

    def select(self, tid: str, free: list[str]) -> str | None:
        chosen = self.follower.select(self.tasks[tid], [self.agents[a] for a in free])
        if chosen is None:
            return None
        self.tasks[tid].status = "running"
        chosen.current_load += 1
        return chosen.agent_id

    def end(self, tid: str, aid: str, took: float, status: str = "completed") -> None:
        agent = self.agents[aid]
        self.tasks[tid].status = status
        agent.current_load -= 1
        if status == "completed":
            agent.record_outcome(self.tasks[tid], took, True)

    def start(self) -> None:
        assert self.select("B", ["a0", "a1"]) == "a0"
        assert self.select("A", ["a1"]) == "a1"
        assert self.follower.exact


def test_a_run_that_is_the_plan_is_followed_exactly_to_the_end() -> None:
    run = Run()
    run.start()
    run.now = 5.0
    run.end("A", "a1", 5.0)
    assert run.select("C", ["a1"]) == "a1"
    assert run.follower.exact
    run.now = 6.0
    run.end("C", "a1", 1.0)
    run.now = 8.0
    run.end("B", "a0", 8.0)
    assert run.select("D", ["a0", "a1"]) == "a0"
    assert run.follower.exact


def test_a_task_that_ends_early_ends_exact_following_when_it_ends() -> None:
    run = Run()
    run.start()
    run.now = 4.0
    run.end("A", "a1", 4.0)
    run.select("C", ["a1"])
    assert not run.follower.exact


def test_a_failed_attempt_ends_exact_following() -> None:
    run = Run()
    run.start()
    run.now = 3.0
    run.end("A", "a1", 3.0, status="retrying")
    run.select("A", ["a1"])
    assert not run.follower.exact


def test_a_task_that_overruns_ends_exact_following() -> None:
    run = Run()
    run.start()
    run.now = 5.0
    run.end("A", "a1", 5.0)
    assert run.select("C", ["a1"]) == "a1"
    run.now = 8.0  # C was due at 6 and still runs
    run.end("B", "a0", 8.0)
    run.select("D", ["a0"])
    assert not run.follower.exact


def test_a_task_that_takes_another_time_than_planned_ends_exact_following() -> None:
    run = Run()
    run.start()
    run.now = 5.0
    run.end("A", "a1", 4.5)  # started late, say: it was seen to take 4.5
    run.select("C", ["a1"])
    assert not run.follower.exact


@pytest.mark.parametrize(("extra", "exact"), [(1, False), (-1, True)])
def test_work_it_did_not_dispatch_ends_exact_following_a_lent_slot_does_not(
    extra: int, exact: bool
) -> None:
    run = Run()
    run.start()
    run.now = 5.0
    run.end("A", "a1", 5.0)
    # +1: another run's task on a0; -1: B lends its slot on a0 while it waits
    run.agents["a0"].current_load += extra
    run.select("C", ["a1"])
    assert run.follower.exact is exact
