"""Running a session's tasks: dependencies, coordination types, conditions, results.

A :class:`SessionRunner` drives the pending tasks of one session until none is left: a task
starts once every dependency has finished; if a dependency did not complete, the task is
skipped with the reason. Independent tasks run at once, started in the order they were added.
Tasks added while the runner works are picked up (the manager calls :meth:`kick`).

Task transitions happen in one place each: ``_start`` (pending -> running), ``_skip``
(pending/running -> skipped), ``_finish`` (running -> completed/failed) and ``_cancel``
(running -> cancelled). The runner owns every asyncio task it starts: when it is cancelled it
cancels them, waits for them, marks them cancelled and re-raises.

Each run of the runner publishes on the manager's bus what an agent workflow's run does, with
the session id as ``workflow_id``: ``RunStarted`` (the pending tasks and their dependencies),
one attempt per participant's turn at a task (``TaskStarted``, then ``TaskCompleted``,
``TaskFailed`` or ``TaskCancelled``, with the participant as ``agent_id``), ``TaskSkipped``
for a skipped task (and, with the participant, for a turn a failure before it left unrun),
``TaskFailed`` without a participant for a task that failed before any turn, and
``RunFinished``. Recorders build the session's frames from these.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wfkit.agents.results import ResultDict
from wfkit.callables import describe_error, is_async_callable
from wfkit.conditions import evaluate
from wfkit.coordination.model import (
    CollaborationTask,
    CoordinationSession,
    CoordinationType,
    ParticipantContext,
)
from wfkit.errors import CoordinationError, TaskTimeoutError
from wfkit.events import (
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
)
from wfkit.statuses import FINAL_STATUSES

if TYPE_CHECKING:
    import pandas as pd

    from wfkit.coordination.manager import CoordinationCollaborationManager

__all__ = ["SessionRunner", "SessionResult", "session_result"]

_FINISHED = frozenset(FINAL_STATUSES)
_now = time.time


class SessionResult(ResultDict):
    """What ``run_session`` returns: a plain dict with ``session_id``, ``status``,
    ``task_results``, counts and the final ``shared_state``, plus :meth:`frame`."""

    def frame(self) -> pd.DataFrame:
        """One row per (task, participant) as a pandas DataFrame."""
        import pandas as pd

        rows = []
        for tid, rec in self["task_results"].items():
            parts = rec["participants"] or {None: {}}
            for name, p in parts.items():
                rows.append(
                    {
                        "task_id": tid,
                        "task_status": rec["status"],
                        "participant": name,
                        "status": p.get("status"),
                        "result": p.get("result"),
                        # a task that ended without a turn: why it was skipped, or its error
                        "error": p.get("error") or (
                            rec["reason"] or rec["error"] if name is None else None),
                        "started_at": p.get("started_at"),
                        "finished_at": p.get("finished_at"),
                    }
                )
        df = pd.DataFrame(
            rows,
            columns=[
                "task_id", "task_status", "participant", "status", "result", "error",
                "started_at", "finished_at",
            ],
        )
        for col in ("started_at", "finished_at"):
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
        return df

    def __repr__(self) -> str:
        return (
            f"<SessionResult {self.get('session_id')!r} {self.get('status')}: "
            f"{self.get('completed_tasks')}/{self.get('total_tasks')} completed, "
            f"{self.get('failed_tasks')} failed, {self.get('skipped_tasks')} skipped>"
        )


def session_result(session: CoordinationSession) -> SessionResult:
    """The session's current outcome (every task, finished or not)."""
    counts = dict.fromkeys((*FINAL_STATUSES, "pending"), 0)
    task_results: dict[str, dict[str, Any]] = {}
    for tid, task in session.tasks.items():
        rec = session.task_results.get(tid) or _new_record(task)
        task_results[tid] = {**rec, "participants": {k: dict(v) for k, v in rec["participants"].items()}}
        counts[task.status if task.status in counts else "pending"] += 1
    snap = session.shared_state.read()
    started = [r["started_at"] for r in task_results.values() if r["started_at"] is not None]
    ended = [r["finished_at"] for r in task_results.values() if r["finished_at"] is not None]
    return SessionResult(
        session_id=session.session_id,
        coordination_type=session.coordination_type.value,
        status=session.status,
        total_tasks=len(session.tasks),
        completed_tasks=counts["completed"],
        failed_tasks=counts["failed"],
        skipped_tasks=counts["skipped"],
        cancelled_tasks=counts["cancelled"],
        pending_tasks=counts["pending"],
        task_results=task_results,
        shared_state=snap.data,
        version=snap.version,
        started_at=min(started) if started else None,
        finished_at=max(ended) if ended else None,
        error=session.error,
    )


