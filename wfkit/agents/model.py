"""The model of collective agent workflows: capabilities, agents, tasks and the task context.

The first fields of :class:`AgentProfile` and :class:`WorkflowTask` keep the order of the
original pattern document, so code written against it constructs them unchanged. Each object
checks its own fields in ``__post_init__``; checks that need the whole workflow (duplicates,
unknown dependencies, cycles) live in :mod:`wfkit.graph`.
"""

from __future__ import annotations

import copy
import importlib
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from wfkit.agents.params import NO_PARAMS
from wfkit.errors import ValidationError

if TYPE_CHECKING:
    from wfkit.agents.builder import Workflow
    from wfkit.agents.policies import PolicyLike
    from wfkit.agents.results import RunResult
    from wfkit.executors.base import Executor

__all__ = [
    "AgentCapability",
    "AgentProfile",
    "WorkflowTask",
    "TaskContext",
    "capability_set",
    "TRIGGER_RULES",
]

# When a task may run, given how its dependencies ended (Airflow's trigger rules):
# all_success   every dependency completed (the default);
# all_done      every dependency ended, however;
# one_success   one dependency completed (it runs then, without waiting for the others);
# none_failed   no dependency failed (completed or skipped), all ended;
# none_failed_min_one_success   no dependency failed and at least one completed.
TRIGGER_RULES = (
    "all_success", "all_done", "one_success", "none_failed", "none_failed_min_one_success",
)


class AgentCapability(StrEnum):
    """The five standard capabilities. Members compare equal to their plain-string values."""

    ANALYSIS = "analysis"
    GENERATION = "generation"
    VALIDATION = "validation"
    OPTIMIZATION = "optimization"
    COORDINATION = "coordination"


def _cap(value: object, owner: str) -> str:
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"{owner}: capabilities must be non-empty strings or AgentCapability members, "
            f"got {value!r}"
        )
    return value


# Capability sets seen so far, by the list or tuple they were given as: a workflow's tasks
# share a handful of sets, so each task holds one of a few frozensets instead of its own.
_CAPSETS: dict[tuple[object, ...], frozenset[str]] = {}
_CAPSETS_LIMIT = 4096


def capability_set(values: Iterable[object] | None, owner: str) -> frozenset[str]:
    """Normalise capabilities to a frozenset of plain strings, rejecting anything else."""
    if values is None:
        return frozenset()
    if isinstance(values, str | Enum):
        values = [values]
    key = tuple(values) if type(values) is list or type(values) is tuple else None
    if key is not None:
        try:
            known = _CAPSETS.get(key)
        except TypeError:  # something unhashable: it fails below
            key = None
        else:
            if known is not None:
                return known
    try:
        caps = frozenset(_cap(v, owner) for v in values)
    except TypeError:
        raise ValidationError(
            f"{owner}: capabilities must be a list of strings, got {type(values).__name__}"
        ) from None
    if key is not None:
        if len(_CAPSETS) >= _CAPSETS_LIMIT:
            _CAPSETS.clear()
        _CAPSETS[key] = caps
    return caps


