"""The discrete-event simulator: the engine's own dispatch logic on virtual time.

``simulate`` drives the same :class:`~wfkit.agents.dispatch.RunState` and the same policy
objects as the live engine, with private copies of the agents (their loads, metrics and learned
durations move as in a real run, the user's objects never do), so a what-if answer follows the
choices a real run makes. Like the engine, it dispatches once after every batch of simultaneous
completions. A task holds its agent slot from dispatch to finish; with ``comm_costs`` it starts
when the data of its dependencies that ran on other agents has arrived.
"""

from __future__ import annotations

import copy
import math
import numbers
import random
from collections.abc import Callable, Mapping
from heapq import heappop, heappush
from typing import Any

from wfkit.agents.dispatch import RunState, retry_delay
from wfkit.agents.model import WorkflowTask
from wfkit.agents.policies import Fastest, LeastLoaded, PolicyLike, RoundRobin, resolve_policy
from wfkit.errors import ScheduleError, WfkitError
from wfkit.graph import capable_agents
from wfkit.graph import lower_bound as graph_lower_bound
from wfkit.optimization.costs import (
    CommArg,
    CommModel,
    DurationModel,
    DurationsArg,
    check_number,
)
from wfkit.optimization.inputs import AgentsLike, TasksLike, agent_list, copy_agent, task_graph
from wfkit.optimization.policies import Heft
from wfkit.optimization.schedule import Schedule

__all__ = ["simulate"]

# Policies whose choices depend on neither task statuses nor learned durations: the simulator
# skips that bookkeeping for them (it changes nothing they could see).
_STATUS_BLIND = (LeastLoaded, RoundRobin, Fastest)
_LEARNING_BLIND = (LeastLoaded, RoundRobin)

Noise = float | Callable[[float, random.Random], float] | None


def _noise_fn(noise: Noise, rng: random.Random) -> Callable[[float], float] | None:
    """Multiplicative log-normal noise with mean 1 and coefficient of variation ``noise``."""
    if noise is None:
        return None
    if callable(noise):
        fn = noise

        def custom(d: float) -> float:
            return check_number(fn(d, rng), "noise(duration, rng) (the callable's result)")

        return custom
    cv = check_number(noise, "noise (the coefficient of variation of durations)")
    if cv == 0:
        return None
    sigma = math.sqrt(math.log1p(cv * cv))
    mu = -sigma * sigma / 2
    lognorm = rng.lognormvariate

    def lognormal(d: float) -> float:
        return d * lognorm(mu, sigma)

    return lognormal


def _failure_map(failures: Any, tasks: Mapping[str, WorkflowTask]) -> dict[str, float]:
    if failures is None:
        return {}

    def prob(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0.0 <= float(value) <= 1.0
        ):
            raise ScheduleError(f"{what} must be a probability between 0 and 1, got {value!r}")
        return float(value)

    if isinstance(failures, Mapping):
        unknown = sorted(str(t) for t in failures if t not in tasks)
        if unknown:
            raise ScheduleError(
                f"failures names unknown task(s) {', '.join(map(repr, unknown[:5]))}: "
                f"use the task ids of the workflow"
            )
        out = {tid: prob(p, f"failures[{tid!r}]") for tid, p in failures.items()}
    else:
        p = prob(failures, "failures")
        out = dict.fromkeys(tasks, p)
    return {tid: p for tid, p in out.items() if p > 0}


def _copy_task(task: WorkflowTask) -> WorkflowTask:
    clone = task.__copy__()  # what copy.copy calls, without its dispatch (once per task)
    clone.status = "pending"
    return clone