def _new_record(task: CollaborationTask) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "description": task.description,
        "status": task.status,
        "participants": {},
        "results": {},
        "result": None,
        "error": None,
        "reason": None,
        "shared_version": None,
        "started_at": None,
        "finished_at": None,
    }


class SessionRunner:
    """Runs the pending tasks of one session until none is left (see the module docstring)."""

    def __init__(
        self, manager: CoordinationCollaborationManager, session: CoordinationSession
    ) -> None:
        self.manager = manager
        self.session = session
        self._kick: asyncio.Future[None] | None = None
        self.bus = manager._bus
        self.run_id = ""
        self._ran: dict[str, None] = {}  # the tasks this run started or skipped, in order
        self._participants: dict[str, None] = {}

    def kick(self) -> None:
        """A task was added: look for ready tasks now rather than when a running one ends."""
        if self._kick is not None and not self._kick.done():
            self._kick.set_result(None)

    async def run(self) -> None:
        session = self.session
        session.status = "running"
        session.error = None
        self.run_id = uuid.uuid4().hex[:12]
        started = _now()
        self._ran, self._participants = {}, {}
        if self.bus:
            pending = [t for t in session.tasks.values() if t.status == "pending"]
            self.bus.emit(RunStarted(
                self.run_id, started, session.session_id, tuple(t.task_id for t in pending),
                (), policy=session.coordination_type.value,
                tasks=tuple(TaskSpec(t.task_id, tuple(t.dependencies), description=t.description,
                                     timeout=t.timeout) for t in pending),
            ))
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                for task in self._ready():
                    running.add(loop.create_task(self._run_task(task)))
                if not running:
                    break
                self._kick = loop.create_future()
                done, _ = await asyncio.wait(
                    [*running, self._kick], return_when=asyncio.FIRST_COMPLETED
                )
                for t in done:
                    if t is not self._kick:
                        running.discard(t)
                        t.result()  # _run_task records failures; anything else is a bug
        except BaseException:
            for t in running:
                t.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            for task in session.tasks.values():
                if task.status == "running":  # never started its participants
                    self._cancel(task)
            session.status = "cancelled"
            self._finished(started)
            raise
        finally:
            if self._kick is not None and not self._kick.done():
                self._kick.cancel()
            self._kick = None
        statuses = [t.status for t in session.tasks.values()]
        session.status = "failed" if "failed" in statuses else "completed"
        self._finished(started)

    def _finished(self, started: float) -> None:
        if not self.bus:
            return
        tasks = self.session.tasks
        counts = dict.fromkeys(FINAL_STATUSES, 0)
        for tid in self._ran:
            status = tasks[tid].status
            if status in counts:
                counts[status] += 1
        self.bus.emit(RunFinished(
            self.run_id, _now(), self.session.session_id, self.session.status, started,
            len(self._ran), counts["completed"], counts["failed"], counts["skipped"],
            counts["cancelled"], tuple(self._participants),
        ))

    def _ready(self) -> list[CollaborationTask]:
        """Pending tasks whose dependencies have all finished; skip those that cannot run.

        One pass in insertion order reaches the fixpoint: dependencies are always added first.
        """
        tasks = self.session.tasks
        ready = []
        for task in tasks.values():
            if task.status != "pending":
                continue
            deps = [tasks[d] for d in task.dependencies]
            if any(d.status not in _FINISHED for d in deps):
                continue
            bad = [d for d in deps if d.status != "completed"]
            if bad:
                d = bad[0]
                verb = {"failed": "failed", "skipped": "was skipped", "cancelled": "was cancelled"}
                self._skip(task, f"dependency {d.task_id!r} {verb[d.status]}")
                continue
            self._start(task)
            ready.append(task)
        return ready

    # -- transitions -------------------------------------------------------------------------

    def _record(self, task: CollaborationTask) -> dict[str, Any]:
        rec = self.session.task_results.get(task.task_id)
        if rec is None:
            rec = self.session.task_results[task.task_id] = _new_record(task)
        return rec

    def _start(self, task: CollaborationTask) -> None:
        rec = self._record(task)
        task.status = rec["status"] = "running"
        rec["started_at"] = _now()
        self._ran[task.task_id] = None

    def _skip(self, task: CollaborationTask, reason: str) -> None:
        rec = self._record(task)
        task.status = rec["status"] = "skipped"
        rec["reason"] = reason
        now = rec["finished_at"] = _now()
        self._ran[task.task_id] = None
        if self.bus:
            self.bus.emit(TaskSkipped(self.run_id, now, self.session.session_id, task.task_id,
                                      reason))

    def _finish(self, task: CollaborationTask, result: Any) -> None:
        rec = self._record(task)
        parts = rec["participants"]
        failed = [n for n, p in parts.items() if p["status"] == "failed"]
        rec["results"] = {n: p["result"] for n, p in parts.items() if p["status"] == "completed"}
        task.results = dict(rec["results"])
        rec["result"] = result
        if failed:
            rec["error"] = f"{failed[0]}: {parts[failed[0]]['error']}"
            rec["failed_participants"] = failed
        task.status = rec["status"] = "failed" if failed else "completed"
        rec["shared_version"] = self.session.shared_state.version
        rec["finished_at"] = _now()

    def _fail(self, task: CollaborationTask, exc: Exception) -> None:
        """A task that failed before (or without) a participant's turn: its condition raised,
        a participant has no handler."""
        rec = self._record(task)
        error = rec["error"] = describe_error(exc)
        rec["exception"] = exc
        task.status = rec["status"] = "failed"
        now = rec["finished_at"] = _now()
        if self.bus:
            self.bus.emit(TaskFailed(self.run_id, now, self.session.session_id, task.task_id,
                                     None, 0, rec["started_at"], error, True))

    def _cancel(self, task: CollaborationTask) -> None:
        rec = self._record(task)
        now = _now()
        sid, tid, bus = self.session.session_id, task.task_id, self.bus
        for name, p in rec["participants"].items():
            if p["status"] == "pending":  # its turn never came (a running one says so itself)
                p["status"] = "cancelled"
                if bus:
                    bus.emit(TaskCancelled(self.run_id, now, sid, tid, name, 0, None))
            elif p["status"] == "running":
                p["status"] = "cancelled"
        task.status = rec["status"] = "cancelled"
        rec["finished_at"] = now
        if bus and not rec["participants"]:
            bus.emit(TaskCancelled(self.run_id, now, sid, tid, None, 0, None))

    # -- one task ----------------------------------------------------------------------------

    async def _run_task(self, task: CollaborationTask) -> None:
        session = self.session
        inputs = {d: session.task_results[d]["result"] for d in task.dependencies}
        names = task.assigned_to or list(session.participants)
        try:
            if task.shared_data:  # the document's shared_data: in the shared state from now on
                session.shared_state.assign(f"task:{task.task_id}", task.shared_data)
            missing = [n for n in names if n not in self.manager.participants]
            if missing:
                raise CoordinationError(
                    f"participant(s) {', '.join(map(repr, missing))} of task {task.task_id!r} "
                    f"have no handler: call register_participant(name, handler) first"
                )
            if task.condition is not None:
                holds, why = await self._condition(task, inputs)
                if not holds:
                    self._skip(task, why)
                    return
            mode = session.coordination_type
            if mode in (CoordinationType.SEQUENTIAL, CoordinationType.CONDITIONAL):
                result = await self._sequential(task, names, inputs)
            else:
                result = await self._together(task, names, inputs)
        except asyncio.CancelledError:
            self._cancel(task)
            raise
        except Exception as exc:  # a condition that raised, a missing handler
            self._fail(task, exc)
            return
        self._finish(task, result)

    async def _condition(
        self, task: CollaborationTask, inputs: Mapping[str, Any]
    ) -> tuple[bool, str]:
        cond = task.condition
        shared = self.session.shared_state.read().data
        if isinstance(cond, Mapping):
            if evaluate(cond, {"shared": shared, "inputs": dict(inputs)}):
                return True, ""
            return False, f"condition is false: {dict(cond)!r}"
        value = cond(shared, dict(inputs))
        if inspect.isawaitable(value):
            value = await value
        if value:
            return True, ""
        name = getattr(cond, "__name__", type(cond).__name__)
        return False, f"condition {name}(shared, inputs) returned {value!r}"

    async def _sequential(
        self, task: CollaborationTask, names: list[str], inputs: Mapping[str, Any]
    ) -> Any:
        parts = self._record(task)["participants"]
        for name in names:
            parts[name] = _participant_record()
        previous = None
        for name in names:
            ok, previous = await self._call(task, name, inputs, previous)
            if not ok:  # a failure stops the task: the rest do not run
                now = _now()
                for rest in names[names.index(name) + 1 :]:
                    parts[rest]["status"] = "not_run"
                    if self.bus:
                        self.bus.emit(TaskSkipped(
                            self.run_id, now, self.session.session_id, task.task_id,
                            f"participant {name!r} failed before its turn", rest,
                        ))
                return None
        return previous

    async def _together(
        self, task: CollaborationTask, names: list[str], inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        parts = self._record(task)["participants"]
        for name in names:
            parts[name] = _participant_record()
        async with asyncio.TaskGroup() as tg:  # _call never raises but for cancellation
            for name in names:
                tg.create_task(self._call(task, name, inputs, None))
        return {n: p["result"] for n, p in parts.items() if p["status"] == "completed"}

    async def _call(
        self, task: CollaborationTask, name: str, inputs: Mapping[str, Any], previous: Any
    ) -> tuple[bool, Any]:
        """Run one participant on the task; record its outcome. Only cancellation escapes."""
        rec = self._record(task)["participants"][name]
        handler = self.manager.participants[name]
        ctx = ParticipantContext(
            task, name, self.session.shared_state, previous, inputs,
            self.session.session_id, self.manager,
        )
        rec["status"] = "running"
        started = rec["started_at"] = _now()
        bus, sid, tid = self.bus, self.session.session_id, task.task_id
        self._participants[name] = None
        if bus:
            bus.emit(TaskStarted(self.run_id, started, sid, tid, name, 1))
        try:
            if task.timeout is None:
                result = await self._invoke(handler, ctx)
            else:
                try:
                    async with asyncio.timeout(task.timeout) as scope:
                        result = await self._invoke(handler, ctx)
                except TimeoutError:
                    if scope.expired():
                        raise TaskTimeoutError(task.task_id, task.timeout) from None
                    raise
        except asyncio.CancelledError:
            rec["status"] = "cancelled"
            now = rec["finished_at"] = _now()
            if bus:
                bus.emit(TaskCancelled(self.run_id, now, sid, tid, name, 1, started))
            raise
        except Exception as exc:
            rec["status"] = "failed"
            error = rec["error"] = describe_error(exc)
            rec["exception"] = exc
            now = rec["finished_at"] = _now()
            if bus:
                bus.emit(TaskFailed(self.run_id, now, sid, tid, name, 1, started, error, True))
            return False, None
        rec["status"] = "completed"
        rec["result"] = result
        now = rec["finished_at"] = _now()
        if bus:
            bus.emit(TaskCompleted(self.run_id, now, sid, tid, name, 1, started, result))
        return True, result

    async def _invoke(self, handler: Any, ctx: ParticipantContext) -> Any:
        if is_async_callable(handler):
            result = await handler(ctx)
        else:
            result = await self.manager.executor.run(handler, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result


def _participant_record() -> dict[str, Any]:
    return {"status": "pending", "result": None, "error": None, "started_at": None, "finished_at": None}