def dependency_ids(values: object, owner: str) -> list[str]:
    """A task's dependencies as a list of task ids, in order, a repeated id counted once."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(f"{owner}: dependencies must be a list of task ids, got {values!r}")
    deps = list(values)
    for d in deps:
        if not isinstance(d, str):
            raise ValidationError(f"{owner}: dependencies must be task ids (strings), got {d!r}")
    return list(dict.fromkeys(deps))


def _number(value: object, name: str, owner: str, *, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(f"{owner}: {name} must be a number, got {value!r}")
    if value < minimum:
        raise ValidationError(f"{owner}: {name} must be >= {minimum:g}, got {value!r}")


_Read = TypeVar("_Read")
_Given = TypeVar("_Given")


class _Normalised(Generic[_Read, _Given]):
    """For type checkers only: an attribute given as ``_Given`` that reads as ``_Read``: a
    dataclass field that ``__post_init__`` normalises (``dependencies=None`` reads as a list),
    or a class default that instances override.

    At run time the field is a plain attribute; this class is never instantiated there.
    """

    def __get__(self, obj: object, owner: object = None) -> _Read:
        raise NotImplementedError

    def __set__(self, obj: object, value: _Given) -> None:
        raise NotImplementedError


_DEFAULT_METRICS = {
    "tasks_completed": 0,
    "tasks_failed": 0,
    "success_rate": 1.0,
    "avg_duration": 0.0,
    "total_duration": 0.0,
    "speed_ratio": 1.0,  # observed / estimated duration, averaged; < 1 means faster than planned
}


@dataclass(eq=False)
class AgentProfile:
    """A worker with capabilities and a capacity (how many tasks it runs at once).

    ``handler(ctx)`` (sync or async) does the work of tasks that have no ``action`` of their
    own. ``performance_metrics`` is updated from observed runs; the ``fastest`` and ``heft``
    policies read it. Agents compare by identity: two profiles are two agents.
    ``current_load`` shows how many tasks it runs now, over every run of its orchestrator: it
    mirrors the orchestrator's :class:`~wfkit.agents.pool.AgentPool`, which does the
    accounting (writing it changes nothing).
    """

    agent_id: str
    name: str
    capabilities: Iterable[str | Enum]
    if TYPE_CHECKING:
        performance_metrics: _Normalised[dict[str, Any], Mapping[str, Any] | None] = (
            _Normalised()
        )
    else:
        performance_metrics: dict[str, Any] | None = None
    availability: bool = True
    current_load: int = 0
    _: KW_ONLY
    capacity: int = 1
    handler: Callable[..., Any] | None = field(default=None, repr=False)
    executor: Executor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        owner = f"AgentProfile({self.agent_id!r})"
        if not isinstance(self.agent_id, str) or not self.agent_id:
            raise ValidationError(
                f"AgentProfile: agent_id must be a non-empty string, got {self.agent_id!r}"
            )
        if not isinstance(self.name, str):
            raise ValidationError(f"{owner}: name must be a string, got {self.name!r}")
        self._capset = capability_set(self.capabilities, owner)
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise ValidationError(f"{owner}: capacity must be an int >= 1, got {self.capacity!r}")
        if self.capacity < 1:
            raise ValidationError(
                f"{owner}: capacity must be at least 1 (tasks it may run at once), "
                f"got {self.capacity}"
            )
        if self.handler is not None and not callable(self.handler):
            raise ValidationError(f"{owner}: handler must be callable, got {self.handler!r}")
        if not isinstance(self.availability, bool):
            raise ValidationError(
                f"{owner}: availability must be True or False, got {self.availability!r}"
            )
        metrics = dict(_DEFAULT_METRICS)
        if self.performance_metrics is not None:
            if not isinstance(self.performance_metrics, Mapping):
                raise ValidationError(
                    f"{owner}: performance_metrics must be a dict, "
                    f"got {type(self.performance_metrics).__name__}"
                )
            metrics.update(self.performance_metrics)
        self.performance_metrics = metrics
        # Learned mean duration per task id, for the "fastest" policy and the optimiser.
        self.learned_durations: dict[str, float] = {}

    @property
    def capability_set(self) -> frozenset[str]:
        """The capabilities as plain strings (enum members normalised)."""
        return self._capset

    def can_run(self, required: frozenset[str]) -> bool:
        return required <= self._capset

    def expected_duration(self, task: WorkflowTask) -> float:
        """What this agent is expected to take for ``task``, from what it has been seen doing."""
        learned = self.learned_durations.get(task.task_id)
        if learned is not None:
            return learned
        return task.estimated_duration * self.performance_metrics["speed_ratio"]

    def record_outcome(self, task: WorkflowTask, duration: float, success: bool) -> None:
        """Fold one observed attempt into ``performance_metrics`` (running means)."""
        m = self.performance_metrics
        if success:
            n = m["tasks_completed"] = m["tasks_completed"] + 1
            total = m["total_duration"] = m["total_duration"] + duration
            m["avg_duration"] = total / n
            estimate = task.estimated_duration
            if estimate > 0:
                ratio = m["speed_ratio"]
                m["speed_ratio"] = ratio + (duration / estimate - ratio) / n
            learned = self.learned_durations
            prev = learned.get(task.task_id)
            learned[task.task_id] = duration if prev is None else (prev + duration) / 2
            m["success_rate"] = n / (n + m["tasks_failed"])
        else:
            failed = m["tasks_failed"] = m["tasks_failed"] + 1
            m["success_rate"] = m["tasks_completed"] / (m["tasks_completed"] + failed)


@dataclass(eq=False)
class WorkflowTask:
    """One unit of work: what it needs (capabilities), what it waits for (dependencies).

    ``action(ctx)``, when given, does the work instead of the agent's handler. ``retries`` is
    the number of extra attempts after a failure; ``timeout`` (seconds) bounds each attempt.
    ``group`` names the kind of task (views draw large graphs as groups).

    ``cache`` (None: the workflow's default) keeps the result under a key made of what it
    depends on (:mod:`wfkit.cache`); ``cache_key(ctx)`` replaces that key, ``cache_version``
    forces a new one, ``cache_expires`` (seconds) bounds how long a result is reused.

    A task is usable as its function: ``task(ctx)`` calls the action (``task.fn``), and a task
    bound to a module-level name (what ``@wf.task`` at the top level of a module makes) pickles
    by reference, so worker processes import it instead of receiving a copy.

    Dynamic workflows: ``map`` (the id of a dependency) runs the task once per item of that
    dependency's result, as child tasks ``task_id[i]`` (a map over a mapped task maps element
    by element); ``when`` (a :mod:`wfkit.conditions` condition on ``{"inputs", "params"}``, or
    a callable ``when(ctx) -> bool``) is checked once the dependencies have ended and skips the
    task when false; ``trigger`` (one of :data:`TRIGGER_RULES`) says which endings of the
    dependencies let it run. A child task has ``parent_task_id`` and ``map_index`` set.
    """

    # Set on the children of a mapped task only (class defaults keep other tasks light).
    if TYPE_CHECKING:
        parent_task_id = _Normalised[str | None, str | None]()
        map_index = _Normalised[int | None, int | None]()
    else:
        parent_task_id = None
        map_index = None

    task_id: str
    description: str
    required_capabilities: Iterable[str | Enum]
    priority: int | float
    estimated_duration: float
    if TYPE_CHECKING:
        dependencies: _Normalised[list[str], Iterable[str] | None] = _Normalised()
    else:
        dependencies: list[str] | None = None
    status: str = "pending"
    _: KW_ONLY
    action: Callable[..., Any] | None = field(default=None, repr=False)
    retries: int = 0
    timeout: float | None = None
    group: str | None = None
    cache: bool | None = None
    cache_key: Callable[..., Any] | None = field(default=None, repr=False)
    cache_version: Any = None
    cache_expires: float | None = None
    map: str | None = None
    when: Any = field(default=None, repr=False)
    trigger: str = "all_success"

    def __post_init__(self) -> None:
        # The common task (plain values, no options) is checked and normalised here without
        # building a message; anything else is checked in full by _check, which says what is
        # wrong. Workflows of 100,000 tasks are built in a loop: this is most of that loop.
        deps = self.dependencies
        caps = self.required_capabilities
        tid = self.task_id
        priority = self.priority
        estimate = self.estimated_duration
        try:
            capset = _CAPSETS.get(tuple(caps)) if type(caps) is list else None
        except TypeError:  # something unhashable: _check says what
            capset = None
        if (
            capset is not None
            and type(tid) is str and tid != ""
            and type(self.description) is str
            and (type(priority) is int or type(priority) is float and priority == priority)
            and (type(estimate) is float or type(estimate) is int) and estimate >= 0
            and type(self.retries) is int and self.retries >= 0
            and self.trigger in TRIGGER_RULES
            and self.timeout is None and self.group is None and self.cache is None
            and self.cache_key is None and self.cache_expires is None and self.map is None
            and self.when is None
            and (self.action is None or callable(self.action))
        ):
            # Dependencies: a list of distinct ids, the task's own copy. Most tasks have
            # none or one, which need no check for repeats.
            own: list[str] | None = None
            if deps is None:
                own = []
            elif type(deps) is list:
                if len(deps) < 2:
                    if not deps or type(deps[0]) is str:
                        own = deps.copy()
                else:
                    for d in deps:
                        if type(d) is not str:
                            break
                    else:  # without repeats (the usual case) a copy: half of what dedup costs
                        own = deps.copy() if len(set(deps)) == len(deps) else list(
                            dict.fromkeys(deps)
                        )
            if own is not None:
                self._capset = capset
                self.dependencies = own
                return
        self._check()

    def _check(self) -> None:
        """Check and normalise every field; a :class:`ValidationError` names what is wrong."""
        if not isinstance(self.task_id, str) or not self.task_id:
            raise ValidationError(
                f"WorkflowTask: task_id must be a non-empty string, got {self.task_id!r}"
            )
        owner = f"task {self.task_id!r}"
        if not isinstance(self.description, str):
            raise ValidationError(f"{owner}: description must be a string")
        self._capset = capability_set(self.required_capabilities, owner)
        _number(self.priority, "priority", owner, minimum=-math.inf)
        _number(self.estimated_duration, "estimated_duration", owner)
        self.dependencies = dependency_ids(self.dependencies, owner)
        if self.action is not None and not callable(self.action):
            raise ValidationError(f"{owner}: action must be callable, got {self.action!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValidationError(f"{owner}: retries must be an int >= 0, got {self.retries!r}")
        if self.timeout is not None:
            _number(self.timeout, "timeout", owner)
            if self.timeout <= 0:
                raise ValidationError(f"{owner}: timeout must be > 0 seconds or None")
        if self.group is not None and (not isinstance(self.group, str) or not self.group):
            raise ValidationError(
                f"{owner}: group must be a non-empty string or None, got {self.group!r}"
            )
        if self.cache is not None and not isinstance(self.cache, bool):
            raise ValidationError(f"{owner}: cache must be True, False or None, got {self.cache!r}")
        if self.cache_key is not None and not callable(self.cache_key):
            raise ValidationError(
                f"{owner}: cache_key must be a callable cache_key(ctx) -> str, "
                f"got {self.cache_key!r}"
            )
        if self.cache_expires is not None:
            _number(self.cache_expires, "cache_expires", owner)
            if self.cache_expires <= 0:
                raise ValidationError(f"{owner}: cache_expires must be > 0 seconds or None")
        if self.map is not None:
            if not isinstance(self.map, str) or not self.map:
                raise ValidationError(
                    f"{owner}: map must be the id of the task whose result it maps over, "
                    f"got {self.map!r}"
                )
            if self.map == self.task_id:
                raise ValidationError(f"{owner}: a task cannot map over its own result")
            if self.map not in self.dependencies:  # the mapped result is an input
                self.dependencies.insert(0, self.map)
        if self.when is not None:
            from wfkit.conditions import validate_condition
            from wfkit.errors import ConditionError

            try:
                validate_condition(self.when)
            except ConditionError as exc:
                raise ValidationError(f"{owner}: when= {exc}") from None
        if self.trigger not in TRIGGER_RULES:
            raise ValidationError(
                f"{owner}: trigger must be one of {', '.join(map(repr, TRIGGER_RULES))}, "
                f"got {self.trigger!r}"
            )

    @property
    def capability_set(self) -> frozenset[str]:
        return self._capset

    # -- a task is usable as its function ------------------------------------------------------

    @property
    def fn(self) -> Callable[..., Any]:
        """The action: ``task.fn(ctx)`` is what the engine calls."""
        if self.action is None:
            raise ValidationError(
                f"task {self.task_id!r} has no action (its agent's handler does the work)"
            )
        return self.action

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the action, so a decorated task can be tried alone: ``load(ctx)``."""
        return self.fn(*args, **kwargs)

    def _reference(self) -> tuple[str, str] | None:
        """(module, qualified name) under which this very task is importable, or None."""
        fn = self.action
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", None)
        if not module or not qualname or "<" in qualname:
            return None
        obj: Any = sys.modules.get(module)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        return (module, qualname) if obj is self else None

    def __reduce_ex__(self, protocol: Any) -> Any:
        ref = self._reference()
        if ref is not None:
            return _import_task, ref
        return object.__reduce_ex__(self, protocol)

    def __copy__(self) -> WorkflowTask:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo: dict[int, Any]) -> WorkflowTask:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = value if key in _SHARED_ON_COPY else copy.deepcopy(value, memo)
        return clone


