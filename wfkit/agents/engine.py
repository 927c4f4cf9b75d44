"""The live engine: drives a :class:`~wfkit.agents.dispatch.RunState` with asyncio.

One asyncio task per running attempt; when it ends, the attempt's outcome is applied to the
run state (the only place transitions happen) and newly ready tasks are dispatched at once,
from the same callback, so a free agent never waits for a central loop. The run owns every
task and timer it starts: on cancellation it cancels them, awaits them, and marks the tasks
``cancelled`` before the cancellation propagates. An attempt that ignores its cancellation
(a coroutine that catches ``CancelledError`` and carries on) gets :data:`CANCEL_GRACE`
seconds to end; then the run goes on without it (a warning names it) and it is left to
finish in the background, its result discarded. The same holds after a task's timeout, so a
timeout always ends the attempt.

Every run ends. Only the run's own cancellation propagates out of an attempt; anything else a
task raises (any ``BaseException``, a ``CancelledError`` of its own included) fails that
attempt with the exception recorded. ``KeyboardInterrupt`` and ``SystemExit`` from a task
also end the run: it is cancelled cleanly (its tasks marked, ``RunFinished`` published, so a
store records it), and then the exception propagates from :meth:`WorkflowRun.execute`.

Agent capacity is accounted in the :class:`~wfkit.agents.pool.AgentPool` the run is given
(the orchestrator shares one between its runs): when another run frees a slot, the pool
wakes this run, which then dispatches from its own callback.

The error and traceback recorded for a failed attempt are masked
(:func:`~wfkit.redaction.redact_text`: URL passwords, secret query parameters,
secrets of registered endpoints) before anything publishes them; results are left as the
task returned them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from wfkit.agents.dispatch import RunState, retry_delay
from wfkit.agents.model import AgentProfile, TaskContext, WorkflowTask
from wfkit.agents.params import NO_PARAMS, RunParams
from wfkit.agents.policies import Policy
from wfkit.agents.pool import AgentPool
from wfkit.agents.results import RunResult, run_graph
from wfkit.agents.subruns import CURRENT
from wfkit.cache import (
    KEPT_AS_IS,
    CacheEntry,
    KeyMaker,
    ResultCache,
    Unhashable,
    full_raw_key,
    raw_key,
    warn_uncacheable,
)
from wfkit.callables import describe_error, is_async_callable
from wfkit.clock import SYSTEM, Clock, Timer
from wfkit.conditions import describe_condition, evaluate
from wfkit.errors import ArgumentError, TaskTimeoutError, WorkerLostError
from wfkit.events import (
    EventBus,
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskMapped,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    later,
)
from wfkit.executors.base import Executor
from wfkit.graph import TaskGraph

if TYPE_CHECKING:
    from random import Random

__all__ = ["WorkflowRun"]

log = logging.getLogger("wfkit.engine")

#: Seconds a cancelled attempt (the run's cancellation, or its task's timeout) may take to
#: end before the run stops waiting for it.
CANCEL_GRACE = 5.0
_abandoned: set[asyncio.Task[Any]] = set()  # strong references, until they end


def _abandon(task: asyncio.Task[Any], what: str) -> None:
    log.warning(
        "%s ignored its cancellation for %g s; the run goes on without it (it keeps running "
        "in the background and its result will be discarded)", what, CANCEL_GRACE,
    )
    _abandoned.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: nobody waits for it any more


async def _stop(task: asyncio.Task[Any], what: str) -> bool:
    """Cancel ``task`` and wait for it, at most :data:`CANCEL_GRACE`; False if it goes on."""
    task.cancel()
    try:
        await asyncio.wait((task,), timeout=CANCEL_GRACE)
    finally:
        if not task.done():
            _abandon(task, what)
    return task.done()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _cancelling() -> int:
    """Whether the current task has been asked to cancel (by the run, not by its own work)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


# A settled task's record: (agent id, attempts, first start, end, error, exception,
# traceback). A plain tuple of plain values leaves the cyclic GC's view at its next pass; one
# tracked object per task would bring on full collections during runs of 100,000 tasks.
Settled = tuple[
    str | None, int, float | None, float | None, str | None, BaseException | None, str | None
]
_NEVER: Settled = (None, 0, None, None, None, None, None)


class _Row:
    """A task result row while it is being built: ``row.__dict__`` is the row, a plain dict.

    CPython stores the attribute dicts of a class's instances that set the same names in the
    same order with one shared table of keys, so a run's 100,000 rows hold one copy of their
    13 keys instead of one each: half the memory of dict literals, and quicker to build.
    """


