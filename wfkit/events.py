"""Immutable, past-tense events and the subscription mechanism.

Engines publish events on an :class:`EventBus`; metrics, the run store, progress bars and
widgets only subscribe. Building an event costs an allocation, so publishers check
``if bus:`` (true only when someone subscribed) before they build one.

Timestamps are UNIX seconds (UTC) from :func:`time.time`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from wfkit.errors import ArgumentError

__all__ = [
    "Event",
    "TaskSpec",
    "RunStarted",
    "TaskStarted",
    "TaskCompleted",
    "TaskFailed",
    "TaskRetrying",
    "TaskSkipped",
    "TaskCancelled",
    "TaskMapped",
    "RunFinished",
    "FlowMessageDelivered",
    "FlowMessageFailed",
    "FlowMessageDeadLettered",
    "FlowStepFinished",
    "SharedStateChanged",
    "SharedStateConflict",
    "ResourceAcquired",
    "ResourceReleased",
    "ResourceLeaseExpired",
    "ResourceWaitEnded",
    "EventBus",
    "Subscriptions",
]

log = logging.getLogger("wfkit.events")


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    timestamp: float


# --- collective agent workflows --------------------------------------------------------------


class TaskSpec(NamedTuple):
    """One task of a run's graph as subscribers see it: what a store needs to check a resume
    and write a trace, and what a view needs to draw the graph. Plain values only, so an
    event stays immutable however the task object changes later."""

    task_id: str
    dependencies: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()  # sorted
    group: str | None = None
    description: str = ""
    priority: float = 0
    estimated_duration: float = 0.0
    map: str | None = None  # the dependency a mapped task runs over
    retries: int = 0
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run began. ``tasks`` is its graph, one :class:`TaskSpec` per id of ``task_ids`` in
    the same order (empty when the publisher has no graph to give, as in a hand-made event);
    mapped children join later, through :class:`TaskMapped`."""

    workflow_id: str
    task_ids: tuple[str, ...]
    agents: tuple[tuple[str, int], ...]  # (agent_id, capacity)
    resumed: tuple[str, ...] = ()  # task ids taken as completed from a stored run
    policy: str = ""
    params: dict[str, Any] | None = None  # the run parameters (defaults and overrides)
    parent_run_id: str | None = None  # a sub-workflow's run: the run and task that started it
    parent_task_id: str | None = None
    tasks: tuple[TaskSpec, ...] = ()

    def dependencies(self) -> dict[str, tuple[str, ...]] | None:
        """``{task_id: dependencies}`` of the run's own tasks (None without ``tasks``)."""
        if not self.tasks:
            return None if self.task_ids else {}
        return {t.task_id: t.dependencies for t in self.tasks}


@dataclass(frozen=True, slots=True)
class TaskStarted(Event):
    workflow_id: str
    task_id: str
    agent_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskCompleted(Event):
    workflow_id: str
    task_id: str
    agent_id: str | None  # None: no agent ran it (a cached result, a mapped task's gathering)
    attempt: int
    started_at: float
    result: Any = field(repr=False, default=None)
    cached: bool = False  # served from the result cache: the action did not run


@dataclass(frozen=True, slots=True)
class TaskFailed(Event):
    workflow_id: str
    task_id: str
    agent_id: str | None  # None: it failed before any agent ran it (its inputs, its map)
    attempt: int
    started_at: float
    error: str
    final: bool  # False when a retry follows
    traceback: str | None = field(repr=False, default=None)  # the full traceback, as text
    where: str | None = None  # the user's innermost frame: "file.py:12 in fn: code line"


@dataclass(frozen=True, slots=True)
class TaskRetrying(Event):
    workflow_id: str
    task_id: str
    attempt: int  # the attempt that will run next
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class TaskSkipped(Event):
    workflow_id: str
    task_id: str
    reason: str
    agent_id: str | None = None  # a coordination session's participant whose turn was skipped


@dataclass(frozen=True, slots=True)
class TaskCancelled(Event):
    workflow_id: str
    task_id: str
    agent_id: str | None
    attempt: int
    started_at: float | None


@dataclass(frozen=True, slots=True)
class TaskMapped(Event):
    """A mapped task expanded into ``count`` children ``task_id[0]`` ... ``task_id[count-1]``
    (the run's task total grows by ``count``)."""

    workflow_id: str
    task_id: str
    count: int


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    workflow_id: str
    status: str  # "completed", "failed" or "cancelled"
    started_at: float
    total_tasks: int
    successful_tasks: int
    failed_tasks: int
    skipped_tasks: int
    cancelled_tasks: int
    participants: tuple[str, ...]


