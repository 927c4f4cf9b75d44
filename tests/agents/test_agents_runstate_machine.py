"""RunState under random transitions: the invariants of its module docstring hold after every
step, for random DAGs, agents, capacities, resumed tasks and two runs sharing one pool."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wfkit.agents.dispatch import RunState
from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.policies import LeastLoaded, RoundRobin
from wfkit.agents.pool import AgentPool

CAPS = ("x", "y")
ENDINGS = {"completed", "failed", "skipped", "cancelled"}


@st.composite
def setups(draw: st.DrawFn) -> tuple[list[AgentProfile], list[list[WorkflowTask]]]:
    """Agents (at least one available) and one or two runs' task lists over them."""
    agents = []
    for k in range(draw(st.integers(1, 3))):
        caps = draw(st.lists(st.sampled_from(CAPS), unique=True, max_size=2))
        agents.append(
            AgentProfile(
                f"a{k}", f"a{k}", caps,
                capacity=draw(st.integers(1, 3)),
                availability=k == 0 or draw(st.booleans()),
            )
        )
    # a task needs a subset of what some available agent offers (the engine checks this
    # before a run starts; RunState assumes it)
    offered = [a.capabilities for a in agents if a.availability]
    runs = []
    for _ in range(draw(st.integers(1, 2))):
        n = draw(st.integers(1, 8))
        tasks = []
        for i in range(n):
            deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
            caps = draw(st.sampled_from(offered))
            tasks.append(
                WorkflowTask(
                    f"t{i}", f"t{i}",
                    draw(st.lists(st.sampled_from(caps), unique=True)) if caps else [],
                    draw(st.integers(0, 2)),
                    float(draw(st.integers(0, 3))),
                    [f"t{d}" for d in deps],
                )
            )
        runs.append(tasks)
    return agents, runs


