"""Sending work to another process: a light, picklable task context and clear errors.

A :class:`~wfkit.agents.model.TaskContext` holds the live task and agent, whose ``action``,
``handler`` and ``executor`` may not pickle (and need not travel). :func:`light_context`
copies what the work may read — the task without its action, the agent without its handler,
executor and learned history, the inputs, attempt and ids — into a new ``TaskContext`` that
pickles cheaply and behaves the same on the other side.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from wfkit.agents.model import AgentProfile, TaskContext, WorkflowTask
from wfkit.agents.params import RunParams
from wfkit.errors import TaskNotSendableError

__all__ = [
    "light_context",
    "light_task",
    "light_agent",
    "unique_work",
    "describe_callable",
    "defining_module",
    "not_sendable",
    "shippable",
]


def light_task(task: WorkflowTask) -> WorkflowTask:
    """A copy of ``task`` without its action (the work travels separately)."""
    if task.action is None:
        return task
    light = copy.copy(task)
    light.action = None
    return light


def light_agent(agent: AgentProfile) -> AgentProfile:
    """A copy of ``agent`` without handler, executor and per-task history."""
    light = copy.copy(agent)
    light.handler = None
    light.executor = None
    light.learned_durations = {}
    light.performance_metrics = dict(agent.performance_metrics or {})
    return light


def light_context(ctx: TaskContext, inputs: Mapping[str, Any] | None = None) -> TaskContext:
    """A picklable copy of ``ctx``; ``inputs`` replaces the dependency results when given.

    Which parameters the work reads over there is not seen here, so all of them count as
    read (a result cache then keys the task on every parameter: never a stale hit).
    """
    params = ctx.params
    if params:
        # iterating a RunParams records every name as read; the copy pickles as plain values
        params = RunParams(dict(params.items()))
    return TaskContext(
        light_task(ctx.task),
        light_agent(ctx.agent),
        dict(ctx.inputs) if inputs is None else inputs,
        ctx.attempt,
        ctx.run_id,
        ctx.workflow_id,
        params,
    )


def shippable(fn: Callable[[Any], Any], task: WorkflowTask) -> Callable[[Any], Any]:
    """What to pickle to send ``fn``: the task itself when ``fn`` is the action of a task
    importable by reference. ``@wf.task`` at the top level of a module binds the module's name
    to the task, so the bare function cannot pickle by reference; the task can, and calling
    it on the other side calls the action."""
    if task.action is fn and task._reference() is not None:
        return task
    return fn


def unique_work(
    work: Iterable[tuple[WorkflowTask, AgentProfile, Callable[[Any], Any]]],
) -> dict[int, tuple[WorkflowTask, AgentProfile, Callable[[Any], Any]]]:
    """The first (task, agent, fn) seen for each distinct function, by identity."""
    seen: dict[int, tuple[WorkflowTask, AgentProfile, Callable[[Any], Any]]] = {}
    for item in work:
        seen.setdefault(id(item[2]), item)
    return seen


def describe_callable(fn: Any) -> str:
    """A short, recognisable name for ``fn`` (``<lambda>``, ``outer.<locals>.inner``...)."""
    if isinstance(fn, functools.partial):
        return f"partial({describe_callable(fn.func)}, ...)"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__qualname__ + " instance"
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else name


def defining_module(fn: Any) -> str | None:
    """The module a callable must be imported from on the other side (unwrapping partials)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.ismethod(fn):
        fn = fn.__func__
    module = getattr(fn, "__module__", None)
    if module is None and not inspect.isroutine(fn):
        module = getattr(type(fn), "__module__", None)
    return module


def role_of(task: WorkflowTask, agent: AgentProfile, fn: Any) -> str:
    if task.action is not None and task.action is fn:
        return "action"
    return f"agent {agent.agent_id!r}'s handler"


def not_sendable(
    task: WorkflowTask,
    agent: AgentProfile,
    fn: Any,
    *,
    where: str,
    executor: str,
    cause: BaseException | str,
    fix: str,
) -> TaskNotSendableError:
    """The error for work that cannot travel: names the task, the function and the fix."""
    why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
    return TaskNotSendableError(
        f"task {task.task_id!r} cannot be sent to {where}: its {role_of(task, agent, fn)} "
        f"{describe_callable(fn)} cannot be pickled ({why}). {fix}",
        task_id=task.task_id,
        executor=executor,
    )


def main_is_interactive() -> bool:
    """True in a notebook or REPL, where ``__main__`` cannot be re-imported by a new process."""
    main = sys.modules.get("__main__")
    return main is None or not getattr(main, "__file__", None)
