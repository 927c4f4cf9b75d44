"""The public face of collective agent workflows: register agents, create and run workflows.

An orchestrator's runs may overlap (several ``execute_workflow`` awaits at once) and share its
agents. Each run gets its own policy object (:func:`~wfkit.agents.policies.resolve_policy`)
and the orchestrator's one :class:`~wfkit.agents.pool.AgentPool`, which accounts agent
capacity across all of them (``AgentProfile.current_load`` mirrors it) and wakes the other
runs when a slot frees.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wfkit.agents.engine import WorkflowRun
from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.params import check_declared, resolve_params
from wfkit.agents.policies import PolicyLike, resolve_policy
from wfkit.agents.pool import AgentPool
from wfkit.agents.registry import AgentRegistry
from wfkit.agents.results import RunResult
from wfkit.agents.subruns import lend_slot, parent_context
from wfkit.cache import CACHE_MODES, ResultCache
from wfkit.clock import SYSTEM, Clock
from wfkit.errors import (
    ResumeError,
    SubWorkflowCycleError,
    UnknownWorkflowError,
    ValidationError,
    WfkitError,
    WorkflowChangedError,
)
from wfkit.events import Event, EventBus, WorkflowCreated
from wfkit.executors.base import Executor
from wfkit.graph import TaskGraph, capable_agents
from wfkit.interrupt import cancel_on_interrupt
from wfkit.lifecycle import Closing

if TYPE_CHECKING:
    from wfkit.agents.builder import Workflow
    from wfkit.metrics.store import RunStore

__all__ = ["CollectiveAgentWorkflowOrchestrator"]

# A workflow's task ids added, removed and changed since create_workflow.
_Diff = tuple[list[str], list[str], list[str]]

log = logging.getLogger("wfkit.orchestrator")


class CollectiveAgentWorkflowOrchestrator(Closing):
    """Runs DAGs of :class:`WorkflowTask` on registered :class:`AgentProfile` agents.

    ``policy`` picks an agent for each ready task (a name from
    :data:`wfkit.agents.policies.POLICIES` or a callable). ``store`` (a :class:`wfkit.RunStore`
    or a path) records every run durably and makes ``resume=`` possible. ``executor`` runs sync
    work (a thread pool by default). ``backoff`` and ``max_backoff`` shape retry delays (seconds,
    doubled per attempt, with jitter). ``clock`` stamps events and times retry delays and task
    timeouts (:data:`wfkit.clock.SYSTEM`; a :class:`wfkit.clock.ManualClock` steps them in tests).
    """

    def __init__(
        self,
        *,
        policy: PolicyLike = "least_loaded",
        store: RunStore | str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
        backoff: float = 0.1,
        max_backoff: float = 30.0,
        progress: bool | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        resolve_policy(policy)  # an unknown name fails here, not at the first run
        self.policy = policy
        self.agents: dict[str, AgentProfile] = AgentRegistry()
        self.workflows: dict[str, dict[str, Any]] = {}
        self._bus = EventBus()
        self._active: dict[str, WorkflowRun] = {}
        self.pool = AgentPool()  # capacity of the agents, across concurrent runs
        if executor is None:
            from wfkit.executors.local import ThreadExecutor

            executor = ThreadExecutor()
            self._owns_executor = True
        else:
            self._owns_executor = False
        self.executor = executor
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.progress = progress
        self.store: RunStore | None = None
        if store is not None:
            self._attach_store(store)
        # Results of cacheable tasks: in the store's file when there is one, else in memory.
        self.cache = ResultCache(
            self.store.path if self.store is not None else None,
            json_only=bool(getattr(self.store, "json_only_results", False)),
        )

    def _attach_store(self, store: RunStore | str | os.PathLike[str]) -> None:
        self._owns_store = isinstance(store, str | os.PathLike)
        if isinstance(store, str | os.PathLike):
            from wfkit.metrics.store import RunStore

            store = RunStore(store)
        self.store = store
        store.attach(self)

    # -- registration ------------------------------------------------------------------------

    def register_agent(self, profile: AgentProfile) -> AgentProfile:
        """Add an agent. Another agent under a used id replaces it (re-running a notebook
        cell), unless the old one takes part in a run that is going on: that is an error
        naming the run."""
        if not isinstance(profile, AgentProfile):
            raise ValidationError(
                f"register_agent() takes an AgentProfile, got {type(profile).__name__}"
            )
        known = self.agents.get(profile.agent_id)
        if known is not None and known is not profile:
            busy = [run for run in self._active.values() if known in run.state.agents]
            if busy or known.current_load:
                where = ", ".join(f"run {r.run_id} of workflow {r.workflow_id!r}" for r in busy)
                raise ValidationError(
                    f"agent {profile.agent_id!r} cannot be replaced while it runs work "
                    f"({where or f'{known.current_load} task(s) running'}); await that run "
                    f"(or cancel it), then register the new profile again"
                )
            log.info("agent %r replaced by a new profile", profile.agent_id)
        self.agents[profile.agent_id] = profile
        return profile

    def unregister_agent(self, agent_id: str) -> AgentProfile:
        try:
            return self.agents.pop(agent_id)
        except KeyError:
            raise ValidationError(f"no agent {agent_id!r} is registered") from None

    def subscribe(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of every run; returns an unsubscribe function."""
        return self._bus.subscribe(callback)

    @property
    def followed(self) -> bool:
        """True while a subscriber that shows the runs' progress (a live
        :class:`~wfkit.Dashboard`) listens: runs then get no default progress bar."""
        return self._bus.showing_progress

    # -- workflows ---------------------------------------------------------------------------

    async def create_workflow(
        self,
        workflow_id: Workflow | str,
        tasks: Iterable[WorkflowTask] | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> str:
        """Validate and store a workflow; returns its id. Accepts a :class:`wfkit.Workflow` too.

        ``params`` declares the run parameters and their defaults (a ``Workflow`` brings its
        own); each run may override them with ``execute_workflow(..., params=...)``.
        """
        from wfkit.agents.builder import Workflow

        source, cache_default = None, False
        if isinstance(workflow_id, Workflow):
            source = workflow_id if tasks is None else None
            cache_default = workflow_id.cache
            tasks = workflow_id.tasks if tasks is None else tasks
            params = workflow_id.params if params is None else params
            workflow_id = workflow_id.workflow_id
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValidationError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        if tasks is None:
            raise ValidationError(f"create_workflow({workflow_id!r}, tasks) needs the tasks")
        if self._runs_of(workflow_id):
            raise WfkitError(
                f"workflow {workflow_id!r} is running; wait for it before replacing it"
            )
        declared = check_declared(params, f"workflow {workflow_id!r}")
        graph = TaskGraph(tasks)  # raises what is wrong with them, CycleError included
        old = self.workflows.get(workflow_id)
        self.workflows[workflow_id] = {
            "workflow_id": workflow_id,
            "params": declared,
            "tasks": list(graph.tasks.values()),
            "status": "created",
            "created_at": self.clock.time(),
            "completed_tasks": [],
            "failed_tasks": [],
            "runs": old["runs"] if old is not None else [],
            "_graph": graph,
            # the Workflow it came from and its version then: a later edit is noticed
            "_source": source,
            "_version": source.version if source is not None else None,
            "_cache": cache_default,
        }
        if self._bus:  # a view draws the graph now, not inside the run that follows
            self._bus.emit(WorkflowCreated("", self.clock.time(), workflow_id, len(graph.tasks)))
        return workflow_id

    def task_graph(self, workflow_id: str) -> TaskGraph:
        """The checked, numbered structure of workflow ``workflow_id`` as ``create_workflow``
        built it (shared by its runs; a new ``create_workflow`` of that id makes a new one).

        Views draw from it instead of reading the orchestrator's private per-workflow state,
        so that what they see is a promise of the orchestrator and not its internals. Raises
        :class:`~wfkit.UnknownWorkflowError` for an id never created."""
        wf = self.workflows.get(workflow_id)
        if wf is None:
            raise UnknownWorkflowError(workflow_id, self.workflows)
        graph: TaskGraph = wf["_graph"]
        return graph

    async def _current(self, workflow: Any) -> tuple[dict[str, Any], _Diff]:
        """The definition to run for ``workflow`` (a :class:`Workflow` or an id), created or
        refreshed from the Workflow object when it was edited since ``create_workflow``; and
        the (added, removed, changed) task ids of that refresh (empty lists if none)."""
        from wfkit.agents.builder import Workflow

        if isinstance(workflow, Workflow):
            wf = self.workflows.get(workflow.workflow_id)
            if wf is None or wf["_source"] is not workflow or wf["_version"] != workflow.version:
                return await self._refresh(workflow, wf)
            return wf, ([], [], [])
        wf = self.workflows.get(workflow)
        if wf is None:
            raise UnknownWorkflowError(workflow, self.workflows)
        source = wf["_source"]
        if source is not None and source.version != wf["_version"]:
            return await self._refresh(source, wf)
        return wf, ([], [], [])

    async def _refresh(
        self, workflow: Any, old: dict[str, Any] | None
    ) -> tuple[dict[str, Any], _Diff]:
        before = {t.task_id: t for t in old["tasks"]} if old is not None else {}
        now = {t.task_id: t for t in workflow.tasks}
        diff = (
            [t for t in now if t not in before] if old is not None else [],
            [t for t in before if t not in now],
            [t for t in now if t in before and now[t] is not before[t]],
        )
        try:
            await self.create_workflow(workflow)
        except ValidationError as exc:
            if old is None:
                raise
            raise WorkflowChangedError(workflow.workflow_id, *diff, exc) from exc
        if any(diff):
            log.info(
                "workflow %r changed since create_workflow (added %s, removed %s, changed %s): "
                "running the current definition", workflow.workflow_id, *diff,
            )
        return self.workflows[workflow.workflow_id], diff

    def _runs_of(self, workflow_id: str) -> list[WorkflowRun]:
        """The runs of ``workflow_id`` going on now (several, when sub-workflows run it)."""
        return [r for r in self._active.values() if r.workflow_id == workflow_id]

    def _check_runnable(self, graph: TaskGraph) -> list[AgentProfile]:
        """Fail before anything starts if a task has no capable agent or nothing to run."""
        agents = [a for a in self.agents.values() if a.availability]
        by_id = graph.tasks
        # per distinct set of capabilities (the graph has them), not per task
        capable = {sig: [a for a in agents if a.can_run(sig)] for sig in graph.classes}
        if not all(capable.values()):
            capable_agents(by_id, agents)  # raises MissingCapabilityError naming the tasks
        without_handler = {
            sig for sig, cands in capable.items() if any(a.handler is None for a in cands)
        }
        if without_handler:
            no_work = [
                tid for tid, t in by_id.items()
                if t.action is None and t.capability_set in without_handler
            ]
            if no_work:
                raise ValidationError(
                    f"task(s) {', '.join(map(repr, no_work[:10]))} have no action and some "
                    f"capable agents have no handler: give WorkflowTask(action=...), "
                    f"AgentProfile(handler=...), or handler=wfkit.simulated_handler() for a demo"
                )
        return agents

    async def execute_workflow(
        self,
        workflow_id: Workflow | str,
        *,
        fail_fast: bool = False,
        resume: str | None = None,
        policy: PolicyLike | None = None,
        progress: bool | None = None,
        params: dict[str, Any] | None = None,
        cache: str = "use",
    ) -> RunResult:
        """Run a workflow to the end and return its :class:`RunResult`.

        ``workflow_id`` is an id or the :class:`Workflow` itself (created or refreshed here).
        A workflow created from a Workflow object that was edited since runs its current
        definition; if that no longer validates, :class:`WorkflowChangedError` names the added,
        removed and changed tasks. Failed tasks do not stop independent branches (their
        dependents are skipped) unless ``fail_fast``. ``resume`` ("latest" or a run id) reuses
        the results of tasks that completed in that stored run, with that run's parameters.
        ``params`` overrides the workflow's declared parameters for this run (an undeclared
        name is an error). Cancelling the await cancels the run cleanly.

        ``cache`` decides how cacheable tasks (``@wf.task(cache=True)``, ``Workflow(...,
        cache=True)``) use :attr:`cache`: ``"use"`` reuses a result whose key is unchanged and
        keeps new ones, ``"refresh"`` runs them all again and keeps the new results, ``"off"``
        neither reads nor writes it.
        """
        if cache not in CACHE_MODES:
            raise ValidationError(
                f"execute_workflow(cache={cache!r}): use one of "
                f"{', '.join(map(repr, CACHE_MODES))}"
            )
        wf, diff = await self._current(workflow_id)
        wid: str = wf["workflow_id"]
        parent = parent_context()
        if parent is not None and parent._run.owner is self and wid in parent._run.chain:
            raise SubWorkflowCycleError([*parent._run.chain, wid], parent.task.task_id)
        if parent is None and self._runs_of(wid):
            raise WfkitError(
                f"workflow {wid!r} is already running; await that run first"
            )
        graph: TaskGraph = wf["_graph"]
        by_id = graph.tasks
        source = wf.get("_source")  # a Workflow's defaults as they are now (edited in a cell)
        declared = source.params if source is not None else wf.get("params", {})
        values = resolve_params(wid, declared, params)
        pol = resolve_policy(self.policy if policy is None else policy)
        try:
            agents = self._check_runnable(graph)
        except ValidationError as exc:
            if not any(diff):
                raise
            raise WorkflowChangedError(wid, *diff, exc) from exc

        completed: dict[str, Any] = {}
        if resume is not None:
            if self.store is None:
                raise ResumeError(
                    "resume= needs a run store: CollectiveAgentWorkflowOrchestrator(store=...)"
                )
            run_id, completed = self.store.resume_state(
                wid, resume, list(by_id),
                {tid: t.dependencies for tid, t in by_id.items()},
            )
            if run_id in self._active:
                raise ResumeError(f"run {run_id} is running; await it before resuming it")
            values = self._resumed_params(self.store, run_id, values, params)
        else:
            run_id = os.urandom(6).hex()  # 12 random hex digits (uuid costs an import)

        for task in by_id.values():
            task.status = "pending"
        self.executor.reserve(sum(a.capacity for a in agents))
        releasing = self._prepare_executors(by_id, agents, completed)
        run = WorkflowRun(
            workflow_id=wid,
            run_id=run_id,
            graph=graph,
            agents=agents,
            policy=pol,
            bus=self._bus,
            executor=self.executor,
            fail_fast=fail_fast,
            completed=completed,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            params=values,
            cache=self.cache,
            cache_mode=cache,
            cache_default=wf.get("_cache", False),
            parent=parent,
            pool=self.pool,
            clock=self.clock,
        )
        if parent is not None and parent._run.owner is not self:
            run.chain = (wid,)  # another orchestrator's workflows are others
        run.owner = self
        wf["status"] = "running"
        wf["runs"].append(run_id)
        self._active[run_id] = run
        show = self.progress if progress is None else progress
        if parent is not None and progress is None:
            show = False  # no bar per sub-workflow run (its caller has one)
        bar = None
        if show is not False and len(by_id) >= 2 and (show is True or not self.followed):
            from wfkit.jupyter.progress import attach_progress

            bar = attach_progress(self, run_id, explicit=show is True)
        try:
            if parent is not None:  # the caller's run handles interrupts, and lends its slot
                async with lend_slot(parent):
                    result = await run.execute()
            else:
                with cancel_on_interrupt():
                    result = await run.execute()
        finally:
            self._active.pop(run_id, None)
            for executor in releasing:
                executor.release(run_id)
            if bar is not None:
                bar()
            if run.cached or run.keys:
                self.cache.flush()
            wf["status"] = run.status
            completed_tasks: list[str] = []
            failed_tasks: list[str] = []
            ended = {"completed": completed_tasks.append, "failed": failed_tasks.append}
            for t, s in run.state.finished.items():
                add = ended.get(s)
                if add is not None:
                    add(t)
            wf["completed_tasks"] = completed_tasks
            wf["failed_tasks"] = failed_tasks
        wf["last_result"] = result
        return result

    def _resumed_params(
        self, store: RunStore, run_id: str, values: Any, given: dict[str, Any] | None
    ) -> Any:
        """A resumed run goes on with the parameters its finished tasks saw."""
        stored = store.run_params(run_id)
        if stored is None:  # written before runs had parameters
            return values
        if given is not None and dict(values) != stored:
            changed = sorted(k for k in {**stored, **values} if stored.get(k) != values.get(k))
            raise ResumeError(
                f"run {run_id} ran with params {stored!r}; resuming it with other values "
                f"({', '.join(changed)}) would mix results of both: leave params= out to "
                f"resume, or start a new run without resume="
            )
        return resolve_params("", stored, None)

    def _prepare_executors(
        self, by_id: dict[str, WorkflowTask], agents: list[AgentProfile], done: dict[str, Any]
    ) -> list[Executor]:
        """Size the agents' own executors, and let every executor refuse, before anything
        starts, sync work it cannot send (:meth:`Executor.check`). Returns the executors that
        keep something per run, to :meth:`Executor.release` when it ends. Executors that
        override neither hook (the thread pool) cost nothing here."""
        default = self.executor
        executors = {id(default): default}
        slots: dict[int, int] = {}
        for agent in agents:
            if agent.executor is not None:
                executors[id(agent.executor)] = agent.executor
                slots[id(agent.executor)] = slots.get(id(agent.executor), 0) + agent.capacity
        for key, n in slots.items():
            if key != id(default):
                executors[key].reserve(n)
        checking = {k for k, ex in executors.items() if type(ex).check is not Executor.check}
        if checking:
            from wfkit.callables import is_async_callable

            work: dict[int, list[Any]] = {k: [] for k in checking}
            groups: dict[frozenset[str], dict[int, list[AgentProfile]]] = {}
            for tid, task in by_id.items():
                if tid in done:
                    continue
                sig = task.capability_set
                group = groups.get(sig)
                if group is None:
                    group = groups[sig] = {}
                    for agent in agents:
                        key = id(agent.executor or default)
                        if key in checking and agent.can_run(sig):
                            group.setdefault(key, []).append(agent)
                for key, capable in group.items():
                    if task.action is not None:
                        if not is_async_callable(task.action):
                            work[key].append((task, capable[0], task.action))
                        continue
                    for agent in capable:
                        fn = agent.handler
                        if fn is not None and not is_async_callable(fn):
                            work[key].append((task, agent, fn))
            for key, items in work.items():
                if items:
                    executors[key].check(items)
        return [ex for ex in executors.values() if type(ex).release is not Executor.release]

    def close(self) -> None:
        """Release what this orchestrator created: its executor, and a store it opened from a
        path (an executor or store passed in is left to its owner)."""
        if self._owns_executor:
            self.executor.close()
        self.cache.close()
        if self.store is not None and getattr(self, "_owns_store", False):
            self.store.close()

    def __repr__(self) -> str:
        return (
            f"<CollectiveAgentWorkflowOrchestrator {len(self.agents)} agents, "
            f"{len(self.workflows)} workflows, policy={self.policy!r}>"
        )
