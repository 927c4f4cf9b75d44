"""Immutable, past-tense events and the subscription mechanism.

Engines publish events on an :class:`EventBus`; metrics, the run store, progress bars and
widgets only subscribe. Building an event costs an allocation, so publishers check
``if bus:`` (true only when someone subscribed) before they build one.

Timestamps are UNIX seconds (UTC) from :func:`time.time`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError, dataclass, field
from inspect import Parameter, Signature, signature
from typing import Any, NamedTuple, Protocol, TypeVar, cast, dataclass_transform

from wfkit.errors import ArgumentError

__all__ = [
    "Event",
    "TaskSpec",
    "WorkflowCreated",
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
    "EventSource",
    "Later",
    "later",
    "Subscriptions",
]

log = logging.getLogger("wfkit.events")


class EventSource(Protocol):
    """What views and recorders follow: anything with ``subscribe(callback) -> unsubscribe``
    (the orchestrators, the coordination manager, an :class:`EventBus`)."""

    def subscribe(self, callback: Callable[[Event], Any]) -> Callable[[], None]: ...


# --- how events are made ----------------------------------------------------------------------
#
# Events are slots dataclasses (``dataclasses.fields``, ``replace`` and ``is_dataclass`` work),
# frozen, compared and hashed by value. The methods ``@dataclass`` would generate for that are
# written once, in :class:`_Frozen`: dataclasses compiles each generated method with ``exec``,
# which for a score of event classes was a good part of what ``import wfkit`` cost.
#
# An event is built by its class's ``__new__`` (there is no ``__init__``): it makes the object
# as an instance of a private mutable twin of the class (a subclass with the same slots and
# no ``__setattr__`` of its own), so that ``self.field = value`` is the interpreter's fast
# slot store, then turns it into the frozen class (``__class__`` assignment: same layout).
# That costs half of filling the slots through their descriptors and a quarter of a frozen
# dataclass's ``object.__setattr__`` per field: two events per task are built for every
# subscriber. Such a ``__new__`` has to be compiled, so each class compiles its own (and
# makes its twin) the first time one of its events is built; a run without subscribers, and
# ``import wfkit``, never compile any.


_E = TypeVar("_E", bound="_Frozen")


@dataclass_transform(frozen_default=True)  # type checkers see each event's __init__
def _event(cls: type[_E]) -> type[_E]:
    """Make ``cls`` an event: a slots dataclass with the methods :class:`_Frozen` provides."""
    documented = bool(cls.__dict__.get("__doc__"))
    if not documented:
        cls.__doc__ = "-"  # dataclass would ask inspect for a signature; ours is below
    cls = dataclass(slots=True, init=False, repr=False, eq=False)(cls)
    fields = list(cls.__dataclass_fields__.values())  # type: ignore[attr-defined]
    for f in fields:
        if f.default_factory is not MISSING or f.kw_only or not f.init:
            raise TypeError(f"event {cls.__name__}.{f.name}: only plain fields and defaults")
    names = tuple(f.name for f in fields)

    def __new__(cls_: Any, *args: Any, **kwargs: Any) -> Any:
        new = _compile_new(cls, fields)
        new.__signature__ = __new__.__signature__  # type: ignore[attr-defined]
        cls.__new__ = staticmethod(new)  # type: ignore[method-assign]
        return new(cls_, *args, **kwargs)

    __new__.__qualname__ = f"{cls.__qualname__}.__new__"
    __new__.__module__ = cls.__module__
    __new__.__signature__ = Signature(  # type: ignore[attr-defined]  # help(), Jupyter's ?
        [Parameter("cls", Parameter.POSITIONAL_OR_KEYWORD)]
        + [Parameter(f.name, Parameter.POSITIONAL_OR_KEYWORD, annotation=f.type,
                     default=Parameter.empty if f.default is MISSING else f.default)
           for f in fields],
    )
    cls.__new__ = staticmethod(__new__)  # type: ignore[assignment]
    cls._names = names
    cls._shown = tuple(f.name for f in fields if f.repr)
    if not documented:  # what dataclass writes: the class and its signature
        cls.__doc__ = cls.__name__ + str(signature(cls))
    return cls


def _compile_new(cls: type, fields: list[Any]) -> Any:
    """``def __new__(cls, a, b=_d1)`` for ``cls``'s fields: fill a mutable twin of ``cls``,
    then make it a ``cls``. A subclass that is not an event itself (it may have a
    ``__dict__``, another layout) has its slots filled through their descriptors."""
    twin = type(cls.__name__, (cls,), {
        "__slots__": (), "__module__": cls.__module__,
        # both: they share one type slot, which must be the plain one for the fast store
        "__setattr__": object.__setattr__, "__delattr__": object.__delattr__,
        "__qualname__": f"{cls.__qualname__}.<filling>",
    })
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    params, fast, slow = ["cls"], [], []
    for i, f in enumerate(fields):
        namespace[f"_s{i}"] = getattr(cls, f.name).__set__  # the slot's descriptor
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        fast.append(f"        self.{f.name} = {f.name}")
        slow.append(f"        _s{i}(self, {f.name})")
    source = (
        f"def __new__({', '.join(params)}):\n"
        "    if cls is _cls:\n"
        "        self = _new(_twin)\n" + "\n".join(fast) + "\n"
        "        self.__class__ = cls\n"
        "    else:\n"
        "        self = _new(cls)\n" + "\n".join(slow) + "\n"
        "    return self\n"
    )
    exec(source, namespace)
    new = namespace["__new__"]
    qualname = f"{cls.__qualname__}.__new__"
    new.__code__ = new.__code__.replace(co_qualname=qualname)  # for its errors' messages
    new.__qualname__ = qualname
    new.__module__ = cls.__module__
    return new


def _rebuild(cls: type[_Frozen], values: tuple[Any, ...]) -> Any:
    """Unpickle an event."""
    return cls(*values)


class _Frozen:
    """What every event does: refuse changes, compare, hash, show and pickle by value."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _shown: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.__class__, self._values())


