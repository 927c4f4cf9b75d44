"""The wfkit exception tree.

Every error wfkit raises on purpose derives from :class:`WfkitError`, carries the data that
describes the problem as attributes, and says in its message what to change::

    WfkitError
    ├── ValidationError (also ValueError)      bad model input, raised before anything runs
    │   ├── DuplicateTaskError                 .task_id
    │   ├── UnknownDependencyError             .task_id, .missing
    │   ├── CycleError                         .cycle
    │   ├── MissingCapabilityError             .missing  {task_id: [capability, ...]}
    │   ├── UnknownPolicyError                 .name, .valid
    │   ├── SpecError                          .path, .line  (the `wfkit run` spec loader)
    │   └── ScheduleError                      bad simulate / plan_schedule input
    ├── UnknownWorkflowError (also KeyError)   .workflow_id
    ├── PolicyError                            a policy returned an agent it was not offered
    ├── TaskError                              .task_id   (stored in task results, not raised)
    │   ├── TaskTimeoutError                   .timeout
    │   └── TaskNotSendableError               the executor cannot ship the task's work
    ├── StoreError                             .path      (not a wfkit store, corrupt, too new)
    ├── ResumeError                            nothing to resume, or the tasks changed
    ├── IntegrationError                       .endpoint_id
    │   ├── EndpointError                      .status (HTTP status, when there is one)
    │   ├── SchemaValidationError              .path, .value
    │   └── NoRouteError
    ├── CoordinationError
    │   ├── DeadlockError                      .cycle
    │   └── ResourceTimeoutError               .resource_id, .participant, .timeout
    └── MissingDependencyError (ImportError)   .package, .extra  (an optional extra is absent)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "WfkitError",
    "ValidationError",
    "DuplicateTaskError",
    "UnknownDependencyError",
    "CycleError",
    "MissingCapabilityError",
    "UnknownPolicyError",
    "SpecError",
    "ScheduleError",
    "UnknownWorkflowError",
    "PolicyError",
    "TaskError",
    "TaskTimeoutError",
    "TaskNotSendableError",
    "StoreError",
    "ResumeError",
    "IntegrationError",
    "EndpointError",
    "SchemaValidationError",
    "NoRouteError",
    "CoordinationError",
    "DeadlockError",
    "ResourceTimeoutError",
    "MissingDependencyError",
]


class WfkitError(Exception):
    """Base of every error wfkit raises on purpose."""


class ValidationError(WfkitError, ValueError):
    """Input that cannot describe a valid workflow; raised before any work starts."""


class DuplicateTaskError(ValidationError):
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"task id {task_id!r} is used more than once: give every task a unique task_id"
        )


class UnknownDependencyError(ValidationError):
    def __init__(self, task_id: str, missing: Iterable[str]) -> None:
        self.task_id = task_id
        self.missing = sorted(missing)
        names = ", ".join(repr(m) for m in self.missing)
        super().__init__(
            f"task {task_id!r} depends on unknown task(s) {names}: add them to the workflow "
            f"or remove them from its dependencies"
        )


class CycleError(ValidationError):
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]]) if self.cycle else "?"
        super().__init__(
            f"the dependencies form a cycle: {path}; remove one of these dependencies"
        )


class MissingCapabilityError(ValidationError):
    def __init__(self, missing: Mapping[str, Iterable[str]]) -> None:
        self.missing = {task: sorted(caps) for task, caps in missing.items()}
        lines = "; ".join(
            f"{task!r} needs {', '.join(caps)}" for task, caps in sorted(self.missing.items())
        )
        super().__init__(
            f"no registered, available agent can run {len(self.missing)} task(s): {lines}. "
            f"Register an agent with these capabilities (or mark one available)"
        )


class UnknownPolicyError(ValidationError):
    def __init__(self, name: object, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = sorted(valid)
        super().__init__(
            f"unknown policy {name!r}: use one of {', '.join(map(repr, self.valid))} "
            f"or a callable policy(task, candidates) -> AgentProfile"
        )


class SpecError(ValidationError):
    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = path or "<spec>"
        if line is not None:
            where = f"{where}, line {line}"
        super().__init__(f"{where}: {message}")


class ScheduleError(ValidationError):
    """Bad input to simulate / plan_schedule (durations, costs, method)."""


class UnknownWorkflowError(WfkitError, KeyError):
    def __init__(self, workflow_id: str, known: Iterable[str] = ()) -> None:
        self.workflow_id = workflow_id
        known = sorted(known)
        hint = f" (known: {', '.join(map(repr, known))})" if known else ""
        super().__init__(
            f"no workflow {workflow_id!r}{hint}: call create_workflow({workflow_id!r}, tasks) first"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PolicyError(WfkitError):
    """A scheduling policy misbehaved (for example returned an agent it was not offered)."""


class TaskError(WfkitError):
    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message)


class TaskTimeoutError(TaskError, TimeoutError):
    def __init__(self, task_id: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            f"task {task_id!r} did not finish within its timeout of {timeout:g} s; "
            f"raise WorkflowTask(timeout=...) or make the work faster",
            task_id=task_id,
        )


class TaskNotSendableError(TaskError):
    """The executor cannot ship a task's work (for example an unpicklable closure)."""


class StoreError(WfkitError):
    def __init__(self, message: str, *, path: Any = None) -> None:
        self.path = path
        super().__init__(message)


class ResumeError(WfkitError):
    """A run cannot be resumed (no store, no such run, or the workflow's tasks changed)."""


class IntegrationError(WfkitError):
    def __init__(self, message: str, *, endpoint_id: str | None = None) -> None:
        self.endpoint_id = endpoint_id
        super().__init__(message)


class EndpointError(IntegrationError):
    def __init__(
        self,
        message: str,
        *,
        endpoint_id: str | None = None,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(message, endpoint_id=endpoint_id)


class SchemaValidationError(IntegrationError):
    def __init__(self, message: str, *, path: str = "", value: Any = None, **kw: Any) -> None:
        self.path = path
        self.value = value
        super().__init__(message, **kw)


class NoRouteError(IntegrationError):
    """No routing rule matched and the flow has no default route."""


class CoordinationError(WfkitError):
    """Misuse of sessions, shared state or shared resources."""


class DeadlockError(CoordinationError):
    def __init__(self, cycle: Sequence[str], message: str | None = None) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]]) if self.cycle else "?"
        super().__init__(
            message
            or f"deadlock: this request would close the wait-for cycle {path}; "
            f"release a held resource first or acquire resources in one global order"
        )


class ResourceTimeoutError(CoordinationError, TimeoutError):
    def __init__(self, resource_id: str, participant: str, timeout: float) -> None:
        self.resource_id = resource_id
        self.participant = participant
        self.timeout = timeout
        super().__init__(
            f"{participant!r} waited {timeout:g} s for resource {resource_id!r} without "
            f"getting it; it has left the queue (raise timeout= or shorten the holders' work)"
        )


class MissingDependencyError(WfkitError, ImportError):
    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        target = f"'wfkit[{extra}]'" if extra else package
        why = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is needed{why}: pip install {target}")