def simulate(
    tasks: TasksLike,
    agents: AgentsLike,
    *,
    policy: PolicyLike = "least_loaded",
    durations: DurationsArg = None,
    comm_costs: CommArg = None,
    estimates: DurationsArg = None,
    noise: Noise = None,
    seed: int | None = None,
    failures: float | Mapping[str, float] | None = None,
    backoff: float = 0.1,
    max_backoff: float = 30.0,
    map_sizes: Mapping[str, int] | None = None,
) -> Schedule:
    """Run the workflow on virtual time with the engine's dispatch logic; return its Schedule.

    ``policy`` is a name, a Policy or a callable, meaning what it means to the orchestrator.
    ``durations`` (what tasks take) and ``comm_costs`` are described in
    :mod:`wfkit.optimization.costs`. Durations given are the best knowledge: the policies plan
    with them (``"heft"``, or a ``Heft()`` without figures of its own, plans HEFT on them, so
    ``simulate(..., policy="heft", durations=d)`` runs ``plan_schedule(..., durations=d)``'s
    plan) and the dispatcher's priorities (remaining critical path) use them. ``estimates``
    (same forms) are what the policies and priorities believe instead, for what-if studies of
    wrong estimates; without either, they believe each task's ``estimated_duration`` and each
    agent's ``expected_duration``. ``noise`` makes actual
    durations differ from ``durations``: a coefficient of variation (log-normal, mean 1) or a
    callable ``(duration, rng) -> duration``; ``seed`` makes it repeatable; the schedule's
    ``lower_bound`` and ``gap`` are then those of the durations drawn. ``failures`` (a
    probability, or {task_id: probability}) fails attempts at random; the tasks' ``retries``
    and the engine's backoff (``backoff`` doubled per attempt, with jitter) apply as in a run.

    Dynamic workflows: ``map_sizes`` ({task_id: n}) says how many items each mapped task
    will map over (a map over a mapped task follows its size); its children ``task[i]`` then
    take the task's durations, failure probability and estimates. Conditions (``when=``)
    cannot be known ahead, so every task is planned as if they held (the longest case);
    trigger rules apply as in a run. The schedule lists the children, not the mapped task.
    """
    graph = task_graph(tasks)  # CycleError too
    sizes = _map_sizes(map_sizes, graph.tasks)
    by_id = graph.tasks
    pool = agent_list(agents)
    copies = [copy_agent(a) for a in pool if a.availability]
    capable = capable_agents(by_id, copies)
    model = DurationModel(by_id, pool, durations, capable=capable)
    comm = CommModel(by_id, comm_costs)
    beliefs = estimates if estimates is not None else durations
    believed = model
    if estimates is not None:
        believed = DurationModel(by_id, pool, estimates, capable=capable)
    backoff = check_number(backoff, "backoff")
    max_backoff = check_number(max_backoff, "max_backoff")
    rng = random.Random(seed)
    draw = _noise_fn(noise, rng)
    fail_p = _failure_map(failures, by_id)
    dynamic = graph.dynamic
    if dynamic and model.table is not None:  # the children's rows are added as they appear
        model.table = dict(model.table)
    pol = resolve_policy(policy)
    track_status = type(pol) not in _STATUS_BLIND
    learn = type(pol) not in _LEARNING_BLIND
    if believed.kind != "estimate":
        # priorities and the agents' expectations start from the believed durations
        run_tasks = {tid: _copy_task(t) for tid, t in by_id.items()}
        mean = believed.means()
        for tid, t in run_tasks.items():
            t.estimated_duration = mean[tid]
    else:
        run_tasks = {tid: _copy_task(t) for tid, t in by_id.items()} if track_status else by_id
    # a Heft policy without figures of its own plans on the believed durations
    lend = isinstance(pol, Heft) and beliefs is not None and pol.durations is None
    lent = (pol.durations, pol.comm_costs) if isinstance(pol, Heft) else None

    now = 0.0
    has_clock = hasattr(pol, "clock")
    saved_clock = getattr(pol, "clock", None)
    if has_clock:
        setattr(pol, "clock", lambda: now)  # noqa: B010 - policies with a clock see virtual time
    if lend:
        assert isinstance(pol, Heft)
        pol.durations = believed if believed.kind != "estimate" else beliefs
        if pol.comm_costs is None:
            pol.comm_costs = comm_costs
    try:
        state = RunState(graph.with_tasks(run_tasks), copies, pol)
        agent_of: dict[str, str] = {}
        start_of: dict[str, float] = {}
        finish_of: dict[str, float] = {}
        hold: dict[str, float] = {}
        attempts: dict[str, int] = {}
        extra_busy: dict[str, float] = {}
        failing: set[str] = set()
        ends: list[tuple[float, str]] = []
        timers: list[tuple[float, str]] = []
        drawn: dict[str, tuple[str, float, float]] = {}  # with noise: (agent, nominal, drawn)
        table = model.table
        fn = model if model.kind == "callable" else None
        cost = comm.cost

        def settle_held() -> None:
            """Conditions are taken to hold; maps expand to their given sizes."""
            while state.held:
                for t in state.take_held():
                    if t.map is None:
                        state.release(t.task_id)
                        continue
                    children, ended = state.expand(t.task_id, sizes[t.task_id])
                    for child in children:
                        parent = child.parent_task_id
                        if table is not None:
                            table[child.task_id] = table[parent]  # type: ignore[index]
                        if parent in fail_p:
                            fail_p[child.task_id] = fail_p[parent]
                    for sid, _reason in ended:
                        status_of[sid] = state.finished[sid]

        def dispatch() -> None:
            if state.held:
                settle_held()
            for task, agent in state.assign():
                tid = task.task_id
                aid = agent.agent_id
                if table is not None:
                    entry = table[tid]
                    d = entry if entry.__class__ is float else entry[aid]  # type: ignore[index]
                elif fn is not None:
                    d = fn(task, agent)
                else:
                    d = task.estimated_duration
                if draw is not None:
                    nominal, d = d, draw(d)
                    drawn[tid] = (aid, nominal, d)
                begin = now
                if cost:
                    for dep in task.dependencies:
                        if agent_of.get(dep) != aid:
                            c = cost.get((dep, tid))
                            if c is not None and finish_of[dep] + c > begin:
                                begin = finish_of[dep] + c
                    if begin > now:
                        hold[tid] = now
                    else:
                        hold.pop(tid, None)
                end = begin + d
                agent_of[tid] = aid
                start_of[tid] = begin
                finish_of[tid] = end
                if fail_p:
                    attempts[tid] = attempts.get(tid, 0) + 1
                    p = fail_p.get(tid)
                    if p is not None and rng.random() < p:
                        failing.add(tid)
                if track_status:
                    task.status = "running"
                heappush(ends, (end, tid))

        def finish(tid: str) -> None:
            agent = state.running[tid]
            task = state.tasks[tid]
            if tid in failing:
                failing.discard(tid)
                if learn:
                    agent.record_outcome(task, finish_of[tid] - start_of[tid], False)
                attempt = attempts[tid]
                if attempt <= task.retries:
                    extra_busy[agent.agent_id] = (
                        extra_busy.get(agent.agent_id, 0.0) + finish_of[tid] - start_of[tid]
                    )
                    state.retry(tid)
                    delay = retry_delay(attempt, backoff, max_backoff, rng)
                    if track_status:
                        task.status = "retrying"
                    heappush(timers, (now + delay, tid))
                    return
                status_of[tid] = "failed"
                if track_status:
                    task.status = "failed"
                for sid, _reason in state.fail(tid):
                    status_of[sid] = state.finished[sid]
                    if track_status:
                        state.tasks[sid].status = state.finished[sid]
                return
            if learn:
                agent.record_outcome(task, finish_of[tid] - start_of[tid], True)
            if track_status:
                task.status = "completed"
            for sid, _reason in state.complete(tid):  # a mapped task ended with its children
                status_of[sid] = state.finished[sid]

        status_of: dict[str, str] = {}
        rows: list[tuple[str, str, float, float]] | None = None
        if not (fn or draw or cost or fail_p or dynamic):
            rows = []

            def tick(t: float) -> None:  # a policy's clock reads the simulation's time
                nonlocal now
                now = t

            now = _run_plain(
                state, table, rows, track=track_status, learn=learn,
                tick=tick if has_clock else None,
            )
            ends = []
        else:
            dispatch()
        while ends or timers:
            if timers and (not ends or timers[0][0] < ends[0][0]):
                now = timers[0][0]
            else:
                now = ends[0][0]
            while ends and ends[0][0] == now:
                finish(heappop(ends)[1])
            while timers and timers[0][0] == now:
                tid = heappop(timers)[1]
                state.requeue(tid)
                if track_status:
                    state.tasks[tid].status = "pending"
            dispatch()
        if not state.done:  # pragma: no cover - RunState never stalls an idle run
            raise WfkitError(
                f"the simulation stopped with {len(state.unfinished())} task(s) unfinished"
            )
    finally:
        if has_clock:
            setattr(pol, "clock", saved_clock)  # noqa: B010
        if lend and lent is not None and isinstance(pol, Heft):
            pol.durations, pol.comm_costs = lent

    name = getattr(pol, "name", "policy")
    bound_tasks: Mapping[str, WorkflowTask] = by_id
    task_ids = list(by_id)
    if dynamic:
        mapped = state.mapped()
        task_ids = [tid for tid in state.tasks if tid not in mapped]
        if mapped:
            bound_tasks = _expanded(state.tasks, mapped)
            status_of = {tid: s for tid, s in status_of.items() if tid not in mapped}
    return Schedule(
        task_ids=task_ids,
        agent=agent_of,
        start=start_of,
        finish=finish_of,
        rows=rows,
        capacities={a.agent_id: a.capacity for a in copies},
        lower_bound=lambda: graph_lower_bound(
            bound_tasks, pool, agent_duration=_as_drawn(model, drawn) if drawn else (
                None if model.kind == "estimate" else model
            )
        ),
        method=f"simulate:{name}",
        status=status_of or None,
        attempts=attempts or None,
        hold=hold,
        extra_busy=extra_busy,
        makespan=now,
        info={"policy": name, "seed": seed, "noise": noise},
        model=(model, comm),
    )


