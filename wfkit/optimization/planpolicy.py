"""Executing a static plan inside the dispatcher, and adapting when reality drifts from it.

:class:`PlanFollower` is what ``policy="heft"`` (and ``Schedule.to_policy()``) runs. The
dispatcher offers it one ready task and the free capable agents at a time; it answers with an
agent or ``None`` (wait). It only observes what a live run can: a clock, the agents' loads, the
tasks' statuses, and its own dispatches.

- **Follow the plan exactly while it holds.** As long as every task has taken what it was
  expected to take (and nothing failed or was dispatched by someone else), a task goes to its
  planned agent and slot, after the tasks planned before it in that slot, as soon as the slot
  and its inputs are free. This is the plan with every start moved as early as the plan's own
  order allows, so any feasible plan followed with exact durations keeps its assignment and
  finishes no later than planned (a plan that does not wait without need finishes exactly).
- **Adapt** once reality has drifted from the plan: a task goes to its planned agent, in the
  plan's order on that agent: it waits while tasks planned earlier there are expected to need
  the slot before it could be done. Expected times come from the clock and the estimates of what is running: a task
  that overruns its estimate is expected to run as long again as it has overrun so far. When the
  planned agent is busy or taken by its earlier tasks, a task moves to another free agent if
  that finishes it strictly sooner *and* does not delay that agent's own planned work. Durations
  default to each agent's ``expected_duration`` (learned speed and durations), which the engine
  updates as tasks complete.

The dispatcher never lets a waiting plan stall an idle run (it falls back to least_loaded); a
dispatch the follower did not make is tolerated (its task counts as running, finish unknown).
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.graph import capable_agents, topological_order
from wfkit.optimization.costs import CommModel, DurationModel

__all__ = ["PlanFollower"]

_ENDED = frozenset({"completed", "failed", "skipped", "cancelled", "retrying"})
_GONE = frozenset({"failed", "skipped", "cancelled"})
_INF = float("inf")
_load_of = operator.attrgetter("current_load")
_TOL = 1e-9  # relative tolerance of "took what it was expected to take"
_DEPTH = 6  # how far back expected readiness is chased through undispatched tasks
REPLAN_DRIFT = 0.2  # re-plan when an agent runs 20% slower or faster than expected ...
REPLAN_AFTER = 2  # ... over at least this many of its tasks
MAX_REPLANS = 10  # ... and at most this often per run
PRIOR_TASKS = 2.0  # weight of the estimates against an agent's observed speed, in tasks


class PlanFollower:
    def __init__(
        self,
        tasks: Mapping[str, WorkflowTask],
        agents: Sequence[AgentProfile],
        *,
        durations: Any = None,
        comm_costs: Any = None,
        plan: Any = None,
        clock: Callable[[], float],
    ) -> None:
        from wfkit.optimization.heft import heft
        from wfkit.optimization.problem import Problem

        self.tasks = tasks
        self.agents = list(agents)
        self.by_id = {a.agent_id: a for a in self.agents}
        self.clock = clock
        plan_model = getattr(plan, "model", None) if plan is not None else None
        if durations is not None:
            self.estimate: Callable[[WorkflowTask, AgentProfile], float] = DurationModel(
                tasks, self.agents, durations
            )
        elif plan_model is not None:
            self.estimate = plan_model[0]
        else:
            self.estimate = _expected
        # fixed estimates are corrected by each agent's observed speed in this run; the
        # agents' own expected_duration already learns as tasks complete
        self.correct = self.estimate is not _expected
        # per agent: observed seconds, estimated seconds, tasks (completed this run)
        self.observed: dict[str, list[float]] = {a.agent_id: [0.0, 0.0, 0] for a in self.agents}
        self.ratio: dict[str, float] = {}
        # observed / expected since the current plan was made, per agent: (sum, sum, count)
        self.drift: dict[str, list[float]] = {a.agent_id: [0.0, 0.0, 0.0] for a in self.agents}
        self.replans = 0
        self._refreshed = -1.0
        if comm_costs is not None:
            self.comm = CommModel(tasks, comm_costs)
        elif plan_model is not None:
            self.comm = plan_model[1]
        else:
            self.comm = CommModel(tasks, None)
        index: dict[str, int] | None = None
        if plan is None:
            beliefs: Any = self.estimate
            if beliefs is _expected:  # a snapshot of what the agents expect now
                beliefs = _expectations(tasks, self.agents)
            problem = Problem(tasks, self.agents, beliefs, self.comm.cost or None)
            plan = heft(problem)
            if list(problem.tasks) == list(tasks):  # same tasks in the same order
                index = problem.index
        self.plan = plan
        # ties in planned start go in topological order (zero-duration tasks)
        self.index = index if index is not None else {
            tid: i for i, tid in enumerate(topological_order(tasks))
        }
        self._install(plan.agent, plan.start)
        self.exact = self._install_slots(plan)
        self.t0 = clock()
        # what we dispatched: task -> (agent id, expected start, expected finish)
        self.dispatched: dict[str, tuple[str, float, float]] = {}
        # per agent: the tasks we dispatched there that may still run
        # -> (expected finish, raw estimate, expected duration)
        self.active: dict[str, dict[str, tuple[float, float, float]]] = {
            a.agent_id: {} for a in self.agents
        }
        self._ours = [(a, self.active[a.agent_id]) for a in self.agents]
        self._actives = [running for _, running in self._ours]
        # while the run is the plan: (expected finish, task) of what we dispatched (a heap)
        self._due: list[tuple[float, str]] = []
        self._memo: dict[str, float] = {}
        self._memo_now = -1.0
        self.deviations = 0

    def _install(
        self,
        agent_of: Mapping[str, str | None],
        start: Mapping[str, float],
        only: Iterable[str] | None = None,
    ) -> None:
        """Take a plan's agents, start times and per-agent order (for ``only`` its tasks)."""
        if only is None:
            self.plan_agent: dict[str, str] = {}
            self.pstart: dict[str, float] = {}
        plan_agent, pstart, by_id = self.plan_agent, self.pstart, self.by_id
        index = self.index
        last = len(index)  # a mapped task's children come after the tasks planned ahead
        if only is None and len(index) == len(self.tasks):
            ordered: Iterable[str] = index  # every task, in topological order
        else:
            ordered = sorted(self.tasks if only is None else only,
                             key=lambda t: index.get(t, last))
        planned: list[str] = []
        for tid in ordered:
            aid = agent_of.get(tid)
            if aid is None or aid not in by_id:
                plan_agent.pop(tid, None)
                continue  # not in the plan, or its agent is not here: decided at run time
            plan_agent[tid] = aid
            pstart[tid] = start[tid]
            planned.append(tid)
        planned.sort(key=pstart.__getitem__)  # stable: equal starts stay in topological order
        queues: dict[str, list[str]] = {}
        for tid in planned:
            aid = plan_agent[tid]
            q = queues.get(aid)
            if q is None:
                queues[aid] = [tid]
            else:
                q.append(tid)
        self.queue = queues
        self._qpos: dict[str, int] | None = None  # each task's place in its queue, on demand
        self.head = dict.fromkeys(queues, 0)

    def _install_slots(self, plan: Any) -> bool:
        """Each slot's planned tasks in order; False when the plan cannot be followed exactly
        here (a task it does not place, an agent or slot this pool does not have)."""
        if any(getattr(t, "map", None) is not None for t in self.tasks.values()):
            return False  # mapped tasks: the run makes children the plan does not know
        if len(self.plan_agent) != len(self.tasks):
            return False  # a task the plan does not place here
        slot = getattr(plan, "slot", None) or {}
        queues: dict[tuple[str, int], list[str]] = {}
        slot_of: dict[str, tuple[str, int]] = {}
        for aid, q in self.queue.items():  # each agent's tasks in planned order
            capacity = self.by_id[aid].capacity
            for tid in q:
                k = slot.get(tid)
                if k is None or not 0 <= k < capacity:
                    return False
                sl = slot_of[tid] = (aid, k)
                sq = queues.get(sl)
                if sq is None:
                    queues[sl] = [tid]
                else:
                    sq.append(tid)
        self.slot_queue = queues
        self.slot_of = slot_of
        self.slot_head = dict.fromkeys(queues, 0)
        self.slot_last: dict[tuple[str, int], str] = {}
        return True

    def _follow_exactly(
        self,
        task: WorkflowTask,
        sl: tuple[str, int],
        candidates: Sequence[AgentProfile],
        now: float,
    ) -> AgentProfile | None:
        """The planned agent, once the tasks planned before this one in its slot are done."""
        tid = task.task_id
        q = self.slot_queue[sl]
        i = self.slot_head[sl]
        if i >= len(q) or q[i] != tid:
            tasks = self.tasks
            while i < len(q) and q[i] != tid and tasks[q[i]].status == "completed":
                i += 1  # finished before this run (resumed)
            self.slot_head[sl] = i
            if i >= len(q) or q[i] != tid:
                return None  # a task planned earlier in this slot has not been dispatched yet
        prev = self.slot_last.get(sl)
        if prev is not None and self.tasks[prev].status != "completed":
            return None  # the slot is still busy with it
        aid = sl[0]
        home = self.by_id[aid]
        if home not in candidates:  # not this very object: look it up by id
            found = [a for a in candidates if a.agent_id == aid]
            if not found:  # pragma: no cover - the slot is free, so the agent has room
                return None
            home = found[0]
        self.slot_last[sl] = tid
        self.slot_head[sl] = i + 1
        # what _take records, for a run that is the plan (every task planned, none mapped)
        est = d = self.estimate(task, home)
        if self.correct and aid in self.ratio:
            d = self.d(task, home)
        begin = max(now, self._ready_on(task, aid, now)) if self.comm.cost else now
        finish = begin + d
        self.dispatched[tid] = (aid, begin, finish)
        self.active[aid][tid] = (finish, est, finish - begin)
        heapq.heappush(self._due, (finish, tid))
        return home

    def _check_exact(self, now: float) -> None:
        """Leave exact following at the first sign that the run is not the plan.

        Incremental: only the tasks expected to have finished by ``now`` (a heap of expected
        finishes) are looked at one by one; every other dispatched task is expected to hold
        its slot still, which the agents' loads confirm at a glance. An agent holding fewer
        slots than that (a task ended early or failed, or lent its slot) is looked at closely.
        """
        tasks = self.tasks
        slack = _TOL * max(1.0, abs(now))
        early, late = now - slack, now + slack
        due = self._due
        if due and due[0][0] <= late:
            dispatched, active, by_id = self.dispatched, self.active, self.by_id
            observed, drifts = self.observed, self.drift
            learned: set[str] = set()
            later: list[tuple[float, str]] = []
            while due and due[0][0] <= late:
                fin, tid = heapq.heappop(due)
                status = tasks[tid].status
                if status == "completed":
                    aid = dispatched[tid][0]
                    running = active[aid]
                    _, est, expected = running[tid]
                    seen = by_id[aid].learned_durations.get(tid)
                    if seen is None:
                        del running[tid]
                        continue
                    if abs(seen - expected) > _TOL * max(1.0, abs(expected)):
                        self.exact = False  # it took another time than expected
                        return
                    del running[tid]  # as expected: what _fold would learn from it
                    if est > 0:
                        sums, drift = observed[aid], drifts[aid]
                        sums[0] += seen
                        sums[1] += est
                        sums[2] += 1
                        drift[0] += seen
                        drift[1] += expected
                        drift[2] += 1
                        learned.add(aid)
                elif (status == "running" or status == "pending") and fin >= early:
                    later.append((fin, tid))  # due about now: it may still end now
                else:
                    self.exact = False  # overrunning, failed, retrying, cancelled
                    return
            for item in later:
                heapq.heappush(due, item)
            if self.correct:
                for aid in learned:
                    self._learn_speed(aid)
        if list(map(_load_of, self.agents)) == list(map(len, self._actives)):
            return  # every agent holds exactly the slots of what we expect to run there
        for agent, running in self._ours:
            load = agent.current_load
            if load != len(running):
                if load > len(running):
                    self.exact = False  # work we did not dispatch
                    return
                for tid in running:  # fewer slots held than tasks running: which ended?
                    status = tasks[tid].status
                    if status != "running" and status != "pending":
                        self.exact = False  # ended before it was expected to
                        return

    def _replan(self, now: float) -> None:
        """HEFT again for what has not started, from the run's state and corrected speeds."""
        from wfkit.optimization.heft import heft_ranks, place
        from wfkit.optimization.problem import Problem

        # the tasks planned ahead; a mapped task's children (the run adds them to the same
        # mapping as they appear) are placed as they come, and hold their agents meanwhile
        index = self.index
        tasks = {tid: t for tid, t in self.tasks.items() if tid in index}
        only = [
            tid for tid, t in tasks.items()
            if tid not in self.dispatched and t.status in ("pending", "retrying")
        ]
        if len(only) < 2:
            return
        fixed: dict[str, tuple[str | None, float]] = {}
        for tid in self.dispatched:
            if tid in index:
                f, where = self._finished_at(tid, now)
                fixed[tid] = (where, f)
        for tid, t in tasks.items():
            if tid not in fixed and tid not in only:
                fixed[tid] = (None, now if t.status == "running" else 0.0)
        busy = {
            a.agent_id: [t for t in self._slot_times(a, now) if t > now] for a in self.agents
        }
        problem = Problem(tasks, self.agents, self.d, self.comm.cost or None)
        placed = place(
            problem, heft_ranks(problem), only=only, fixed=fixed, busy=busy, not_before=now
        )
        self._install(placed[0], placed[2], only=only)
        self._memo.clear()
        for drift in self.drift.values():
            drift[:] = [0.0, 0.0, 0.0]
        self.replans += 1

    def _drifted(self) -> bool:
        for s_obs, s_exp, n in self.drift.values():
            if n >= REPLAN_AFTER and s_exp > 0 and abs(s_obs / s_exp - 1.0) > REPLAN_DRIFT:
                return True
        return False

    # -- what the follower knows -------------------------------------------------------------

    def d(self, task: WorkflowTask, agent: AgentProfile) -> float:
        """The expected duration: the estimate, times the agent's observed speed this run."""
        try:
            d = self.estimate(task, agent)
        except KeyError:  # a mapped task's child: estimated as its task
            if task.parent_task_id is None:
                raise
            d = self.estimate(self.tasks[task.parent_task_id], agent)
        if self.correct:
            r = self.ratio.get(agent.agent_id)
            if r is not None:
                d *= r
        return d

    def _refresh(self, now: float) -> None:
        """Forget finished work; learn each agent's speed from what it finished this run."""
        if now == self._refreshed:
            return
        self._refreshed = now
        tasks = self.tasks
        for agent in self.agents:
            running = self.active[agent.agent_id]
            ended = [t for t in running if tasks[t].status in _ENDED]
            if ended:
                self._fold(agent, ended)

    def _fold(self, agent: AgentProfile, ended: list[str]) -> None:
        """Forget ``ended`` tasks of ``agent``; learn its speed from those that completed."""
        tasks = self.tasks
        running = self.active[agent.agent_id]
        sums = self.observed[agent.agent_id]
        drift = self.drift[agent.agent_id]
        for tid in ended:
            _, est, expected = running.pop(tid)
            seen = agent.learned_durations.get(tid)
            if tasks[tid].status == "completed" and seen is not None and est > 0:
                sums[0] += seen
                sums[1] += est
                sums[2] += 1
                drift[0] += seen
                drift[1] += expected
                drift[2] += 1
        if self.correct:
            self._learn_speed(agent.agent_id)

    def _learn_speed(self, aid: str) -> None:
        """The agent's speed this run, from what it completed (see :meth:`d`)."""
        sums = self.observed[aid]
        if sums[1] > 0:
            # shrink towards 1 by PRIOR_TASKS tasks of average estimate: one or two
            # noisy durations should not rewrite an agent's speed
            prior = PRIOR_TASKS * sums[1] / sums[2]
            r = (sums[0] + prior) / (sums[1] + prior)
            if abs(r - 1.0) > 1e-6:  # below that it is rounding, not speed
                self.ratio[aid] = r
            else:
                self.ratio.pop(aid, None)

    def _finished_at(self, tid: str, now: float) -> tuple[float, str | None]:
        """(when ``tid``'s output is expected to exist, on which agent) for a started task."""
        aid, _, fin = self.dispatched[tid]
        status = self.tasks[tid].status
        if status == "completed":
            return min(fin, now), aid
        if fin >= now:
            return fin, aid
        return now + (now - fin), aid  # overrunning: as long again as it has overrun so far

    def _ready_on(self, task: WorkflowTask, aid: str, now: float) -> float:
        """When the inputs of a ready task are on agent ``aid`` (its dependencies are done)."""
        ready = 0.0
        cost = self.comm.cost
        for dep in task.dependencies:
            if dep in self.dispatched:
                f, where = self._finished_at(dep, now)
                if cost and where != aid:
                    f += cost.get((dep, task.task_id), 0.0)
            else:
                f = 0.0  # finished before this run (resumed) or by a dispatch we did not make
            if f > ready:
                ready = f
        return ready

    def _expected_ready(self, tid: str, now: float, depth: int = 0) -> float:
        """When a pending task's inputs are expected on its planned agent (inf: never)."""
        if self._memo_now != now:
            self._memo.clear()
            self._memo_now = now
        memo = self._memo.get(tid)
        if memo is not None:
            return memo
        aid = self.plan_agent.get(tid)
        cost = self.comm.cost
        ready = 0.0
        for dep in self.tasks[tid].dependencies:
            status = self.tasks[dep].status
            if status in _GONE:
                ready = _INF
                break
            if dep in self.dispatched:
                f, where = self._finished_at(dep, now)
            elif status == "completed":
                f, where = 0.0, aid
            else:
                where = self.plan_agent.get(dep)
                agent = self.by_id.get(where) if where is not None else None
                if agent is None:
                    f = now
                else:
                    begin = max(now, self.pstart.get(dep, now))
                    if depth < _DEPTH:
                        begin = max(begin, self._expected_ready(dep, now, depth + 1))
                    f = begin + self.d(self.tasks[dep], agent)
            if cost and where != aid:
                f += cost.get((dep, tid), 0.0)
            if f > ready:
                ready = f
        self._memo[tid] = ready
        return ready

    def _pending(self, aid: str) -> int:
        """Advance ``aid``'s queue head past tasks that were dispatched or will never run."""
        q = self.queue.get(aid, ())
        i = self.head.get(aid, 0)
        while i < len(q) and (q[i] in self.dispatched or self.tasks[q[i]].status in _GONE
                              or self.tasks[q[i]].status == "completed"):
            i += 1
        self.head[aid] = i
        return i

    def _slot_times(self, agent: AgentProfile, now: float) -> list[float]:
        """When each of the agent's slots is expected to be free (a heap)."""
        running = self.active[agent.agent_id]
        load = min(agent.current_load, agent.capacity)
        releases = sorted(self._finished_at(t, now)[0] for t in running)[-load:] if load else []
        releases += [now] * (load - len(releases))  # work we did not dispatch: unknown
        times = [now] * (agent.capacity - load) + releases
        heapq.heapify(times)
        return times

    def _start_following_plan(
        self, task: WorkflowTask, agent: AgentProfile, ready: float, d: float, now: float
    ) -> tuple[float, int]:
        """When ``task`` can start on its planned agent after the tasks planned before it
        there, and how many of those need a slot first."""
        aid = agent.agent_id
        slots = self._slot_times(agent, now)
        q = self.queue.get(aid, [])
        i = self._pending(aid)
        if self._qpos is None:
            self._qpos = {t: k for queue in self.queue.values() for k, t in enumerate(queue)}
        stop = self._qpos.get(task.task_id, i)
        checked = ahead = 0
        while i < stop and checked <= 2 * agent.capacity + 1:
            u = q[i]
            i += 1
            if u in self.dispatched or self.tasks[u].status in _GONE:
                continue
            checked += 1
            e = max(now, self._expected_ready(u, now))
            if e >= max(ready, slots[0]) + d:
                break  # the task is done before the next planned one needs the slot
            heapq.heapreplace(slots, max(e, slots[0]) + self.d(self.tasks[u], agent))
            ahead += 1
        return max(now, ready, slots[0]), ahead

    def _free_for(self, agent: AgentProfile, until: float, now: float) -> bool:
        """Whether the agent can run something until ``until`` without delaying its plan."""
        aid = agent.agent_id
        free = agent.capacity - agent.current_load
        q = self.queue.get(aid, [])
        i = self._pending(aid)
        wanting = 0
        while i < len(q) and wanting < free:
            u = q[i]
            i += 1
            if u in self.dispatched or self.tasks[u].status in _GONE:
                continue
            if max(now, self._expected_ready(u, now)) >= until:
                break
            wanting += 1
        return wanting < free

    # -- the policy ---------------------------------------------------------------------------

    def _take(self, task: WorkflowTask, agent: AgentProfile, now: float) -> AgentProfile:
        tid = task.task_id
        old = self.dispatched.get(tid)
        if old is not None:
            self.active[old[0]].pop(tid, None)
        begin = max(now, self._ready_on(task, agent.agent_id, now))
        try:
            est = self.estimate(task, agent)
        except KeyError:  # a mapped task's child: as self.d says
            est = None
        ratio = self.ratio.get(agent.agent_id) if self.correct else None
        d = self.d(task, agent) if est is None or ratio is not None else est
        finish = begin + d
        self.dispatched[tid] = (agent.agent_id, begin, finish)
        self.active[agent.agent_id][tid] = (
            finish, self.estimate(task, agent) if est is None else est, finish - begin
        )
        return agent

    def _soonest(
        self, task: WorkflowTask, candidates: Sequence[AgentProfile], now: float
    ) -> tuple[AgentProfile, float]:
        best: AgentProfile | None = None
        best_f = _INF
        for agent in candidates:
            f = max(now, self._ready_on(task, agent.agent_id, now)) + self.d(task, agent)
            if best is None or f < best_f:
                best, best_f = agent, f
        assert best is not None
        return best, best_f

    def select(
        self, task: WorkflowTask, candidates: Sequence[AgentProfile]
    ) -> AgentProfile | None:
        now = self.clock() - self.t0
        if now != self._refreshed:
            if self.exact:
                self._check_exact(now)
            if self.exact:  # the run is the plan: nothing has drifted
                self._refreshed = now
            else:
                self._refresh(now)
                if self.replans < MAX_REPLANS and self._drifted():
                    self._replan(now)
        tid = task.task_id
        if self.exact:
            sl = self.slot_of.get(tid)
            if sl is not None and tid not in self.dispatched:
                return self._follow_exactly(task, sl, candidates, now)
            self.exact = False  # a retry, or a task the plan does not know
        planned = self.plan_agent.get(tid)
        if planned is None or tid in self.dispatched:
            # not planned here, or a retry: the free agent that finishes it first
            if planned is not None:
                for agent in candidates:
                    if agent.agent_id == planned:
                        return self._take(task, agent, now)
            return self._take(task, self._soonest(task, candidates, now)[0], now)
        home = self.by_id[planned]
        d = self.d(task, home)
        ready = self._ready_on(task, planned, now)
        begin, ahead = self._start_following_plan(task, home, ready, d, now)
        # a dispatched task holds its slot while its inputs arrive: it may only go now if
        # the tasks planned before it leave it a free slot
        if (
            any(a is home for a in candidates)
            and ahead < home.capacity - home.current_load
            and begin <= max(now, ready) + 1e-9 * max(1.0, abs(begin))
        ):
            return self._take(task, home, now)
        # the plan says wait: is another free agent strictly sooner, without hurting its plan?
        wait_finish = begin + d
        best: AgentProfile | None = None
        best_f = wait_finish - 1e-9 * max(1.0, abs(wait_finish))
        for agent in candidates:
            if agent is home:
                continue
            f = max(now, self._ready_on(task, agent.agent_id, now)) + self.d(task, agent)
            if f < best_f and self._free_for(agent, f, now):
                best, best_f = agent, f
        if best is not None:
            self.deviations += 1
            return self._take(task, best, now)
        return None


