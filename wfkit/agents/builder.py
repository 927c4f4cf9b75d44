"""``Workflow``: build a workflow interactively, one decorated function per task.

Re-running a notebook cell is always safe: ``@wf.task`` on a function whose task id the
workflow already has replaces that task's definition (and says so once, at INFO).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, overload

from wfkit.agents.model import WorkflowTask
from wfkit.agents.params import check_declared
from wfkit.errors import DuplicateTaskError, ValidationError
from wfkit.graph import check_dependencies, critical_path, to_networkx, validate_tasks

if TYPE_CHECKING:
    import networkx as nx

    from wfkit.conditions import Condition
    from wfkit.plots import Figure, ResultsLike

__all__ = ["Workflow", "TaskOptions", "TaskRef"]

log = logging.getLogger("wfkit.workflow")

# What ``after=`` and ``map=`` accept: a task id, a task, or the function a task was made from.
TaskRef = str | WorkflowTask | Callable[..., Any]


class TaskOptions(TypedDict, total=False):
    """The keyword options of ``@wf.task(...)`` (see :meth:`Workflow.task`)."""

    requires: Iterable[str | Enum] | None
    after: TaskRef | Iterable[TaskRef] | None
    priority: float
    estimate: float
    task_id: str | None
    description: str | None
    retries: int
    timeout: float | None
    group: str | None
    cache: bool | None
    cache_key: Callable[..., Any] | None
    cache_version: Any  # any value with a stable repr
    cache_expires: float | None
    map: TaskRef | None
    when: Condition | None
    trigger: str


class Workflow:
    """A named, growing list of tasks.

    ``@wf.task(requires=..., after=..., priority=..., estimate=...)`` turns ``fn(ctx)`` into a
    :class:`WorkflowTask` whose ``action`` is ``fn`` and whose id is ``fn.__name__`` (or
    ``task_id``). The decorator returns the task, which ``after=`` accepts as well as ids and
    the original functions, and which stays callable as ``fn`` (``load(ctx)``).

    ``cache=True`` makes caching the default for its tasks (``@wf.task(cache=False)`` opts one
    out). ``version`` counts the changes to the definition; the orchestrator compares it to
    notice a workflow edited since ``create_workflow``.

    ``params`` declares the run parameters and their defaults; a run overrides them with
    ``execute_workflow(..., params={...})`` and tasks read them as ``ctx.params``.
    """

    def __init__(
        self, workflow_id: str, *, params: dict[str, Any] | None = None, cache: bool = False
    ) -> None:
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValidationError(f"Workflow id must be a non-empty string, got {workflow_id!r}")
        if not isinstance(cache, bool):
            raise ValidationError(f"Workflow(cache=...) must be True or False, got {cache!r}")
        self.workflow_id = workflow_id
        self.params: dict[str, Any] = check_declared(params, f"Workflow({workflow_id!r})")
        self.cache = cache
        self.version = 0
        self._tasks: dict[str, WorkflowTask] = {}
        self._by_function: dict[Any, str] = {}

    @property
    def tasks(self) -> list[WorkflowTask]:
        return list(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[WorkflowTask]:
        return iter(self.tasks)

    def __getitem__(self, task_id: str) -> WorkflowTask:
        return self._tasks[task_id]

    def _resolve(self, ref: TaskRef, owner: str, what: str = "after=") -> str:
        if isinstance(ref, WorkflowTask):
            return ref.task_id
        if isinstance(ref, str):
            return ref
        if callable(ref) and ref in self._by_function:
            return self._by_function[ref]
        raise ValidationError(
            f"task {owner!r}: {what} takes task ids, tasks or functions decorated with "
            f"@{self.workflow_id}.task, got {ref!r}"
        )

    def add(self, task: WorkflowTask, *, replace: bool = False) -> WorkflowTask:
        """Add a task built by hand. Its dependencies must already be in the workflow.

        A task id the workflow already has is an error unless ``replace=True``, which puts
        ``task`` in the old one's place (its dependents keep depending on the id).
        """
        if not isinstance(task, WorkflowTask):
            raise ValidationError(f"add() takes a WorkflowTask, got {type(task).__name__}")
        tid = task.task_id
        old = self._tasks.get(tid)
        if old is not None and not replace:
            raise DuplicateTaskError(tid)
        check_dependencies(tid, task.dependencies, self._tasks)  # a self-loop: a cycle below
        self._tasks[tid] = task
        if old is not None:
            try:  # new dependencies of a task others depend on may close a cycle
                validate_tasks(self._tasks.values())
            except ValidationError:
                self._tasks[tid] = old
                raise
        self.version += 1
        return task

    @overload
    def task(self, fn: Callable[..., Any], /, **options: Unpack[TaskOptions]) -> WorkflowTask: ...

    @overload
    def task(
        self, fn: None = None, /, **options: Unpack[TaskOptions]
    ) -> Callable[[Callable[..., Any]], WorkflowTask]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        requires: Iterable[str | Enum] | None = None,
        after: TaskRef | Iterable[TaskRef] | None = None,
        priority: float = 0,
        estimate: float = 1.0,
        task_id: str | None = None,
        description: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        group: str | None = None,
        cache: bool | None = None,
        cache_key: Callable[..., Any] | None = None,
        cache_version: Any = None,
        cache_expires: float | None = None,
        map: TaskRef | None = None,
        when: Condition | None = None,
        trigger: str = "all_success",
    ) -> WorkflowTask | Callable[[Callable[..., Any]], WorkflowTask]:
        """Decorator: ``@wf.task`` or ``@wf.task(requires=["analysis"], after=[load])``.

        Decorating again a function whose task id the workflow has (re-running its cell)
        replaces that task: action, dependencies, needs and options.

        ``map=upstream`` runs the function once per item of ``upstream``'s result (children
        ``name[0]``, ``name[1]``, ... that see ``ctx.item`` and ``ctx.index``; dependents get
        the children's results as a list, in item order). ``when=`` and ``trigger=`` decide
        whether it runs once its dependencies have ended (see :class:`WorkflowTask`).
        """

        def decorate(func: Callable[..., Any]) -> WorkflowTask:
            if not callable(func):
                raise ValidationError(f"@task decorates a function, got {func!r}")
            tid = task_id or getattr(func, "__name__", None)
            if not tid:
                raise ValidationError("this callable has no __name__: pass task_id=")
            refs = [] if after is None else after
            if isinstance(refs, str | WorkflowTask) or callable(refs):
                refs = [refs]
            deps = [self._resolve(r, tid) for r in refs]
            source = None if map is None else self._resolve(map, tid, "map=")
            doc = (func.__doc__ or "").strip().splitlines()
            task = WorkflowTask(
                tid,
                description if description is not None else (doc[0] if doc else tid),
                [] if requires is None else requires,
                priority,
                estimate,
                deps,
                action=func,
                retries=retries,
                timeout=timeout,
                group=group,
                cache=cache,
                cache_key=cache_key,
                cache_version=cache_version,
                cache_expires=cache_expires,
                map=source,
                when=when,
                trigger=trigger,
            )
            replacing = tid in self._tasks
            self.add(task, replace=True)
            if replacing:
                log.info("workflow %r: task %r redefined", self.workflow_id, tid)
            self._by_function[func] = tid
            return task

        if fn is not None:
            return decorate(fn)
        return decorate

    # -- analysis ----------------------------------------------------------------------------

    def validate(self) -> Workflow:
        validate_tasks(self._tasks.values())
        return self

    def to_networkx(self) -> nx.DiGraph:
        return to_networkx(self._tasks)

    def critical_path(self) -> list[str]:
        """The ids of the longest chain of dependent tasks by estimated duration."""
        return critical_path(self._tasks)[0]

    def figure(self, results: ResultsLike | None = None, **options: Any) -> Figure:
        """The DAG as a Plotly figure (layered, critical path highlighted; a large workflow as
        groups of tasks): ``options`` are :func:`wfkit.plots.dag_figure`'s (``group``,
        ``max_nodes``, ``expand``, ``title``, ``labels``)."""
        from wfkit.plots import dag_figure

        return dag_figure(self, results=results, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """A bare ``wf`` in a notebook cell: its DAG figure, a task table, this repr."""
        from wfkit.jupyter.reprs import workflow_bundle

        return workflow_bundle(self, include, exclude)

    def __repr__(self) -> str:
        edges = sum(len(t.dependencies) for t in self._tasks.values())
        params = f", params {self.params!r}" if self.params else ""
        return (
            f"<Workflow {self.workflow_id!r}: {len(self._tasks)} tasks, {edges} dependencies"
            f"{params}>"
        )