def _as_drawn(
    model: DurationModel, drawn: Mapping[str, tuple[str, float, float]]
) -> Callable[[WorkflowTask, Any], float]:
    """Durations as the noise drew them, for a lower bound of the run that was simulated: a
    task took what was drawn on the agent it ran on (its last attempt), and its noise factor
    scales its durations on the others. A bound on nominal durations would not hold for it."""

    def duration(task: WorkflowTask, agent: Any) -> float:
        got = drawn.get(task.task_id)
        if got is None:  # never ran: as planned
            return model(task, agent)
        aid, nominal, actual = got
        if agent.agent_id == aid:
            return actual
        return model(task, agent) * (actual / nominal) if nominal > 0 else 0.0

    return duration


def _map_sizes(
    map_sizes: Mapping[str, int] | None, tasks: Mapping[str, WorkflowTask]
) -> dict[str, int]:
    """Check ``map_sizes`` against the workflow: a size for every task that maps over
    run-time data (a map over a mapped task follows that one), nothing else."""
    wanted = [
        tid for tid, t in tasks.items() if t.map is not None and tasks[t.map].map is None
    ]
    if not isinstance(map_sizes, Mapping | None):
        raise ScheduleError(f"map_sizes must be a dict {{task_id: n}}, got {map_sizes!r}")
    given = dict(map_sizes or {})
    extra = [tid for tid in given if tid not in wanted]
    if extra:
        follows = [tid for tid in extra if tid in tasks and tasks[tid].map is not None]
        hint = (
            f" ({', '.join(map(repr, follows))} map element by element over a mapped task and "
            f"take its size)" if follows else ""
        )
        raise ScheduleError(
            f"map_sizes names {', '.join(map(repr, extra[:5]))}, which do not map over "
            f"run-time data{hint}; give sizes for {', '.join(map(repr, wanted)) or 'no task'}"
        )
    missing = [tid for tid in wanted if tid not in given]
    if missing:
        example = ", ".join(f"{tid!r}: n" for tid in missing[:3])
        raise ScheduleError(
            f"task(s) {', '.join(map(repr, missing))} map over data known only at run time: "
            f"say how many items to plan for, simulate(..., map_sizes={{{example}}})"
        )
    for tid, n in given.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ScheduleError(f"map_sizes[{tid!r}] must be an int >= 0, got {n!r}")
    return given