# --- integration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowStepFinished(Event):
    flow_id: str
    message_id: str
    step: str  # endpoint or transformation id
    kind: str  # "source", "transformation", "target", "fallback", "dead_letter", ...
    status: str
    attempts: int
    duration: float
    error: str | None = None


# A message's end says which endpoints (its sources, then the targets it was routed or
# delivered to) and which transformations it went through: what a recorder counts. None in a
# hand-made event: the recorder then counts the steps it saw.


@dataclass(frozen=True, slots=True)
class FlowMessageDelivered(Event):
    flow_id: str
    message_id: str
    delivered_to: tuple[str, ...]
    duration: float
    endpoints: tuple[str, ...] | None = None
    transformations: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class FlowMessageFailed(Event):
    flow_id: str
    message_id: str
    error: str
    duration: float
    endpoints: tuple[str, ...] | None = None
    transformations: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class FlowMessageDeadLettered(Event):
    flow_id: str
    message_id: str
    reason: str


# --- coordination -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedStateChanged(Event):
    session_id: str
    participant: str
    version: int
    keys: tuple[str, ...]
    strategy: str | None = None
    changes: dict[str, Any] | None = None  # {key: value written}, "<deleted>" for a deletion


@dataclass(frozen=True, slots=True)
class SharedStateConflict(Event):
    session_id: str
    conflict_id: str
    participants: tuple[str, ...]
    keys: tuple[str, ...]
    strategy: str
    resolved: bool


@dataclass(frozen=True, slots=True)
class ResourceAcquired(Event):
    resource_id: str
    participant: str
    waited: float


@dataclass(frozen=True, slots=True)
class ResourceReleased(Event):
    resource_id: str
    participant: str
    held: float
    outcome: str = "released"  # "released", "expired" (its lease ran out) or "cancelled"


@dataclass(frozen=True, slots=True)
class ResourceLeaseExpired(Event):
    resource_id: str
    participant: str
    lease: float


@dataclass(frozen=True, slots=True)
class ResourceWaitEnded(Event):
    """A request that ended without the resource: its wait timed out or was cancelled."""

    resource_id: str
    participant: str
    waited: float
    outcome: str  # "timeout" or "cancelled"


Subscriber = Callable[[Event], Any]


class EventBus:
    """A list of subscribers. Truthy only when someone listens, so publishers can skip work.

    A subscriber that raises is logged and kept: a broken progress bar must never break a run.
    That holds for any ``BaseException`` (a stray ``CancelledError`` included) except
    ``KeyboardInterrupt`` and ``SystemExit``, which propagate (a run then ends cancelled).
    """

    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)

    @property
    def showing_progress(self) -> bool:
        """True while a subscriber that shows the runs' progress listens (one whose
        ``shows_progress`` attribute is true, as a live dashboard's): a default progress bar
        would only repeat it."""
        return any(getattr(s, "shows_progress", False) for s in self._subscribers)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        if not callable(callback):
            raise ArgumentError(
                f"subscribe() needs a callable, got {type(callback).__name__}: pass a "
                f"function callback(event)"
            )
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def emit(self, event: Event) -> None:
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # a subscriber never breaks the publisher (nor hangs a run)
                log.exception("event subscriber %r failed on %r", callback, event)


class Subscriptions:
    """The sources a subscriber listens to, so that it can detach from one of them or all.

    Shared by every subscriber that attaches itself (metrics, the run store, the dashboard).
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[tuple[Any, Callable[[], None]]] = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        return (source for source, _ in self._items)

    def add(self, source: Any, callback: Subscriber) -> bool:
        """Subscribe ``callback`` to ``source`` once; False when it already was."""
        if any(s is source for s, _ in self._items):
            return False
        self._items.append((source, source.subscribe(callback)))
        return True

    def remove(self, source: Any = None) -> None:
        """Unsubscribe from ``source`` (from every source when None)."""
        keep = []
        for s, unsubscribe in self._items:
            if source is None or s is source:
                unsubscribe()
            else:
                keep.append((s, unsubscribe))
        self._items = keep


def _fast_init(cls: type) -> None:
    """Give a frozen slots dataclass an ``__init__`` that fills its slots directly.

    The generated one calls ``object.__setattr__`` once per field; with two events per task,
    that was most of what a subscriber cost a run. Same signature, defaults and
    immutability; classes with factories, kw-only fields or ``__post_init__`` keep theirs.
    """
    import dataclasses

    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or any(
        f.default_factory is not dataclasses.MISSING or f.kw_only or not f.init for f in fields
    ):
        return
    namespace: dict[str, Any] = {}
    params, body = [], []
    for f in fields:
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__  # the slot's descriptor
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[misc]


for _cls in [c for c in list(globals().values()) if isinstance(c, type) and issubclass(c, Event)]:
    _fast_init(_cls)
del _cls