# What _from_cache returns for a task it completed from the cache (never a key: keys are 16
# bytes long).
_SERVED = b"<served from the cache>"


class _Record:
    """A started task's bookkeeping until it settles (completes, fails for good, or is
    cancelled); then :meth:`settled` is what ends up in ``task_results``."""

    __slots__ = (
        "agent_id", "attempts", "started_at", "finished_at", "error", "exception", "traceback",
        "base",
    )

    def __init__(self) -> None:
        self.agent_id: str | None = None
        self.attempts = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.traceback: str | None = None
        self.base: bytes | None = None  # a cacheable task's raw base key: to keep its result

    def settled(self) -> Settled:
        return (
            self.agent_id, self.attempts, self.started_at, self.finished_at, self.error,
            self.exception, self.traceback,
        )


class WorkflowRun:
    """One execution of a workflow. Created and awaited by the orchestrator."""

    def __init__(
        self,
        *,
        workflow_id: str,
        run_id: str,
        graph: TaskGraph,
        agents: list[AgentProfile],
        policy: Policy,
        bus: EventBus,
        executor: Executor,
        fail_fast: bool = False,
        completed: Mapping[str, Any] | None = None,
        backoff: float = 0.1,
        max_backoff: float = 30.0,
        params: Mapping[str, Any] = NO_PARAMS,
        cache: ResultCache | None = None,
        cache_mode: str = "use",
        cache_default: bool = False,
        parent: TaskContext | None = None,
        pool: AgentPool | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.workflow_id = workflow_id
        # Timestamps and retry delays go through the clock (a test's ManualClock steps them).
        self.clock = clock
        self._now = clock.time
        self.run_id = run_id
        self.tasks = graph.tasks
        self.graph = graph
        self.bus = bus
        # The subscriber list itself (live): a C-level truth test on the hot path.
        self._listening = bus._subscribers
        self.executor = executor
        self.fail_fast = fail_fast
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.policy = policy
        self.params = params
        # A sub-workflow's run: the task that started it, and the workflows from the top down.
        self.parent_run_id = parent.run_id if parent is not None else None
        self.parent_task_id = parent.task.task_id if parent is not None else None
        chain = parent._run.chain if parent is not None else ()
        self.chain: tuple[str, ...] = (*chain, workflow_id)
        self.owner: Any = None  # the orchestrator, for ctx.run_workflow
        # The parameter names each completed task read (for the result cache's key).
        self.params_read: dict[str, frozenset[str]] = {}
        self.results: dict[str, Any] = dict(completed or {})
        self.resumed = tuple(self.results)
        self.state = RunState(graph, agents, policy, completed=self.resumed, pool=pool)
        self.pool = self.state.pool
        self.tasks = self.state.tasks  # grows as mapped tasks expand
        self._items: dict[str, list[Any]] = {}  # a mapped task's items, by its id
        self._mapped_at: dict[str, float] = {}
        self.records: dict[str, Settled] = {}  # settled tasks that were started
        self._live: dict[str, _Record] = {}  # started tasks that have not settled yet
        self._running: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, Timer] = {}
        self._done: asyncio.Future[None] | None = None
        self._interrupt: BaseException | None = None  # KeyboardInterrupt/SystemExit of a task
        self._rng: Random | None = None  # retry jitter, made at the first retry
        self._stopper: asyncio.Task[None] | None = None
        self._dispatch_pending = False
        self._lost: dict[str, int] = {}  # attempts whose worker died, per task
        self.started_at = 0.0
        self.finished_at = 0.0
        self.status = "running"
        # The result cache (None when off): tasks served from it, the keys of this run's
        # results that have one, and the base keys of cacheable tasks that are running.
        self.cache = cache if cache_mode != "off" else None
        self.cache_mode = cache_mode
        self.cache_default = cache_default
        self.cached: set[str] = set()
        self.keys: dict[str, bytes] = {}  # raw keys (wfkit.cache: hex only when shown or stored)
        self._keymaker = KeyMaker(params)  # used only when the cache is on
        self._key = self._keymaker.key
        self._reuse = cache_mode == "use"
        # The in-memory cache's entries by base key (None for a store's): a miss costs no call.
        self._index = self.cache.index if self.cache is not None else None

    # -- the run -----------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        loop = asyncio.get_running_loop()
        self._loop = loop
        # One asyncio task per attempt: made by the Task class itself unless the loop has a
        # task factory (then it decides), which skips create_task's Python-level checks.
        self._create: Callable[[Any], asyncio.Task[None]] = (
            loop.create_task if loop.get_task_factory() is not None
            else partial(asyncio.Task, loop=loop)
        )
        self._done = loop.create_future()
        self.started_at = self._now()
        if self._listening:
            self.bus.emit(
                RunStarted(
                    self.run_id,
                    self.started_at,
                    self.workflow_id,
                    tuple(self.tasks),
                    tuple((a.agent_id, a.capacity) for a in self.state.agents),
                    self.resumed,
                    self.policy.name,
                    dict(self.params),
                    self.parent_run_id,
                    self.parent_task_id,
                    later(self.graph.specs),  # built if a subscriber reads it
                )
            )
        for tid in self.resumed:
            task = self.tasks.get(tid)  # a mapped child joins the run when its parent maps
            if task is not None:
                task.status = "completed"
        unsubscribe = self.pool.subscribe(self._advance)  # other runs free shared slots
        try:
            self.dispatch()
            if not self.state.done:
                await self._done
            if self._interrupt is not None:
                raise self._interrupt
        except Exception:  # a misbehaving policy: stop what we started, then report it
            unsubscribe()
            await self._cancel("failed")
            self._finish("failed")
            raise
        except BaseException as exc:  # cancellation, or a task's KeyboardInterrupt/SystemExit
            unsubscribe()
            await self._cancel("cancelled")
            self._finish("cancelled")
            if self._interrupt is not None and exc is not self._interrupt:
                raise self._interrupt from None  # a task's exit code wins over our cancel
            raise
        unsubscribe()
        if self.status == "running":
            self.status = "failed" if self.counts()["failed"] else "completed"
        self._finish(self.status)
        return self.result()

    def dispatch(self) -> None:
        """Start every assignment the run state allows now; a task whose result is cached
        completes at once (and may make more tasks ready: hence the loop). Held tasks (a
        condition to check, a map to expand) are decided first."""
        state = self.state
        create = self._create
        live = self._live
        cache, default = self.cache, self.cache_default
        index, key, keys, results = self._index, self._key, self.keys, self.results
        while True:
            served = False
            if state.held:
                self._decide()
                if self._stopper is not None:  # fail_fast: a held task failed
                    return
            for task, agent in state.assign():
                base = None
                if cache is not None and (default if task.cache is None else task.cache):
                    if index is not None and task.cache_key is None:  # in memory: inline
                        try:
                            base = key(task, task.action or agent.handler, keys, results)
                        except Exception:  # _from_cache says what went wrong
                            base = None
                        if base is None or base in index:
                            base = self._from_cache(task, agent, base)
                    else:
                        base = self._from_cache(task, agent)
                    if base is _SERVED:
                        served = True
                        continue
                record = live.get(task.task_id)
                if record is None:
                    record = live[task.task_id] = _Record()
                record.base = base
                record.attempts += 1
                task.status = "running"
                self._running[task.task_id] = create(self._attempt(task, agent, record))
            if not served:
                return

    # -- the result cache --------------------------------------------------------------------

    def _base_key(self, task: WorkflowTask, agent: AgentProfile) -> bytes | None:
        """The task's raw key but for the run parameters it reads; None (with a warning) when
        something it depends on cannot be hashed."""
        tid = task.task_id
        deps = task.dependencies
        try:
            if task.cache_key is not None:
                ctx = TaskContext(
                    task, agent, {d: self.results[d] for d in deps if d in self.results}, 0,
                    self.run_id, self.workflow_id, RunParams(self.params),
                )
                if task.map_index is not None:
                    self._set_item(ctx, task)
                custom = task.cache_key(ctx)
                return raw_key(["custom", tid, repr(custom), repr(task.cache_version)])
            return self._key(task, task.action or agent.handler, self.keys, self.results)
        except Unhashable as exc:
            warn_uncacheable(tid, f"{exc}, which cannot be hashed")
        except Exception as exc:  # a cache_key callable that failed, or a digest that did
            what = "its cache_key" if task.cache_key is not None else "computing its key"
            warn_uncacheable(tid, f"{what} raised {type(exc).__name__}: {exc}")
        return None

    def _from_cache(
        self, task: WorkflowTask, agent: AgentProfile, base: bytes | None = None
    ) -> bytes | None:
        """Complete ``task`` from the cache if it holds its result (then ``_SERVED``); else
        its base key (None when it cannot be cached), to keep the result it will compute.
        ``base`` is its key when :meth:`dispatch` made it already (a task of an in-memory
        cache: a miss there costs no call)."""
        if base is None:
            base = self._base_key(task, agent)
        if base is not None and self._reuse and (self._index is None or base in self._index):
            entry = self.cache.lookup(base, self._keymaker.param_digests)  # type: ignore[union-attr]
            if entry is not None:
                self._completed_cached(task, entry)
                return _SERVED
        return base

    def _keep(self, task: WorkflowTask, base: bytes, result: Any, read: Any, now: float) -> None:
        """Put a result that was just computed at ``now`` in the cache (see CacheEntry.raw_row);
        :meth:`_attempt` keeps a new in-memory entry of a plain value itself."""
        tid = task.task_id
        expires = task.cache_expires
        if expires is not None:
            expires += now
        row: tuple[Any, ...]
        if not read:
            row = (base, base, tid, self.workflow_id, (), result, now, expires)
        else:
            params = self._keymaker.param_digests(read)
            row = (full_raw_key(base, params), base, tid, self.workflow_id,
                   tuple(sorted(params.items())), result, now, expires)
        if self.cache.put(row):  # type: ignore[union-attr]
            self.keys[tid] = row[0]

    def _completed_cached(self, task: WorkflowTask, entry: CacheEntry) -> None:
        """ready -> completed without running: the result comes from the cache."""
        tid = task.task_id
        now = self._now()
        value = self.results[tid] = entry.value  # a fresh copy of an in-memory value
        self.keys[tid] = bytes.fromhex(entry.key)
        self.cached.add(tid)
        if entry.params:
            self.params_read[tid] = frozenset(entry.params)
        self.records[tid] = (None, 0, now, now, None, None, None)
        task.status = "completed"
        ended = self.state.complete(tid)  # frees the slot it was given for a moment
        if self._listening:
            self.bus.emit(
                TaskCompleted(self.run_id, now, self.workflow_id, tid, None, 0, now, value, True)
            )
        if ended:
            self._ended(ended, now)

    def _context(self, task: WorkflowTask, agent: AgentProfile, attempt: int) -> TaskContext:
        """What the attempt's work receives: its inputs, parameters and (mapped) item."""
        results = self.results
        inputs: dict[str, Any] = {}
        try:
            for d in task.dependencies:  # a loop: a comprehension is a call of its own
                inputs[d] = results[d]
        except KeyError:  # a trigger rule let it run without some: the completed ones only
            inputs = {d: results[d] for d in task.dependencies if d in results}
        ctx = TaskContext(
            task,
            agent,
            inputs,
            attempt,
            self.run_id,
            self.workflow_id,
            RunParams(self.params),
            self,
        )
        if task.map_index is not None:
            self._set_item(ctx, task)
        return ctx

    async def _attempt(self, task: WorkflowTask, agent: AgentProfile, record: _Record) -> None:
        tid = task.task_id
        attempt = record.attempts
        try:
            ctx = self._context(task, agent, attempt)
        except Exception as exc:  # no context, no work: this attempt fails, the run goes on
            self._unstarted(task, agent, record, exc)
            return
        CURRENT.set(ctx)  # this attempt's own asyncio task: runs started in it are its children
        fn = task.action or agent.handler
        assert fn is not None  # the orchestrator refuses a task with neither
        started = self._now()
        record.agent_id = agent.agent_id
        if record.started_at is None:
            record.started_at = started
        try:
            if self._listening:  # the event's compiled __new__, without type.__call__
                self.bus.emit(
                    TaskStarted.__new__(  # type: ignore[call-arg]
                        TaskStarted, self.run_id, started, self.workflow_id, tid,
                        agent.agent_id, attempt,
                    )
                )
            try:
                if task.timeout is None and is_async_callable(fn):
                    result = await fn(ctx)  # the hot path: no timeout scope, no executor
                    if result is not None and hasattr(result, "__await__"):
                        result = await result
                else:
                    result = await self._call(task, fn, ctx, agent)
            except asyncio.CancelledError as exc:
                if _cancelling():
                    raise  # the run's own cancellation: its _cancel marks the task
                del self._running[tid]  # the task's own (it awaited something cancelled)
                self._failed(task, agent, record, started, exc)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                if self.status != "running" and _cancelling():  # raised as the run's
                    raise asyncio.CancelledError from exc  # cancellation reached it
                del self._running[tid]
                self._failed(task, agent, record, started, exc)
            else:
                if self.status != "running" and _cancelling():  # it swallowed the run's
                    raise asyncio.CancelledError  # cancellation: cancelled all the same
                del self._running[tid]
                read = ctx.params.read  # type: ignore[attr-defined]  # a RunParams (_context)
                if read:
                    self.params_read[tid] = frozenset(read)
                base = record.base
                if base is not None:  # one clock reading for the entry and the record
                    end = self._now()
                    index = self._index
                    if (index is not None and not read and type(result) in KEPT_AS_IS
                            and task.cache_expires is None and base not in index):
                        # a new in-memory entry of a plain value (CacheEntry.raw_row): no call
                        index[base] = (base, base, tid, self.workflow_id, (), result, end, None)
                        self.keys[tid] = base
                    else:
                        self._keep(task, base, result, read, end)
                    self._completed(task, agent, record, started, result, end)
                else:
                    self._completed(task, agent, record, started, result)
        except (KeyboardInterrupt, SystemExit) as exc:
            self._abort(exc)  # never out of a task: that would stop the event loop itself
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a fault in our own bookkeeping: end the run with it
            self._abort(exc)

    def _unstarted(
        self, task: WorkflowTask, agent: AgentProfile, record: _Record, exc: Exception
    ) -> None:
        """An attempt that failed before its work began (building its context raised): it
        settles like any failure, so the run never waits for it."""
        now = self._now()
        record.agent_id = agent.agent_id
        if record.started_at is None:
            record.started_at = now
        try:
            del self._running[task.task_id]
            self._failed(task, agent, record, now, exc)
        except BaseException as fault:  # a fault in our own bookkeeping: end the run with it
            self._abort(fault)

    def _set_item(self, ctx: TaskContext, task: WorkflowTask) -> None:
        """A mapped child's item: its parent's input at its index, or (element by element)
        the result of the child it maps over."""
        index = ctx.index = task.map_index
        items = self._items.get(task.parent_task_id)  # type: ignore[arg-type]
        ctx.item = items[index] if items is not None else self.results[task.map]  # type: ignore[index]

    async def _call(
        self, task: WorkflowTask, fn: Callable[[Any], Any], ctx: TaskContext, agent: AgentProfile
    ) -> Any:
        """The general path: sync work through the executor, and the task's timeout."""
        if task.timeout is None:
            return await self._invoke(fn, ctx, agent)
        # Its own asyncio task, so that the attempt ends at the timeout (plus the grace) even
        # if the work ignores its cancellation.
        work = self._loop.create_task(self._contained(fn, ctx, agent))
        what = f"task {task.task_id!r}"
        expired = self._loop.create_future()
        timer = self.clock.call_later(task.timeout, _expire, expired)
        try:
            await asyncio.wait((work, expired), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the run's cancellation: pass it on to the work
            await _stop(work, what)
            raise
        finally:
            timer.cancel()
        if work.done():
            ok, value = work.result()  # raises what the work raised
            if not ok:
                raise value  # KeyboardInterrupt or SystemExit
            return value
        if not await _stop(work, what) or not work.cancelled() and work.exception() is None:
            # it caught the CancelledError of its timeout and went on (or still goes on)
            raise TaskTimeoutError(task.task_id, task.timeout, ignored_cancel=True)
        raise TaskTimeoutError(task.task_id, task.timeout) from (
            None if work.cancelled() else work.exception()
        )

    async def _contained(
        self, fn: Callable[[Any], Any], ctx: TaskContext, agent: AgentProfile
    ) -> tuple[bool, Any]:
        """:meth:`_invoke` for a task of its own: an interrupt or exit is returned, because
        raised out of an asyncio task it would stop the event loop itself."""
        try:
            return True, await self._invoke(fn, ctx, agent)
        except (KeyboardInterrupt, SystemExit) as exc:
            return False, exc

    async def _invoke(self, fn: Callable[[Any], Any], ctx: TaskContext, agent: AgentProfile) -> Any:
        if is_async_callable(fn):
            result = await fn(ctx)
        else:
            result = await (agent.executor or self.executor).run(fn, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    # -- outcomes: each applies one transition, then dispatches ------------------------------

    def _completed(
        self, task: WorkflowTask, agent: AgentProfile, record: _Record, started: float,
        result: Any, end: float | None = None,
    ) -> None:
        tid = task.task_id
        if end is None:
            end = self._now()
        self.results[tid] = result
        del self._live[tid]  # settled: the record is not read again
        self.records[tid] = (
            record.agent_id, record.attempts, record.started_at, end, None, None, None
        )
        task.status = "completed"
        agent.record_outcome(task, end - started, True)
        ended = self.state.complete(tid)
        if self._listening:  # as TaskStarted: twice per task for every subscriber
            self.bus.emit(
                TaskCompleted.__new__(  # type: ignore[call-arg]
                    TaskCompleted, self.run_id, end, self.workflow_id, tid, agent.agent_id,
                    record.attempts, started, result,
                )
            )
        if ended:
            self._ended(ended, end)
        self._advance()

    def _failed(
        self, task: WorkflowTask, agent: AgentProfile, record: _Record, started: float,
        exc: BaseException,
    ) -> None:
        from wfkit.redaction import redact_text  # failures only: not on every import
        from wfkit.tracebacks import format_traceback, user_frame

        tid = task.task_id
        end = self._now()
        attempt = record.attempts
        record.error = redact_text(describe_error(exc))  # errors are ours to mask (results
        record.exception = exc  # are the user's): they reach --json, the store, the report
        record.finished_at = end
        agent.record_outcome(task, end - started, False)
        lost = self._lost
        if isinstance(exc, WorkerLostError) and lost.get(tid, 0) < exc.retries:
            lost[tid] = lost.get(tid, 0) + 1  # its worker died: not the task's fault, not counted
        final = attempt > task.retries + lost.get(tid, 0)
        if final or self._listening:
            record.traceback = redact_text(format_traceback(exc))
        if self._listening:
            where = user_frame(exc)
            self.bus.emit(
                TaskFailed(
                    self.run_id, end, self.workflow_id, tid, agent.agent_id, attempt, started,
                    record.error, final, record.traceback,
                    None if where is None else redact_text(str(where)),
                )
            )
        if not final:
            if self._rng is None:
                from random import Random

                self._rng = Random()
            delay = retry_delay(attempt, self.backoff, self.max_backoff, self._rng)
            self.state.retry(tid)
            task.status = "retrying"
            if self._listening:
                self.bus.emit(TaskRetrying(self.run_id, end, self.workflow_id, tid, attempt + 1, delay, record.error))
            self._timers[tid] = self.clock.call_later(delay, self._requeue, tid)
            self._advance()
            return
        del self._live[tid]
        self.records[tid] = record.settled()
        task.status = "failed"
        self._ended(self.state.fail(tid), end)
        if self.fail_fast:
            self._stopper = self._loop.create_task(self._fail_fast())
            return
        self._advance()

    def _ended(self, ended: Any, now: float) -> None:
        """Record the tasks that ended as a consequence of a transition: skipped ones, and
        mapped tasks whose last child ended (their result is their children's, in order)."""
        finished, tasks, listening = self.state.finished, self.tasks, self._listening
        for tid, reason in ended:
            status = finished[tid]
            tasks[tid].status = status
            if status == "skipped":
                if listening:
                    self.bus.emit(TaskSkipped(self.run_id, now, self.workflow_id, tid, reason))
                continue
            started = self._mapped_at.get(tid, now)
            if status == "completed":
                results = self.results
                value = results[tid] = [results[c] for c in self.state.children(tid)]
                self.records[tid] = (None, 0, started, now, None, None, None)
                if listening:
                    self.bus.emit(
                        TaskCompleted(
                            self.run_id, now, self.workflow_id, tid, None, 0, started, value
                        )
                    )
            else:  # a mapped task one of whose children failed, or a condition that raised
                self._unstarted_failure(tid, reason, None, started, now)

    def _unstarted_failure(
        self, tid: str, error: str, exc: BaseException | None, started: float, now: float
    ) -> None:
        self.records[tid] = (None, 0, started, now, error, exc, None)
        if self._listening:
            self.bus.emit(
                TaskFailed(self.run_id, now, self.workflow_id, tid, None, 0, started, error, True)
            )
        if self.fail_fast and self._stopper is None:  # as for a task that failed running
            self._stopper = self._loop.create_task(self._fail_fast())

    def _decide(self) -> None:
        """Settle the held tasks (their dependencies ended): check each one's condition,
        expand a map into its children, or let it run as itself. Deciding may end tasks
        (a false condition skips dependents), and that may hold others: repeat until none."""
        state = self.state
        while state.held and self._stopper is None:
            for task in state.take_held():
                tid = task.task_id
                now = self._now()
                inputs = {
                    d: self.results[d] for d in task.dependencies
                    if state.finished.get(d) == "completed"
                }
                if task.when is not None:
                    try:
                        go = self._condition_holds(task, inputs)
                    except Exception as exc:
                        error = f"condition of task {tid!r} raised {describe_error(exc)}"
                        task.status = "failed"
                        self._unstarted_failure(tid, error, exc, now, now)
                        self._ended(state.fail_unstarted(tid, error), now)
                        continue
                    if not go:
                        reason = f"condition {describe_condition(task.when)} was false"
                        task.status = "skipped"
                        if self._listening:
                            self.bus.emit(
                                TaskSkipped(self.run_id, now, self.workflow_id, tid, reason)
                            )
                        self._ended(state.skip(tid, reason), now)
                        continue
                if task.map is None:
                    state.release(tid)
                    continue
                items = self._map_items(task, inputs)
                if isinstance(items, str):  # what is wrong with the map's input
                    task.status = "failed"
                    self._unstarted_failure(tid, items, None, now, now)
                    self._ended(state.fail_unstarted(tid, items), now)
                    continue
                self._items[tid] = items
                children, ended = state.expand(tid, len(items))
                for mapped_id, count in state.expanded:  # with those mapping element-wise
                    self._mapped_at[mapped_id] = now
                    self.tasks[mapped_id].status = "running"
                    if self._listening:
                        self.bus.emit(
                            TaskMapped(self.run_id, now, self.workflow_id, mapped_id, count)
                        )
                for child in children:  # those a resumed run had finished
                    status = state.finished.get(child.task_id)
                    if status is not None:
                        child.status = status
                self._ended(ended, now)

    def _map_items(self, task: WorkflowTask, inputs: Mapping[str, Any]) -> list[Any] | str:
        """The items a mapped task runs over, or a message saying why there are none."""
        source = task.map
        assert source is not None  # called for mapped tasks only
        if source not in inputs:
            return (
                f"task {task.task_id!r} maps over {source!r}, which did not complete "
                f"({self.state.finished.get(source, 'not run')})"
            )
        value = inputs[source]
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            return (
                f"task {task.task_id!r} maps over the result of {source!r}, which is a "
                f"{type(value).__name__}, not a list: return a list (or another iterable) "
                f"of the items to map over"
            )
        return list(value)

    def _condition_holds(self, task: WorkflowTask, inputs: dict[str, Any]) -> bool:
        when = task.when
        if callable(when) and not isinstance(when, Mapping):
            ctx = TaskContext(
                task, None, inputs, 0, self.run_id, self.workflow_id,  # type: ignore[arg-type]
                RunParams(self.params), self,
            )
            outcome = when(ctx)
            if inspect.isawaitable(outcome):
                if hasattr(outcome, "close"):
                    outcome.close()
                raise ArgumentError(
                    "when= takes a plain function (ctx) -> bool, not a coroutine"
                )
            return bool(outcome)
        return evaluate(when, {"inputs": inputs, "params": self.params})

    def _requeue(self, tid: str) -> None:
        self._timers.pop(tid, None)
        self.state.requeue(tid)
        self.tasks[tid].status = "pending"
        self._advance()

    def _advance(self) -> None:
        """After a transition: dispatch once per loop iteration, however many tasks ended."""
        if not self._dispatch_pending:
            self._dispatch_pending = True
            self._loop.call_soon(self._dispatch_now)

    def _dispatch_now(self) -> None:
        self._dispatch_pending = False
        if self.status != "running":
            return
        try:
            self.dispatch()
        except BaseException as exc:  # a policy's error: surfaces in execute(), which cleans up
            self._abort(exc)
            return
        if self.state.done and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _abort(self, exc: BaseException) -> None:
        """End the run with ``exc``: execute() cancels what runs, then raises it."""
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            if self._interrupt is None:
                self._interrupt = exc
            exc = asyncio.CancelledError()  # execute() raises the interrupt after cleaning up
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    async def _fail_fast(self) -> None:
        await self._cancel("failed")
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def _cancel(self, status: str) -> None:
        """Cancel running attempts and pending retries, await them, mark the rest cancelled."""
        self.status = status
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        running = dict(self._running)
        for t in running.values():
            t.cancel()
        if running:
            done, _ = await asyncio.wait(running.values(), timeout=CANCEL_GRACE)
            for tid, t in running.items():
                if t not in done:
                    _abandon(t, f"task {tid!r}")
                elif not t.cancelled():
                    t.exception()  # retrieved (an attempt settles its own outcome)
        self._running.clear()
        now = self._now()
        for tid, agent in self.state.cancel_all():
            self.tasks[tid].status = "cancelled"
            record = self._live.pop(tid, None)
            if record is not None:
                if agent is not None:
                    record.finished_at = now
                self.records[tid] = record.settled()
            if self._listening:
                self.bus.emit(
                    TaskCancelled(
                        self.run_id, now, self.workflow_id, tid,
                        agent.agent_id if agent else None, record.attempts if record else 0,
                        record.started_at if agent and record else None,
                    )
                )

    def _finish(self, status: str) -> None:
        self.status = status
        self.finished_at = self._now()
        if self._listening:
            counts = self.counts()
            self.bus.emit(
                RunFinished(
                    self.run_id,
                    self.finished_at,
                    self.workflow_id,
                    status,
                    self.started_at,
                    len(self.tasks),
                    counts["completed"],
                    counts["failed"],
                    counts["skipped"],
                    counts["cancelled"],
                    self.participants(),
                )
            )

    # -- reporting ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        ended = Counter(self.state.finished.values())  # counted in C: 100,000 tasks add up
        return {s: ended[s] for s in ("completed", "failed", "skipped", "cancelled")}

    def is_running(self, ctx: TaskContext) -> bool:
        """Whether ``ctx``'s attempt is running now, holding its slot on ``ctx.agent`` (not
        ended, not waiting for a retry): only then may a run it starts borrow that slot."""
        tid = ctx.task.task_id
        record = self._live.get(tid)
        return (
            self.status == "running"
            and record is not None
            and record.attempts == ctx.attempt
            and self.state.running.get(tid) is ctx.agent
        )

    def participants(self) -> tuple[str, ...]:
        agents = set(map(itemgetter(0), self.records.values()))
        agents.discard(None)
        return tuple(sorted(agents))

    def result(self) -> RunResult:
        finished = self.state.finished
        results = self.results
        records = self.records
        skip_reason = self.state.skip_reason
        resumed = set(self.resumed)
        cached = self.cached
        # No task skipped, resumed or served from the cache (the usual large run): a completed
        # task's row then needs no lookup but its record and result.
        plain = not skip_reason and not resumed and not cached
        task_results: dict[str, dict[str, Any]] = {}
        new = object.__new__
        for tid in self.tasks:
            status = finished.get(tid, "cancelled")
            agent_id, attempts, started, ended, error, exception, tb = records.get(tid, _NEVER)
            if plain and status == "completed":  # started and ended: both times are set
                result = results[tid]
                error = exception = tb = None
                took = ended - started  # type: ignore[operator]
                was_resumed = was_cached = False
            else:
                failed = status == "failed"
                result = results.get(tid) if status == "completed" else None
                if not failed:
                    error = skip_reason.get(tid)
                    exception = tb = None
                took = ended - started if ended is not None and started is not None else 0.0
                was_resumed = tid in resumed
                was_cached = tid in cached
            # Each row is a plain dict, built as the attributes of a throwaway _Row (always
            # the same keys, in the same order; see _Row): the keys of a run's rows stay as
            # they are in a dict literal, the row just costs half the memory.
            row: Any = new(_Row)
            row.task_id = tid
            row.agent_id = agent_id
            row.status = status
            row.result = result
            row.error = error
            row.attempts = attempts
            row.execution_time = took
            row.started_at = started
            row.finished_at = ended
            row.resumed = was_resumed
            row.cached = was_cached
            row.exception = exception
            row.traceback = tb
            task_results[tid] = row.__dict__
        counts = self.counts()
        total = len(self.tasks)
        return RunResult(
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            status=self.status,
            total_tasks=total,
            successful_tasks=counts["completed"],
            failed_tasks=counts["failed"],
            skipped_tasks=counts["skipped"],
            cancelled_tasks=counts["cancelled"],
            success_rate=counts["completed"] / total if total else 1.0,
            makespan=self.finished_at - self.started_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            participants=list(self.participants()),
            params=dict(self.params),
            parent_run_id=self.parent_run_id,
            parent_task_id=self.parent_task_id,
            task_results=task_results,
            graph=run_graph(self.tasks),
            agents=[[a.agent_id, a.capacity] for a in self.state.agents],
        )