@_event
class Event(_Frozen):
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


@_event
class WorkflowCreated(Event):
    """A workflow was created (or re-created under the same id) outside any run, so
    ``run_id`` is ``""``: a view can draw its graph now rather than when a run starts.
    ``tasks`` is how many tasks it has; the graph itself is the orchestrator's
    ``task_graph(workflow_id)``."""

    workflow_id: str
    tasks: int


@_event
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


class Later:
    """A field's value given as the function that makes it: an event field read through
    :class:`_OnRead` holds it until the first read, which calls ``make()`` and keeps what it
    returns. A publisher gives it for a value that costs much and that few subscribers read,
    as a run's graph: one :class:`TaskSpec` per task, which for 100,000 tasks is as many
    tuples for the garbage collector to walk, a full collection in the middle of the run
    included, whoever listens."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


_T = TypeVar("_T")


def later(make: Callable[[], _T]) -> _T:
    """``make``'s value for an event field that is made on first read (:class:`Later`); typed
    as that value, which is what every reader of the field gets."""
    return cast(_T, Later(make))


class _OnRead:
    """An event field (a slot) that may hold a :class:`Later`: made on first read, so that
    every reader (attributes, ``==``, ``hash``, ``repr``, pickling, ``dataclasses``) sees
    the value itself."""

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, event: Any, owner: Any = None) -> Any:
        if event is None:
            return self
        value = self.slot.__get__(event, owner)
        if value.__class__ is Later:
            value = value.make()
            self.slot.__set__(event, value)
        return value

    def __set__(self, event: Any, value: Any) -> None:
        self.slot.__set__(event, value)

    def __delete__(self, event: Any) -> None:
        self.slot.__delete__(event)


RunStarted.tasks = _OnRead(RunStarted.__dict__["tasks"])  # type: ignore[assignment]


@_event
class TaskStarted(Event):
    workflow_id: str
    task_id: str
    agent_id: str
    attempt: int


@_event
class TaskCompleted(Event):
    workflow_id: str
    task_id: str
    agent_id: str | None  # None: no agent ran it (a cached result, a mapped task's gathering)
    attempt: int
    started_at: float
    result: Any = field(repr=False, default=None)
    cached: bool = False  # served from the result cache: the action did not run


@_event
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


@_event
class TaskRetrying(Event):
    workflow_id: str
    task_id: str
    attempt: int  # the attempt that will run next
    delay: float
    error: str


@_event
class TaskSkipped(Event):
    workflow_id: str
    task_id: str
    reason: str
    agent_id: str | None = None  # a coordination session's participant whose turn was skipped


@_event
class TaskCancelled(Event):
    workflow_id: str
    task_id: str
    agent_id: str | None
    attempt: int
    started_at: float | None


@_event
class TaskMapped(Event):
    """A mapped task expanded into ``count`` children ``task_id[0]`` ... ``task_id[count-1]``
    (the run's task total grows by ``count``)."""

    workflow_id: str
    task_id: str
    count: int


@_event
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


@_event
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


@_event
class FlowMessageDelivered(Event):
    flow_id: str
    message_id: str
    delivered_to: tuple[str, ...]
    duration: float
    endpoints: tuple[str, ...] | None = None
    transformations: tuple[str, ...] | None = None


@_event
class FlowMessageFailed(Event):
    flow_id: str
    message_id: str
    error: str
    duration: float
    endpoints: tuple[str, ...] | None = None
    transformations: tuple[str, ...] | None = None


@_event
class FlowMessageDeadLettered(Event):
    flow_id: str
    message_id: str
    reason: str


# --- coordination -----------------------------------------------------------------------------


@_event
class SharedStateChanged(Event):
    session_id: str
    participant: str
    version: int
    keys: tuple[str, ...]
    strategy: str | None = None
    changes: dict[str, Any] | None = None  # {key: value written}, "<deleted>" for a deletion


@_event
class SharedStateConflict(Event):
    session_id: str
    conflict_id: str
    participants: tuple[str, ...]
    keys: tuple[str, ...]
    strategy: str
    resolved: bool


@_event
class ResourceAcquired(Event):
    resource_id: str
    participant: str
    waited: float


@_event
class ResourceReleased(Event):
    resource_id: str
    participant: str
    held: float
    outcome: str = "released"  # "released", "expired" (its lease ran out) or "cancelled"


@_event
class ResourceLeaseExpired(Event):
    resource_id: str
    participant: str
    lease: float


@_event
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

    __slots__ = ("_subscribers", "_calling")

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []  # publishers keep it: a live truth test
        # what emit calls: a copy made when the list changes, not per event, so that a
        # subscriber may (un)subscribe while it is being called
        self._calling: tuple[Subscriber, ...] = ()

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
        self._calling = tuple(self._subscribers)

        def unsubscribe() -> None:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass
            self._calling = tuple(self._subscribers)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for callback in self._calling:
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
