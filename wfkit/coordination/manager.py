"""The public face of coordination: participants, sessions, shared state and shared resources.

:class:`CoordinationCollaborationManager` keeps the pattern document's names and gives them
real work: sessions run their tasks with the registered participants' handlers
(:mod:`wfkit.coordination.sessions`), each session has a versioned shared state with conflict
resolution (:mod:`wfkit.coordination.shared_state`), and shared resources are fair FIFO locks
with leases and deadlock detection (:mod:`wfkit.coordination.resources`). Every change,
conflict and resource hand-over is an event on one :class:`~wfkit.events.EventBus`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wfkit.clock import SYSTEM, Clock
from wfkit.coordination.model import (
    CollaborationTask,
    CoordinationSession,
    CoordinationType,
)
from wfkit.coordination.model import (
    coordination_type as parse_coordination_type,
)
from wfkit.coordination.resources import Grant, ResourceScope, ResourceTable, check_name
from wfkit.coordination.sessions import SessionResult, SessionRunner, session_result
from wfkit.coordination.shared_state import Conflict, SharedState, check_strategy
from wfkit.errors import (
    CoordinationError,
    DuplicateTaskError,
    UnknownSessionError,
    ValidationError,
)
from wfkit.events import Event, EventBus
from wfkit.executors.base import Executor
from wfkit.graph import check_dependencies
from wfkit.lifecycle import Closing

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CoordinationCollaborationManager", "RESOURCE_OPERATIONS"]

log = logging.getLogger("wfkit.coordination")

RESOURCE_OPERATIONS = ("acquire", "release", "cancel")


class CoordinationCollaborationManager(Closing):
    """Coordinates participants working together in sessions.

    ``conflict_strategy`` is the default for new sessions (``"merge"``, ``"last_writer_wins"``,
    ``"first_writer_wins"``, ``"manual"`` or a callable). ``default_lease`` (seconds) bounds
    every resource holding that does not name its own lease. ``executor`` runs sync handlers
    (a thread pool by default, so a sync handler never blocks the event loop).
    ``history_limit`` bounds the change and resource histories kept for the frames.
    ``clock`` times resource waits, leases and timeouts (:data:`wfkit.clock.SYSTEM`; a
    :class:`wfkit.clock.ManualClock` lets a test step through them).

    ``metrics`` is an :class:`~wfkit.AdvancedWorkflowMetrics` subscribed to this manager's
    events: each run of a session is a row of its ``workflow_frame()`` (the session id as
    ``workflow_id``) and each participant's turn at a task a row of its ``task_frame()``
    (:meth:`task_frame` picks one session's).
    """

    def __init__(
        self,
        *,
        conflict_strategy: Any = "merge",
        default_lease: float | None = None,
        executor: Executor | None = None,
        history_limit: int | None = 100_000,
        clock: Clock = SYSTEM,
    ) -> None:
        self.conflict_strategy = check_strategy(conflict_strategy)
        self.participants: dict[str, Callable[..., Any]] = {}
        self.sessions: dict[str, CoordinationSession] = {}
        self.conflicts: dict[str, Conflict] = {}
        self.coordination_id = uuid.uuid4().hex[:12]
        self.history_limit = history_limit
        self._bus = EventBus()
        self._resources = ResourceTable(
            self._bus,
            run_id=self.coordination_id,
            default_lease=default_lease,
            history_limit=history_limit,
            clock=clock,
        )
        self._executor = executor
        self._owns_executor = executor is None
        self._session_numbers = itertools.count(1)
        self._conflict_numbers = itertools.count(1)
        self._locks: dict[str, asyncio.Lock] = {}
        self._runners: dict[str, SessionRunner] = {}
        self._coordinator: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        from wfkit.metrics.recorder import AdvancedWorkflowMetrics

        self.metrics = AdvancedWorkflowMetrics(max_rows=history_limit).attach(self._bus)

    # -- participants ------------------------------------------------------------------------

    def register_participant(self, name: str, handler: Callable[..., Any]) -> str:
        """Make ``name`` a participant whose work is ``handler(ctx)`` (sync or async).

        ``ctx`` is a :class:`~wfkit.coordination.model.ParticipantContext` (``task``,
        ``participant``, ``shared``, ``previous``, ``inputs``). Sync handlers run in the
        executor's threads.
        """
        check_name(name, "participant name")
        if not callable(handler):
            raise ValidationError(
                f"participant {name!r}: handler must be callable handler(ctx), got {handler!r}"
            )
        known = self.participants.get(name)
        if known is not None and known is not handler:
            raise ValidationError(
                f"participant {name!r} is already registered with another handler; "
                f"unregister_participant({name!r}) first or choose another name"
            )
        self.participants[name] = handler
        return name

    def unregister_participant(self, name: str) -> Callable[..., Any]:
        try:
            return self.participants.pop(name)
        except KeyError:
            raise ValidationError(
                f"no participant {name!r} is registered"
                + (f" (registered: {', '.join(map(repr, self.participants))})" if self.participants else "")
            ) from None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            from wfkit.executors.local import ThreadExecutor

            self._executor = ThreadExecutor()
            self._executor.reserve(max(8, len(self.participants)))
        return self._executor

    def subscribe(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every shared-state and resource event; returns an
        unsubscribe function. Events of sync handlers' writes arrive from their threads."""
        return self._bus.subscribe(callback)

    # -- sessions ----------------------------------------------------------------------------

    async def create_coordination_session(
        self,
        participants: Iterable[str],
        coordination_type: CoordinationType | str,
        *,
        session_id: str | None = None,
        conflict_strategy: Any = None,
        shared_state: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a session of ``participants`` (names, in order); returns its id.

        Participants need a handler (:meth:`register_participant`) by the time a task runs.
        ``shared_state`` is the initial content of the session's shared state.
        """
        ctype = parse_coordination_type(coordination_type)
        if session_id is None:
            session_id = f"session-{next(self._session_numbers)}"
            while session_id in self.sessions:
                session_id = f"session-{next(self._session_numbers)}"
        else:
            check_name(session_id, "session_id")
            if session_id in self.sessions:
                raise ValidationError(
                    f"a session {session_id!r} already exists; choose another session_id"
                )
        strategy = check_strategy(
            self.conflict_strategy if conflict_strategy is None else conflict_strategy
        )
        if shared_state is not None and not isinstance(shared_state, Mapping):
            raise ValidationError(
                f"shared_state must be a dict (the initial shared state), "
                f"got {type(shared_state).__name__}"
            )
        state = SharedState(
            session_id,
            shared_state or {},
            strategy=strategy,
            history_limit=self.history_limit,
        )
        session = CoordinationSession(
            session_id,
            participants,  # type: ignore[arg-type]
            ctype,
            shared_state=state,
            conflict_strategy=strategy,
        )
        state._attach(self._bus, self.conflicts, self._next_conflict_id)
        self.sessions[session_id] = session
        return session_id

    def _next_conflict_id(self) -> str:
        return f"conflict-{next(self._conflict_numbers)}"

    def session(self, session_id: str) -> CoordinationSession:
        """The session with this id, or :class:`~wfkit.UnknownSessionError`."""
        try:
            return self.sessions[session_id]
        except (KeyError, TypeError):
            raise UnknownSessionError(session_id, self.sessions) from None

    async def add_collaboration_task(self, session_id: str, task: CollaborationTask) -> str:
        """Add ``task`` to a session; returns its id. Dependencies must be added first."""
        session = self.session(session_id)
        if not isinstance(task, CollaborationTask):
            raise ValidationError(
                f"add_collaboration_task() takes a CollaborationTask, got {type(task).__name__}"
            )
        if task.task_id in session.tasks:
            raise DuplicateTaskError(task.task_id)
        check_dependencies(
            task.task_id, task.dependencies, session.tasks, where=f"session {session_id!r}"
        )
        strangers = [p for p in task.assigned_to if p not in session.participants]
        if strangers:
            raise ValidationError(
                f"task {task.task_id!r} is assigned to {', '.join(map(repr, strangers))}, not "
                f"participant(s) of session {session_id!r} "
                f"({', '.join(map(repr, session.participants))})"
            )
        if task.status != "pending":
            raise ValidationError(
                f"task {task.task_id!r} has status {task.status!r}; add tasks that are pending"
            )
        session.tasks[task.task_id] = task
        if session.status != "running":
            session.status = "active"
        runner = self._runners.get(session_id)
        if runner is not None:
            runner.kick()
        if self._wake is not None:
            self._wake.set()
        return task.task_id

    async def run_session(self, session_id: str) -> SessionResult:
        """Run the session's pending tasks, respecting their dependencies, until none is left.

        Returns ``status`` (``"completed"``, or ``"failed"`` if a task failed) and
        ``task_results[task_id]`` with each task's ``status``, ``results`` (by participant),
        ``participants`` (each one's status, result, error, times), ``result`` (what dependents
        get as input), ``reason`` (why it was skipped) and ``shared_version`` (the version of the
        shared state when it finished).
        """
        session = self.session(session_id)
        names = {
            n
            for t in session.tasks.values()
            if t.status == "pending"
            for n in (t.assigned_to or session.participants)
        }
        missing = sorted(n for n in names if n not in self.participants)
        if missing:
            raise CoordinationError(
                f"session {session_id!r}: participant(s) {', '.join(map(repr, missing))} have "
                f"no handler; call register_participant(name, handler) before running"
            )
        await self._run(session)
        return session_result(session)

    def session_result(self, session_id: str) -> SessionResult:
        """The session's outcome so far (also for sessions the background loop runs)."""
        return session_result(self.session(session_id))

    def task_result(self, session_id: str, task_id: str) -> dict[str, Any]:
        result = self.session_result(session_id)["task_results"]
        if task_id not in result:
            raise ValidationError(
                f"session {session_id!r} has no task {task_id!r}"
                + (f" (tasks: {', '.join(map(repr, list(result)[:10]))})" if result else "")
            )
        return result[task_id]

    async def _run(self, session: CoordinationSession) -> None:
        sid = session.session_id
        lock = self._locks.get(sid)
        if lock is None:
            lock = self._locks[sid] = asyncio.Lock()
        async with lock:  # one runner per session; a second caller finds nothing left to do
            runner = SessionRunner(self, session)
            self._runners[sid] = runner
            try:
                await runner.run()
            finally:
                self._runners.pop(sid, None)

    # -- the background loop -----------------------------------------------------------------

    async def start_coordination(self) -> None:
        """Process queued tasks of every session in the background until :meth:`stop`.

        Returns at once; tasks added later are picked up as they arrive. Calling it again while
        the loop runs does nothing.
        """
        if self._coordinator is not None and not self._coordinator.done():
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._coordinator = asyncio.get_running_loop().create_task(self._coordinate())

    @property
    def coordinating(self) -> bool:
        """True while the background loop runs."""
        return self._coordinator is not None and not self._coordinator.done()

    async def stop(self, *, cancel: bool = False) -> None:
        """Stop the background loop and return once it has finished.

        Sessions already running finish their tasks first; ``cancel=True`` cancels them
        instead (their running tasks end ``cancelled``).
        """
        task = self._coordinator
        if task is None:
            return
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if cancel:
            task.cancel()
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            if task.done():
                self._coordinator = None
                self._wake = None
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def _coordinate(self) -> None:
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                wake.clear()
                for sid in [s for s, t in running.items() if t.done()]:
                    running.pop(sid)
                if self._stopping:
                    if not running:
                        return
                else:
                    for sid, session in list(self.sessions.items()):
                        if sid not in running and any(
                            t.status == "pending" for t in session.tasks.values()
                        ):
                            t = loop.create_task(self._run_in_background(session))
                            t.add_done_callback(lambda _t: wake.set())
                            running[sid] = t
                await wake.wait()
        finally:
            for t in running.values():
                t.cancel()
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)

    async def _run_in_background(self, session: CoordinationSession) -> None:
        try:
            await self._run(session)
        except Exception as exc:  # keep the loop alive; the session says what went wrong
            session.status = "failed"
            session.error = f"{type(exc).__name__}: {exc}"
            log.exception("coordination session %r failed", session.session_id)

    # -- conflicts ---------------------------------------------------------------------------

    async def resolve_conflict(self, conflict_id: str, resolution: Any) -> bool:
        """Apply the chosen value of a pending conflict; False if the id is unknown or the
        conflict is already resolved.

        ``resolution``: ``"current"`` or ``"incoming"`` (or the name of the participant whose
        side wins), or a dict ``{key: value}`` of the values to write.
        """
        conflict = self.conflicts.get(conflict_id) if isinstance(conflict_id, str) else None
        if conflict is None or conflict.status != "pending":
            return False
        session = self.sessions.get(conflict.session_id)
        if session is None:
            return False
        return session.shared_state.resolve(conflict, resolution)

    def pending_conflicts(self, session_id: str | None = None) -> list[Conflict]:
        """Conflicts waiting for :meth:`resolve_conflict`, oldest first."""
        if session_id is not None:
            self.session(session_id)
        return [
            c
            for c in self.conflicts.values()
            if c.status == "pending" and (session_id is None or c.session_id == session_id)
        ]

    # -- shared resources --------------------------------------------------------------------

    async def manage_shared_resource(
        self, resource_id: str, participant: str, operation: str, *, lease: float | None = None
    ) -> bool:
        """The pattern document's resource call.

        ``"acquire"``: True if ``participant`` holds the resource now; otherwise it is queued
        (once) and False is returned; the resource passes to it in FIFO order when released
        (poll again, or watch for ``ResourceAcquired``). A request that would close a wait-for
        cycle raises :class:`~wfkit.DeadlockError`. ``"release"``: True if ``participant`` held
        it (the next waiter gets it), False otherwise. ``"cancel"``: leave the queue.
        """
        check_name(resource_id, "resource_id")
        check_name(participant, "participant")
        if operation == "acquire":
            return self._resources.acquire_nowait(resource_id, participant, lease=lease)
        if operation == "release":
            return self._resources.release_participant(resource_id, participant)
        if operation == "cancel":
            return self._resources.cancel_request(resource_id, participant)
        raise ValidationError(
            f"unknown resource operation {operation!r}: use one of "
            f"{', '.join(map(repr, RESOURCE_OPERATIONS))}"
        )

    def resource(
        self,
        resource_id: str,
        participant: str,
        *,
        timeout: float | None = None,
        lease: float | None = None,
    ) -> ResourceScope:
        """``async with manager.resource("db", "alice", timeout=5, lease=30) as grant:``.

        Waits its turn in FIFO order; ``timeout`` raises :class:`~wfkit.ResourceTimeoutError`
        and leaves the queue; a ``lease`` that runs out hands the resource to the next waiter
        (with a ``ResourceLeaseExpired`` event); the resource is released on exit, on error
        and on cancellation.
        """
        return ResourceScope(self._resources, resource_id, participant, timeout, lease)

    async def acquire_resource(
        self,
        resource_id: str,
        participant: str,
        *,
        timeout: float | None = None,
        lease: float | None = None,
    ) -> Grant:
        """Wait for the resource and return the :class:`Grant` (``grant.release()`` ends it)."""
        return await self._resources.acquire(
            resource_id, participant, timeout=timeout, lease=lease
        )

    def resource_statistics(self, resource_id: str) -> dict[str, Any]:
        """Holder, waiters in order, counts, and wait and hold times (seconds)."""
        return self._resources.statistics(resource_id)

    @property
    def resources(self) -> list[str]:
        """Ids of the resources used so far."""
        return self._resources.resource_ids

    # -- frames (pandas, imported on first use) ----------------------------------------------

    def task_frame(self, session_id: str | None = None) -> pd.DataFrame:
        """One row per participant's turn at a session task (and per task that ended without
        one), from the sessions' events: :meth:`AdvancedWorkflowMetrics.task_frame` of
        ``session_id`` (every session when None)."""
        if session_id is not None:
            self.session(session_id)  # an unknown id: a clear error
        frame = self.metrics.task_frame()
        if session_id is not None:
            frame = frame[frame["workflow_id"] == session_id].reset_index(drop=True)
        return frame

    def changes_frame(self, session_id: str | None = None) -> pd.DataFrame:
        """Every change of the shared states: who, what, version, strategy, when (from the
        ``SharedStateChanged`` events, by :attr:`metrics`)."""
        if session_id is not None:
            self.session(session_id)  # an unknown id: a clear error
        return self.metrics.changes_frame(session_id, order=self.sessions)

    def conflicts_frame(self, session_id: str | None = None) -> pd.DataFrame:
        """Every conflict: both participants and values, strategy, status and resolution."""
        import pandas as pd

        if session_id is not None:
            self.session(session_id)
        rows = [
            c.as_row()
            for c in self.conflicts.values()
            if session_id is None or c.session_id == session_id
        ]
        columns = [
            "conflict_id", "session_id", "created_at", "participants", "keys", "current",
            "incoming", "held", "strategy", "status", "base_version", "version", "resolution",
            "resolved_by", "resolved_at",
        ]
        df = pd.DataFrame(rows, columns=columns)
        for col in ("created_at", "resolved_at"):
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
        return df

    def resource_frame(self, resource_id: str | None = None) -> pd.DataFrame:
        """One row per finished resource request: waited, held, and how it ended
        (``released``, ``expired``, ``cancelled`` or ``timeout``), from the resource events
        (by :attr:`metrics`)."""
        if resource_id is not None:
            self._resources.statistics(resource_id)  # unknown id: a clear error
        return self.metrics.resource_frame(resource_id, order=self._resources.resource_ids)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Shut down the executor this manager created (never one it was given)."""
        if self._owns_executor and self._executor is not None:
            self._executor.close()
            self._executor = None

    async def aclose(self, *, cancel: bool = False) -> None:
        """Stop the background loop (:meth:`stop`), then :meth:`close`."""
        try:
            await self.stop(cancel=cancel)
        finally:
            self.close()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose(cancel=exc[0] is not None)

    def __repr__(self) -> str:
        return (
            f"<CoordinationCollaborationManager {len(self.participants)} participants, "
            f"{len(self.sessions)} sessions, {len(self.pending_conflicts())} pending conflicts, "
            f"{len(self.resources)} resources{', coordinating' if self.coordinating else ''}>"
        )

