"""The model of coordination: coordination types, sessions, collaboration tasks, the context.

The first fields of :class:`CoordinationSession` and :class:`CollaborationTask` keep the order
of the original pattern document, so code written against it constructs them unchanged. Each
object checks its own fields in ``__post_init__``; checks that need the session (unknown
participants, unknown dependencies) live in the manager.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from wfkit.agents.model import dependency_ids
from wfkit.conditions import validate_condition
from wfkit.errors import ValidationError
from wfkit.statuses import TASK_STATUSES

if TYPE_CHECKING:
    from wfkit.coordination.manager import CoordinationCollaborationManager
    from wfkit.coordination.resources import ResourceScope
    from wfkit.coordination.shared_state import SharedState, Snapshot, WriteOutcome

__all__ = [
    "CoordinationType",
    "CoordinationSession",
    "CollaborationTask",
    "ParticipantContext",
    "SESSION_STATUSES",
    "TASK_STATUSES",
    "coordination_type",
    "participant_names",
]

SESSION_STATUSES = ("active", "running", "completed", "failed", "cancelled")


class CoordinationType(StrEnum):
    """How the participants of a task work. Members compare equal to their string values.

    - ``SEQUENTIAL``: one after another in the given order; each sees the previous result; a
      failure stops the task.
    - ``PARALLEL``: all at once; failures are reported per participant.
    - ``CONDITIONAL``: the task's ``condition`` decides whether it runs (then sequentially).
    - ``COLLABORATIVE``: all at once, working on the session's shared state.
    """

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    CONDITIONAL = "conditional"
    COLLABORATIVE = "collaborative"


def coordination_type(value: object) -> CoordinationType:
    """A member from a member, its value (``"parallel"``) or its name (``"PARALLEL"``)."""
    if isinstance(value, CoordinationType):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for member in CoordinationType:
            if member.value == key:
                return member
    valid = ", ".join(f"CoordinationType.{m.name}" for m in CoordinationType)
    raise ValidationError(
        f"unknown coordination type {value!r}: use one of {valid} "
        f"(or their values {', '.join(repr(m.value) for m in CoordinationType)})"
    )


def participant_names(values: object, owner: str, *, allow_empty: bool = False) -> list[str]:
    """Participants as a duplicate-free list of non-empty strings, in the given order."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{owner}: participants must be a list of names, got {type(values).__name__} "
            f"{values!r}"
        )
    names = list(values)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError(
                f"{owner}: participant names must be non-empty strings, got {name!r}"
            )
    seen: set[str] = set()
    dupes = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dupes:
        raise ValidationError(
            f"{owner}: participant(s) {', '.join(map(repr, dict.fromkeys(dupes)))} are listed "
            f"more than once; list each participant once"
        )
    if not names and not allow_empty:
        raise ValidationError(f"{owner}: needs at least one participant")
    return names


@dataclass(eq=False, init=False)
class CollaborationTask:
    """A unit of work done together by participants of one session.

    Built as in the pattern document, positionally or by keyword:
    ``CollaborationTask(task_id, description, assigned_to, dependencies, shared_data,
    status="pending")``. ``assigned_to`` (empty: every participant of the session; also
    accepted as the keyword ``assigned_participants``) work on it as the session's coordination
    type says. ``dependencies`` name tasks of the same session that must finish first; their
    results arrive as ``ctx.inputs``. ``shared_data`` is merged into the session's shared state
    (key by key, at the current version) as the task starts, so its participants read it there.
    ``condition`` gates the task: a callable ``condition(shared, inputs)`` (sync or async) or a
    declarative condition (:mod:`wfkit.conditions`) evaluated on ``{"shared": <shared state>,
    "inputs": <inputs>}``; a false condition skips the task with the reason. ``timeout``
    bounds each participant's call, in seconds.

    ``status`` and ``results`` (each participant's result) are updated as the task runs.
    """

    task_id: str
    description: str
    assigned_to: list[str]
    dependencies: list[str]
    shared_data: dict[str, Any]
    status: str
    results: dict[str, Any]
    condition: Any = field(repr=False)
    timeout: float | None

    def __init__(
        self,
        task_id: str,
        description: str,
        assigned_to: Iterable[str] | None = None,
        dependencies: Iterable[str] | None = None,
        shared_data: Mapping[str, Any] | None = None,
        status: str = "pending",
        results: Mapping[str, Any] | None = None,
        condition: Any = None,
        *,
        timeout: float | None = None,
        assigned_participants: Iterable[str] | None = None,
    ) -> None:
        if assigned_participants is not None:
            if assigned_to is not None:
                raise ValidationError(
                    f"collaboration task {task_id!r}: give assigned_to or its alias "
                    f"assigned_participants, not both"
                )
            assigned_to = assigned_participants
        self.task_id = task_id
        self.description = description
        self.assigned_to = assigned_to  # type: ignore[assignment]  # checked below
        self.dependencies = dependencies  # type: ignore[assignment]
        self.shared_data = shared_data  # type: ignore[assignment]
        self.status = status
        self.results = dict(results) if results else {}
        self.condition = condition
        self.timeout = timeout
        self._check()

    @property
    def assigned_participants(self) -> list[str]:
        """Another name for :attr:`assigned_to`."""
        return self.assigned_to

    @assigned_participants.setter
    def assigned_participants(self, value: list[str]) -> None:
        self.assigned_to = value

    def _check(self) -> None:
        if not isinstance(self.task_id, str) or not self.task_id:
            raise ValidationError(
                f"CollaborationTask: task_id must be a non-empty string, got {self.task_id!r}"
            )
        owner = f"collaboration task {self.task_id!r}"
        if not isinstance(self.description, str):
            raise ValidationError(f"{owner}: description must be a string")
        if self.assigned_to is None:
            self.assigned_to = []
        self.assigned_to = participant_names(self.assigned_to, owner, allow_empty=True)
        deps = dependency_ids(self.dependencies, owner)
        if "" in deps:
            raise ValidationError(f"{owner}: dependencies must be task ids, got ''")
        if self.task_id in deps:
            raise ValidationError(f"{owner}: a task cannot depend on itself")
        self.dependencies = deps
        data = self.shared_data
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            hint = (
                " (status is the sixth argument: CollaborationTask(task_id, description, "
                "assigned_to, dependencies, shared_data, status))"
                if isinstance(data, str) and data in TASK_STATUSES
                else ""
            )
            raise ValidationError(
                f"{owner}: shared_data must be a dict of the data the task shares, got "
                f"{type(data).__name__} {data!r}{hint}"
            )
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise ValidationError(
                f"{owner}: shared_data keys are shared-state keys and must be strings, got "
                f"{bad[0]!r}"
            )
        self.shared_data = dict(data)
        if self.status not in TASK_STATUSES:
            raise ValidationError(
                f"{owner}: status must be one of {', '.join(TASK_STATUSES)}, got {self.status!r}"
            )
        if self.condition is not None:
            validate_condition(self.condition)
        if self.timeout is not None:
            if (
                isinstance(self.timeout, bool)
                or not isinstance(self.timeout, int | float)
                or not self.timeout > 0
            ):
                raise ValidationError(
                    f"{owner}: timeout must be a number of seconds > 0, got {self.timeout!r}"
                )


