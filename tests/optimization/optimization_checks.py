"""Independent checks for schedules: feasibility from first principles, and brute-force optima.

Nothing here uses wfkit's schedulers; it reads a Schedule's frame and the raw inputs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import sys
from pathlib import Path

from wfkit import AgentProfile, WorkflowTask

STG_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks" / "stg"
# the STG reader (stg_format) is a benchmark helper beside the benchmarks, not in the package
sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))


def caps(values) -> set[str]:
    return {getattr(v, "value", v) for v in values}


def duration_of(task, agent, durations):
    if durations is None:
        return float(task.estimated_duration)
    if callable(durations):
        return float(durations(task, agent))
    entry = durations[task.task_id]
    return float(entry[agent.agent_id] if isinstance(entry, dict) else entry)


def comm_of(u, v, comm_costs):
    if comm_costs is None:
        return 0.0
    if callable(comm_costs):
        return float(comm_costs(u, v))
    return float(comm_costs.get((u, v), 0.0))


def check_schedule(tasks, agents, schedule, *, durations=None, comm_costs=None,
                   exact_durations=True, tol=1e-9):
    """Assert that ``schedule`` is feasible; return its makespan.

    Every task runs once, on an available agent that has all its capabilities, for its
    duration on that agent; it starts after each dependency finished (plus the transfer delay
    when the two ran on different agents); no agent ever runs more tasks than its capacity.
    """
    frame = schedule.frame()
    by_task = {t.task_id: t for t in tasks}
    by_agent = {a.agent_id: a for a in agents}
    assert sorted(frame["task_id"]) == sorted(by_task), "every task exactly once"
    rows = {r.task_id: r for r in frame.itertuples(index=False)}
    for tid, r in rows.items():
        task = by_task[tid]
        assert r.status == "completed", (tid, r.status)
        agent = by_agent.get(r.agent_id)
        assert agent is not None and agent.availability, (tid, r.agent_id)
        assert caps(task.required_capabilities) <= caps(agent.capabilities), (tid, r.agent_id)
        assert r.start >= -tol and r.finish >= r.start - tol, (tid, r.start, r.finish)
        if exact_durations:
            d = duration_of(task, agent, durations)
            assert math.isclose(r.finish - r.start, d, rel_tol=1e-9, abs_tol=tol), (
                tid, r.finish - r.start, d)
        for dep in task.dependencies:
            up = rows[dep]
            delay = comm_of(dep, tid, comm_costs) if up.agent_id != r.agent_id else 0.0
            assert r.start >= up.finish + delay - tol * max(1.0, abs(r.start)), (
                f"{tid} starts at {r.start} before {dep} ends at {up.finish} + {delay}")
    for aid, agent in by_agent.items():
        events = []
        for r in rows.values():
            if r.agent_id == aid and r.finish - r.start > tol:
                events.append((r.start, 1))
                events.append((r.finish, -1))
        events.sort(key=lambda e: (e[0], e[1]))  # at equal times, a release comes first
        load = 0
        for t, delta in events:
            load += delta
            assert load <= agent.capacity, f"agent {aid} runs {load} > {agent.capacity} at {t}"
    makespan = max((r.finish for r in rows.values()), default=0.0)
    assert math.isclose(makespan, schedule.makespan, rel_tol=1e-9, abs_tol=tol)
    assert schedule.lower_bound <= makespan + tol * max(1.0, makespan)
    return makespan


def brute_force_optimum(tasks, agents, durations=None, comm_costs=None):
    """The optimal makespan of a tiny instance with single-slot agents, by enumeration.

    Every assignment of tasks to capable agents, every order of the tasks consistent with the
    dependencies; each task starts as soon as its agent and its inputs allow.
    """
    assert all(a.capacity == 1 for a in agents)
    ids = [t.task_id for t in tasks]
    by_task = {t.task_id: t for t in tasks}
    options = [
        [a for a in agents if caps(by_task[tid].required_capabilities) <= caps(a.capabilities)]
        for tid in ids
    ]
    orders = [
        p for p in itertools.permutations(ids)
        if all(p.index(d) < p.index(t) for t in ids for d in by_task[t].dependencies)
    ]
    best = math.inf
    for choice in itertools.product(*options):
        where = dict(zip(ids, choice, strict=True))
        for order in orders:
            free = {}
            finish = {}
            for tid in order:
                a = where[tid]
                s = free.get(a.agent_id, 0.0)
                for dep in by_task[tid].dependencies:
                    delay = comm_of(dep, tid, comm_costs) if where[dep] is not a else 0.0
                    s = max(s, finish[dep] + delay)
                finish[tid] = s + duration_of(by_task[tid], a, durations)
                free[a.agent_id] = finish[tid]
            best = min(best, max(finish.values()))
    return best


def random_dag(n, seed, *, capabilities=("x",), max_deps=3, window=6, durations=(1, 9),
               integers=True):
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        pool = [f"t{j}" for j in range(max(0, i - window), i)]
        deps = rng.sample(pool, k=min(len(pool), rng.randint(0, max_deps)))
        need = [rng.choice(capabilities)]
        d = rng.randint(*durations) if integers else rng.uniform(*durations)
        tasks.append(WorkflowTask(f"t{i}", f"task {i}", need, 0, float(d), deps))
    return tasks


def mixed_pool():
    """Heterogeneous agents: capabilities overlap, capacities differ."""
    return [
        AgentProfile("gen", "generalist", ["x", "y"], capacity=2),
        AgentProfile("xs", "x only", ["x"]),
        AgentProfile("ys", "y only", ["y"], capacity=3),
        AgentProfile("off", "unavailable", ["x", "y"], availability=False),
    ]


def heterogeneous(tasks, agents, seed):
    rng = random.Random(seed)
    return {
        t.task_id: {a.agent_id: round(t.estimated_duration * rng.uniform(0.5, 2.0), 3)
                    for a in agents if a.availability
                    and caps(t.required_capabilities) <= caps(a.capabilities)}
        for t in tasks
    }


def comm_for(tasks, seed, low=0.0, high=4.0):
    rng = random.Random(seed)
    return {(d, t.task_id): round(rng.uniform(low, high), 2) for t in tasks for d in t.dependencies}


class _JumpingSelector:
    """Polls real I/O without waiting; when the loop would wait for a timer, time jumps to it."""

    def __init__(self, loop, real):
        self._loop = loop
        self._real = real

    def select(self, timeout=None):
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        scheduled = self._loop._scheduled
        if scheduled:
            self._loop.now = max(self._loop.now, scheduled[0]._when)
            return []
        return self._real.select(timeout)

    def __getattr__(self, name):
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a deterministic clock: a sleep takes no real time, and every timer
    fires at exactly its virtual time, in order. The live engine runs on it unchanged."""

    def __init__(self):
        super().__init__()
        self.now = 0.0
        self._selector = _JumpingSelector(self, self._selector)

    def time(self):
        return self.now


def run_on_virtual_time(coro_fn, monkeypatch):
    """Run ``coro_fn(loop)`` on a VirtualTimeLoop; the default clock (so the engine's
    timestamps) reads the loop's time meanwhile."""
    from wfkit.clock import SYSTEM

    loop = VirtualTimeLoop()
    monkeypatch.setattr(SYSTEM, "time", loop.time)
    monkeypatch.setattr(SYSTEM, "monotonic", loop.time)
    try:
        return loop.run_until_complete(coro_fn(loop))
    finally:
        loop.close()