_SHARED_ON_COPY = frozenset({"action", "cache_key"})  # functions: a deep copy shares them


def _import_task(module: str, qualname: str) -> WorkflowTask:
    """Unpickle a task by reference: import its module and look it up (see ``__reduce_ex__``)."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(slots=True)
class TaskContext:
    """What a handler or action receives: the task, the agent, dependency results, and the
    run's parameters (``params``, read-only)."""

    task: WorkflowTask
    agent: AgentProfile
    inputs: Mapping[str, Any]
    attempt: int
    run_id: str
    workflow_id: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: NO_PARAMS)
    _run: Any = field(default=None, repr=False, compare=False)  # the engine's run, if any
    item: Any = None  # a mapped child's item (the parent's input at map_index)
    index: int | None = None  # a mapped child's map_index

    @property
    def task_id(self) -> str:
        return self.task.task_id

    async def run_workflow(
        self,
        workflow: Workflow | str,
        *,
        params: Mapping[str, Any] | None = None,
        fail_fast: bool = False,
        policy: PolicyLike | None = None,
    ) -> RunResult:
        """Run another workflow (a :class:`wfkit.Workflow` or an id) on this task's
        orchestrator and return its :class:`~wfkit.RunResult`.

        While the child runs, this task's agent slot is free for other work. A child that
        does not complete raises :class:`~wfkit.WorkflowFailedError` here (catch it to go
        on); a workflow that would end up running itself raises
        :class:`~wfkit.SubWorkflowCycleError` at once.
        """
        from wfkit.agents.subruns import CURRENT
        from wfkit.errors import WfkitError

        owner = getattr(self._run, "owner", None)
        if owner is None:
            raise WfkitError(
                f"task {self.task.task_id!r}: ctx.run_workflow() needs the orchestrator that "
                f"runs this task; it works in async tasks the engine runs itself, not in "
                f"work sent to another process or a Dask worker"
            )
        token = CURRENT.set(self)
        try:
            result = await owner.execute_workflow(
                workflow, params=params, fail_fast=fail_fast, policy=policy
            )
        finally:
            CURRENT.reset(token)
        return result.raise_for_status()