def _expanded(
    tasks: Mapping[str, WorkflowTask], mapped: Mapping[str, list[str]]
) -> dict[str, WorkflowTask]:
    """The tasks that ran, as a static workflow: mapped tasks replaced by their children
    (for the lower bound)."""
    out: dict[str, WorkflowTask] = {}
    for tid, t in tasks.items():
        if tid in mapped:
            continue
        clone = copy.copy(t)
        clone.dependencies = [c for d in t.dependencies for c in mapped.get(d, (d,))]
        clone.map, clone.when, clone.trigger = None, None, "all_success"
        out[tid] = clone
    return out


def _run_plain(
    state: RunState,
    table: dict[str, Any] | None,
    rows: list[tuple[str, str, float, float]],
    *,
    track: bool = False,
    learn: bool = False,
    tick: Callable[[float], None] | None = None,
) -> float:
    """The loop of :func:`simulate` when there is nothing but durations to account for.

    Same transitions as the general loop, fewer branches, and the timetable kept as rows:
    this is what keeps a 100,000-task simulation well under the engine's own time. With
    ``track`` the tasks' statuses move as in a run, with ``learn`` the agents learn from each
    completion (for policies that look at either), in the general loop's order; ``tick``
    is told each new time (a policy's clock).
    """
    assign = state.assign
    complete_many = state.complete_many
    record = rows.append
    times: list[float] = []  # distinct pending finish times (a heap)
    due: dict[float, list[str]] = {}  # finish time -> tasks ending then
    watch = track or learn
    tasks, running = state.tasks, state.running
    began: dict[str, float] = {}
    now = 0.0
    while True:
        for task, agent in assign():
            tid = task.task_id
            if table is None:
                end = now + task.estimated_duration
            else:
                entry = table[tid]
                end = now + (entry if entry.__class__ is float else entry[agent.agent_id])
            record((tid, agent.agent_id, now, end))
            if watch:
                began[tid] = now
                if track:
                    task.status = "running"
            batch = due.get(end)
            if batch is None:
                due[end] = [tid]
                heappush(times, end)
            else:
                batch.append(tid)
        if not times:
            return now
        now = heappop(times)
        if tick is not None:
            tick(now)
        batch = due.pop(now)
        if watch:
            batch.sort()  # as the general loop ends them: by (finish, task id)
            for tid in batch:
                task = tasks[tid]
                if learn:
                    running[tid].record_outcome(task, now - began[tid], True)
                if track:
                    task.status = "completed"
        complete_many(batch)