def _expected(task: WorkflowTask, agent: AgentProfile) -> float:
    return agent.expected_duration(task)


def _expectations(
    tasks: Mapping[str, WorkflowTask], agents: Sequence[AgentProfile]
) -> DurationModel:
    """``expected_duration`` of every capable agent for every task, as a checked model
    (agents that learned nothing expect each task's estimate times their speed)."""
    capable = capable_agents(tasks, agents)
    model = DurationModel(tasks, agents, None, capable=capable)
    table: dict[str, Any] = {}
    plain = {
        a.agent_id: a.performance_metrics["speed_ratio"]
        for a in agents
        if not a.learned_durations
    }
    speeds = {  # per capability class: (agent id, speed) when no agent of it learned anything
        sig: [(a.agent_id, float(plain[a.agent_id])) for a in cands]
        if all(a.agent_id in plain for a in cands) else None
        for sig, cands in capable.items()
    }
    # a class whose agents all run at one speed: a task takes the same on each (one number)
    same = {
        sig: pairs[0][1] for sig, pairs in speeds.items()
        if pairs and all(sp == pairs[0][1] for _, sp in pairs)
    }
    for tid, task in tasks.items():
        est = float(task.estimated_duration)
        sig = task.capability_set
        sp = same.get(sig)
        if sp is not None:
            table[tid] = est * sp
            continue
        pairs = speeds[sig]
        if pairs is not None:
            table[tid] = {aid: est * sp for aid, sp in pairs}
        else:
            table[tid] = {
                a.agent_id: float(a.expected_duration(task))
                for a in capable[task.capability_set]
            }
    model.kind, model.table = "matrix", table
    return model