def _shared_state_field(value: Any, session_id: str) -> SharedState:
    from wfkit.coordination.shared_state import SharedState

    if isinstance(value, SharedState):
        return value
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"session {session_id!r}: shared_state must be a dict (the initial shared state), "
            f"got {type(value).__name__}"
        )
    return SharedState(session_id, value)


@dataclass(eq=False)
class CoordinationSession:
    """Participants working on tasks under one coordination type, sharing one state.

    ``shared_state`` is a versioned :class:`~wfkit.coordination.shared_state.SharedState` (a
    plain dict given here becomes its initial content). ``tasks`` keeps the session's tasks in
    the order they were added, ``task_results`` what each finished task produced.
    ``conflict_strategy`` resolves writes based on an old version of the shared state.
    """

    session_id: str
    participants: list[str]
    coordination_type: CoordinationType
    status: str = "active"
    created_at: float = field(default_factory=time.time)
    shared_state: Any = None
    tasks: dict[str, CollaborationTask] = field(default_factory=dict)
    _: KW_ONLY
    conflict_strategy: Any = "merge"
    task_results: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    error: str | None = None

    def __post_init__(self) -> None:
        from wfkit.coordination.shared_state import check_strategy

        if not isinstance(self.session_id, str) or not self.session_id:
            raise ValidationError(
                f"CoordinationSession: session_id must be a non-empty string, "
                f"got {self.session_id!r}"
            )
        owner = f"session {self.session_id!r}"
        self.participants = participant_names(self.participants, owner)
        self.coordination_type = coordination_type(self.coordination_type)
        if self.status not in SESSION_STATUSES:
            raise ValidationError(
                f"{owner}: status must be one of {', '.join(SESSION_STATUSES)}, "
                f"got {self.status!r}"
            )
        self.conflict_strategy = check_strategy(self.conflict_strategy)
        self.shared_state = _shared_state_field(self.shared_state, self.session_id)
        self.shared_state.strategy = self.conflict_strategy


@dataclass(slots=True)
class ParticipantContext:
    """What a participant's handler receives.

    ``shared`` is the session's shared state, ``previous`` the previous participant's result
    (sequential and conditional sessions; ``None`` for the first), ``inputs`` the results of
    the task's dependencies by task id. The helpers act as this participant.
    """

    task: CollaborationTask
    participant: str
    shared: SharedState
    previous: Any
    inputs: Mapping[str, Any]
    session_id: str
    manager: CoordinationCollaborationManager | None = field(default=None, repr=False)

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def read(self) -> Snapshot:
        """A snapshot of the shared state with its version."""
        return self.shared.read()

    async def update(self, fn: Callable[[dict[str, Any]], Any]) -> WriteOutcome:
        """Read-modify-write of the shared state as this participant; retried on conflict."""
        return await self.shared.update(self.participant, fn)

    def update_sync(self, fn: Callable[[dict[str, Any]], Any]) -> WriteOutcome:
        """:meth:`update` for sync handlers (they run in worker threads)."""
        return self.shared.update_sync(self.participant, fn)

    def write(
        self, changes: Mapping[str, Any], *, base_version: int, deletes: Iterable[str] = ()
    ) -> WriteOutcome:
        """Write keys based on ``base_version``; a stale base goes to the conflict strategy."""
        return self.shared.write(
            self.participant, changes, base_version=base_version, deletes=deletes
        )

    def resource(
        self, resource_id: str, *, timeout: float | None = None, lease: float | None = None
    ) -> ResourceScope:
        """``async with ctx.resource("db"):`` holds a shared resource as this participant."""
        if self.manager is None:
            raise ValidationError("this context has no manager, so it cannot hold resources")
        return self.manager.resource(resource_id, self.participant, timeout=timeout, lease=lease)