class RunStateMachine(RuleBasedStateMachine):
    @initialize(setup=setups(), data=st.data())
    def start(self, setup, data) -> None:
        self.agents, task_lists = setup
        self.pool = AgentPool()
        self.runs: list[RunState] = []
        for tasks in task_lists:
            resumed = data.draw(st.sets(st.sampled_from([t.task_id for t in tasks])))
            policy = data.draw(st.sampled_from([LeastLoaded, RoundRobin]))()
            self.runs.append(
                RunState({t.task_id: t for t in tasks}, self.agents, policy, resumed, self.pool)
            )
        self.resumed = [set(r.finished) for r in self.runs]

    # -- helpers -------------------------------------------------------------------------

    def ready(self, run: RunState) -> set[str]:
        return {entry[3] for heap in run._heaps for entry in heap}

    def pick(self, data, ids) -> str:
        return data.draw(st.sampled_from(sorted(ids)))

    def run_with(self, data, attr: str) -> RunState:
        return data.draw(st.sampled_from([r for r in self.runs if getattr(r, attr)]))

    # -- transitions ---------------------------------------------------------------------

    @rule(data=st.data())
    def assign(self, data) -> None:
        run = data.draw(st.sampled_from(self.runs))
        before = self.ready(run)
        out = run.assign()
        started = [t.task_id for t, _ in out]
        assert len(set(started)) == len(started)
        assert set(started) <= before, "assign() started a task that was not ready"
        for task, agent in out:
            assert run.running[task.task_id] is agent
            assert agent.availability and agent.can_run(task.capability_set)
        # no ready task is held back while a free agent could run it
        for heap, candidates in zip(run._heaps, run._candidates, strict=True):
            if heap:
                assert not self.pool.with_room(candidates), "a free capable agent sits idle"

    @precondition(lambda self: any(r.running for r in self.runs))
    @rule(data=st.data())
    def complete(self, data) -> None:
        run = self.run_with(data, "running")
        tid = self.pick(data, run.running)
        assert run.complete(tid) == ()
        assert run.finished[tid] == "completed"
        for j in run.below[run.index[tid]]:
            dep = run.ids[j]
            deps = run.tasks[dep].dependencies
            if all(run.finished.get(d) == "completed" for d in deps):
                assert dep in self.ready(run) or dep in run.finished

    @precondition(lambda self: any(r.running for r in self.runs))
    @rule(data=st.data())
    def fail(self, data) -> None:
        run = self.run_with(data, "running")
        tid = self.pick(data, run.running)
        waiting = {run.ids[i] for i, w in enumerate(run.waiting) if w > 0}
        # what must be skipped: the waiting tasks reachable from tid through waiting tasks
        # (a resumed, completed task in between shields what lies below it)
        expected, stack = set(), [tid]
        while stack:
            for j in run.below[run.index[stack.pop()]]:
                d = run.ids[j]
                if d in waiting and d not in expected:
                    expected.add(d)
                    stack.append(d)
        skipped = run.fail(tid)
        assert run.finished[tid] == "failed"
        ids = [s for s, _ in skipped]
        assert len(set(ids)) == len(ids) and set(ids) == expected
        for sid, reason in skipped:
            assert run.finished[sid] == "skipped" and run.skip_reason[sid] == reason
            assert reason.startswith("dependency ")

    @precondition(lambda self: any(r.running for r in self.runs))
    @rule(data=st.data())
    def retry(self, data) -> None:
        run = self.run_with(data, "running")
        tid = self.pick(data, run.running)
        run.retry(tid)
        assert tid in run.backoff and tid not in run.running

    @precondition(lambda self: any(r.backoff for r in self.runs))
    @rule(data=st.data())
    def requeue(self, data) -> None:
        run = self.run_with(data, "backoff")
        tid = self.pick(data, run.backoff)
        run.requeue(tid)
        assert tid in self.ready(run) and tid not in run.backoff

    @rule(data=st.data())
    def cancel_all(self, data) -> None:
        run = data.draw(st.sampled_from(self.runs))
        was_running = dict(run.running)
        unfinished = set(run.unfinished())
        out = run.cancel_all()
        assert {tid for tid, _ in out} == unfinished
        assert {tid: a for tid, a in out if a is not None} == was_running
        assert run.done and not run.running and not run.backoff and not self.ready(run)
        assert all(run.finished[tid] == "cancelled" for tid in unfinished)
        assert run.assign() == []

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def every_task_is_in_exactly_one_place(self) -> None:
        for run in self.runs:
            ready = [e[3] for heap in run._heaps for e in heap]
            assert len(ready) == len(set(ready)), "a task is twice in the ready heaps"
            waiting = {run.ids[i] for i, w in enumerate(run.waiting) if w > 0}
            places = [waiting, set(ready), set(run.running), run.backoff, set(run.finished)]
            for tid in run.tasks:
                assert sum(tid in p for p in places) == 1, (tid, places)
            assert not run.held  # static graphs never hold a task
            assert set(run.finished.values()) <= ENDINGS
            assert run.done == (len(run.finished) == len(run.tasks))

    @invariant()
    def waiting_counts_the_dependencies_not_completed(self) -> None:
        for run, resumed in zip(self.runs, self.resumed, strict=True):
            for i, tid in enumerate(run.ids):
                deps = run.tasks[tid].dependencies
                missing = sum(run.finished.get(d) != "completed" for d in deps)
                if run.waiting[i] > 0:
                    assert run.waiting[i] == missing
                elif tid in run.running or tid in run.backoff or tid in self.ready(run) or (
                    run.finished.get(tid) in ("completed", "failed") and tid not in resumed
                ):
                    assert missing == 0, f"{tid} started before its dependencies completed"
                if run.finished.get(tid) == "skipped":
                    assert any(run.finished.get(d) in ("failed", "skipped") for d in deps)

    @invariant()
    def the_pool_counts_every_running_task_and_never_exceeds_a_capacity(self) -> None:
        for agent in self.agents:
            held = sum(a is agent for run in self.runs for a in run.running.values())
            assert self.pool.load(agent) == held == agent.current_load
            assert held <= agent.capacity
            if not agent.availability:
                assert held == 0

    @invariant()
    def a_run_with_nothing_in_flight_can_always_go_on(self) -> None:
        for run in self.runs:
            if not run.running and not run.backoff and not self.ready(run):
                assert run.done, f"stalled with {run.unfinished()} unfinished"


RunStateMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_run_state_machine = RunStateMachine.TestCase
