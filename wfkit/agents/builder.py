"""``Workflow``: build a workflow interactively, one decorated function per task."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wfkit.agents.model import WorkflowTask
from wfkit.agents.params import check_declared
from wfkit.errors import DuplicateTaskError, UnknownDependencyError, ValidationError
from wfkit.graph import critical_path, to_networkx, validate_tasks

__all__ = ["Workflow"]


class Workflow:
    """A named, growing list of tasks.

    ``@wf.task(requires=..., after=..., priority=..., estimate=...)`` turns ``fn(ctx)`` into a
    :class:`WorkflowTask` whose ``action`` is ``fn`` and whose id is ``fn.__name__`` (or
    ``task_id``). The decorator returns the task, which ``after=`` accepts as well as ids and
    the original functions.

    ``params`` declares the run parameters and their defaults; a run overrides them with
    ``execute_workflow(..., params={...})`` and tasks read them as ``ctx.params``.
    """

    def __init__(self, workflow_id: str, *, params: dict[str, Any] | None = None) -> None:
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValidationError(f"Workflow id must be a non-empty string, got {workflow_id!r}")
        self.workflow_id = workflow_id
        self.params: dict[str, Any] = check_declared(params, f"Workflow({workflow_id!r})")
        self._tasks: dict[str, WorkflowTask] = {}
        self._by_function: dict[Any, str] = {}

    @property
    def tasks(self) -> list[WorkflowTask]:
        return list(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self):
        return iter(self.tasks)

    def __getitem__(self, task_id: str) -> WorkflowTask:
        return self._tasks[task_id]

    def _resolve(self, ref: Any, owner: str) -> str:
        if isinstance(ref, WorkflowTask):
            return ref.task_id
        if isinstance(ref, str):
            return ref
        if callable(ref) and ref in self._by_function:
            return self._by_function[ref]
        raise ValidationError(
            f"task {owner!r}: after= takes task ids, tasks or functions decorated with "
            f"@{self.workflow_id}.task, got {ref!r}"
        )

    def add(self, task: WorkflowTask) -> WorkflowTask:
        """Add a task built by hand. Its dependencies must already be in the workflow."""
        if not isinstance(task, WorkflowTask):
            raise ValidationError(f"add() takes a WorkflowTask, got {type(task).__name__}")
        if task.task_id in self._tasks:
            raise DuplicateTaskError(task.task_id)
        missing = [d for d in task.dependencies if d not in self._tasks]
        if missing:
            raise UnknownDependencyError(task.task_id, missing)
        self._tasks[task.task_id] = task
        return task

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        requires: Iterable[Any] | str | None = None,
        after: Iterable[Any] | Any = None,
        priority: float = 0,
        estimate: float = 1.0,
        task_id: str | None = None,
        description: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        group: str | None = None,
    ) -> Any:
        """Decorator: ``@wf.task`` or ``@wf.task(requires=["analysis"], after=[load])``."""

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
            )
            self.add(task)
            self._by_function[func] = tid
            return task

        if fn is not None:
            return decorate(fn)
        return decorate

    # -- analysis ----------------------------------------------------------------------------

    def validate(self) -> Workflow:
        validate_tasks(self._tasks.values())
        return self

    def to_networkx(self) -> Any:
        return to_networkx(self._tasks)

    def critical_path(self) -> list[str]:
        """The ids of the longest chain of dependent tasks by estimated duration."""
        return critical_path(self._tasks)[0]

    def figure(self, results: Any = None) -> Any:
        """The DAG as a Plotly figure (layered, critical path highlighted)."""
        from wfkit.plots import dag_figure

        return dag_figure(self, results=results)

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
