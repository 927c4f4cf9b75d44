"""The wfkit exception tree.

Every error wfkit raises on purpose derives from :class:`WfkitError`, carries the data that
describes the problem as attributes, and says in its message what to change::

    WfkitError
    ├── ValidationError (also ValueError)      bad model input, raised before anything runs
    │   ├── DuplicateTaskError                 .task_id
    │   ├── UnknownDependencyError             .task_id, .missing
    │   ├── CycleError                         .cycle
    │   │   └── SubWorkflowCycleError          .cycle (workflow ids), .task_id
    │   ├── MissingCapabilityError             .missing  {task_id: [capability, ...]}
    │   ├── UnknownPolicyError                 .name, .valid
    │   ├── SpecError                          .path, .line  (the `wfkit run` spec loader)
    │   │   └── WfFormatError                  .path, .task_id, .field  (a bad WfFormat trace)
    │   ├── ScheduleError                      bad simulate / plan_schedule input
    │   ├── ConditionError                     .path, .condition  (wfkit.conditions)
    │   ├── FrameError                         .missing, .columns  (a frame a figure cannot use)
    │   ├── WorkflowChangedError               .workflow_id, .added, .removed, .changed
    │   └── IntegrationConfigError (also IntegrationError)  .endpoint_id, .flow_id, .field
    │       └── UnknownEndpointError           .flow_id, .missing
    │   └── UnknownParameterError (also KeyError)  .workflow_id, .name, .known
    │   └── ArgumentError (also TypeError)     an argument of the wrong kind (not callable, ...)
    ├── UnknownWorkflowError (also KeyError)   .workflow_id
    ├── PolicyError                            a policy returned an agent it was not offered
    ├── TaskError                              .task_id   (stored in task results, not raised)
    │   ├── TaskTimeoutError                   .timeout
    │   ├── TaskNotSendableError               .executor  the executor cannot ship the work
    │   └── WorkerLostError                    .worker, .retries  (retried by the engine)
    ├── WorkflowFailedError                    .workflow_id, .run_id, .status, .failures, .result
    │                                          (RunResult.raise_for_status)
    ├── StoreError                             .path      (not a wfkit store, corrupt, too new)
    ├── ReportError                            .path      (a report cannot be written there)
    ├── ResumeError                            nothing to resume, or the tasks changed
    ├── IntegrationError                       .endpoint_id
    │   ├── EndpointError                      .status (HTTP status, when there is one)
    │   ├── SchemaValidationError              .path, .value
    │   ├── NoRouteError
    │   └── UnknownFlowError (also KeyError)   .flow_id
    ├── CoordinationError
    │   ├── DeadlockError                      .cycle
    │   ├── ResourceTimeoutError               .resource_id, .participant, .timeout
    │   ├── LeaseExpiredError                  .resource_id, .participant, .lease
    │   ├── UnknownSessionError (also KeyError) .session_id
    │   └── UnknownKeyError (also KeyError)    .key  (``del state[key]`` of a key not there)
    ├── ClosedError (also RuntimeError)        .what  (used after close())
    ├── MissingDependencyError (ImportError)   .package, .extra  (an optional extra is absent)
    └── BrowserNotFoundError (also RuntimeError)  .browser_path  (static image export)
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
    "SubWorkflowCycleError",
    "MissingCapabilityError",
    "UnknownPolicyError",
    "SpecError",
    "WfFormatError",
    "ScheduleError",
    "ConditionError",
    "IntegrationConfigError",
    "UnknownEndpointError",
    "UnknownFlowError",
    "UnknownParameterError",
    "UnknownWorkflowError",
    "WorkflowChangedError",
    "PolicyError",
    "TaskError",
    "TaskTimeoutError",
    "TaskNotSendableError",
    "WorkerLostError",
    "WorkflowFailedError",
    "StoreError",
    "ReportError",
    "ResumeError",
    "IntegrationError",
    "EndpointError",
    "SchemaValidationError",
    "NoRouteError",
    "CoordinationError",
    "DeadlockError",
    "ResourceTimeoutError",
    "LeaseExpiredError",
    "UnknownSessionError",
    "UnknownKeyError",
    "ArgumentError",
    "ClosedError",
    "MissingDependencyError",
    "FrameError",
    "BrowserNotFoundError",
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
    """``where`` names what lacks the dependencies when it is not the workflow (a session)."""

    def __init__(self, task_id: str, missing: Iterable[str], *, where: str | None = None) -> None:
        self.task_id = task_id
        self.missing = sorted(missing)
        names = ", ".join(repr(m) for m in self.missing)
        if where is None:
            text = (f"task {task_id!r} depends on unknown task(s) {names}: add them to the "
                    f"workflow or remove them from its dependencies")
        else:
            text = (f"task {task_id!r} depends on {names}, which {where} does not have: add "
                    f"dependencies to it first")
        super().__init__(text)


class CycleError(ValidationError):
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]]) if self.cycle else "?"
        super().__init__(
            f"the dependencies form a cycle: {path}; remove one of these dependencies"
        )


class SubWorkflowCycleError(CycleError):
    """A workflow would run itself through sub-workflows (``ctx.run_workflow``): it would
    wait for its own end forever, so the call fails at once. ``.cycle`` is the chain of
    workflow ids from the top run down to the repeated one."""

    def __init__(self, chain: Sequence[str], task_id: str | None = None) -> None:
        self.cycle = list(chain)
        self.task_id = task_id
        path = " -> ".join(self.cycle)
        by = f" (task {task_id!r} of {self.cycle[-2]!r})" if task_id and len(chain) > 1 else ""
        ValidationError.__init__(
            self,
            f"workflow {self.cycle[-1]!r} would run itself through sub-workflows: {path}"
            f"{by}; a workflow cannot wait for its own run, so break the chain",
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


class WfFormatError(SpecError):
    """A WfFormat document wfkit cannot read: ``.task_id`` and ``.field`` say where (either may
    be None when the problem is not one task's), ``.path`` the file when there is one."""

    def __init__(
        self, message: str, *, path: str | None = None, task_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.field = field
        self.path = path
        self.line = None
        ValidationError.__init__(self, f"{path or 'WfFormat document'}: {message}")


class ScheduleError(ValidationError):
    """Bad input to simulate / plan_schedule (durations, costs, method)."""


class WorkflowChangedError(ValidationError):
    """A Workflow edited since ``create_workflow`` whose current definition cannot run."""

    def __init__(
        self,
        workflow_id: str,
        added: Sequence[str],
        removed: Sequence[str],
        changed: Sequence[str],
        reason: BaseException | str,
    ) -> None:
        self.workflow_id = workflow_id
        self.added, self.removed, self.changed = list(added), list(removed), list(changed)

        def names(ids: list[str]) -> str:
            return ", ".join(map(repr, ids[:10])) + (" ..." if len(ids) > 10 else "") or "none"

        super().__init__(
            f"workflow {workflow_id!r} changed since create_workflow (added: "
            f"{names(self.added)}; removed: {names(self.removed)}; changed: "
            f"{names(self.changed)}) and its current definition cannot run: {reason}. Fix the "
            f"workflow, or call create_workflow() with the tasks to run"
        )


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


class UnknownParameterError(ValidationError, KeyError):
    """A run parameter the workflow does not declare (``params=`` or ``ctx.params[...]``)."""

    def __init__(self, workflow_id: str | None, name: object, known: Iterable[str] = ()) -> None:
        import difflib

        self.workflow_id = workflow_id
        self.name = name
        self.known = sorted(known)
        where = f"workflow {workflow_id!r}" if workflow_id else "this run"
        close = difflib.get_close_matches(str(name), self.known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        if self.known:
            fix = f"{hint}{where} declares {', '.join(map(repr, self.known))}"
        else:
            fix = "declare parameters with Workflow(..., params={name: default})"
        super().__init__(f"{where} has no parameter {name!r}: {fix}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ArgumentError(ValidationError, TypeError):
    """An argument of the wrong kind (a coroutine where a plain function is needed, a value
    with no JSON form, ...); also a TypeError, which is what such mistakes raise in Python."""


class ClosedError(WfkitError, RuntimeError):
    """An object used after ``close()``; ``.what`` names it. Make a new one to go on."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} is closed: it cannot be used after close(); make a new one")


class PolicyError(WfkitError):
    """A scheduling policy misbehaved (for example returned an agent it was not offered)."""


class TaskError(WfkitError):
    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message)


class TaskTimeoutError(TaskError, TimeoutError):
    """A task overran its timeout. ``ignored_cancel``: it was a coroutine that went on after
    it was cancelled at the timeout (it swallowed ``CancelledError``); its result was
    discarded all the same."""

    def __init__(self, task_id: str, timeout: float, *, ignored_cancel: bool = False) -> None:
        self.timeout = timeout
        self.ignored_cancel = ignored_cancel
        detail = (
            "; it ignored its cancellation at the timeout (caught CancelledError) and "
            "finished later, so its result was discarded: let CancelledError propagate"
            if ignored_cancel else ""
        )
        super().__init__(
            f"task {task_id!r} did not finish within its timeout of {timeout:g} s{detail}; "
            f"raise WorkflowTask(timeout=...) or make the work faster",
            task_id=task_id,
        )


class TaskNotSendableError(TaskError):
    """The executor cannot ship a task's work (for example an unpicklable closure).

    Raised by ``execute_workflow`` before anything starts when the work itself cannot be sent;
    stored as the task's error when a dependency result or a return value cannot be.
    """

    def __init__(
        self, message: str, *, task_id: str | None = None, executor: str | None = None
    ) -> None:
        self.executor = executor
        super().__init__(message, task_id=task_id)


class WorkerLostError(TaskError):
    """The process or cluster worker running an attempt died; the attempt never finished.

    Not the task's fault: the engine retries it up to ``.retries`` times on top of the task's
    own ``retries`` (a task that keeps killing its workers then fails like any other).
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        worker: str | None = None,
        retries: int = 3,
    ) -> None:
        self.worker = worker
        self.retries = retries
        super().__init__(message, task_id=task_id)


class WorkflowFailedError(WfkitError):
    """A run did not complete (``RunResult.raise_for_status()``, ``run_sync(...,
    raise_on_failure=True)``).

    ``.failures`` lists ``(task_id, error, where)`` for each failed task, ``where`` being the
    innermost frame of the user's code (a :class:`wfkit.tracebacks.UserFrame`, or None);
    ``.result`` is the whole :class:`~wfkit.RunResult`. The first failure's exception is the
    ``__cause__``.
    """

    def __init__(
        self,
        *,
        workflow_id: str,
        run_id: str,
        status: str,
        failures: Sequence[tuple[str, str, Any]] = (),
        counts: Mapping[str, int] | None = None,
        result: Any = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.status = status
        self.failures = list(failures)
        self.result = result
        counts = dict(counts or {})
        tally = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
        lines = [f"workflow {workflow_id!r} (run {run_id}) {status}" + (f": {tally}" if tally else "")]
        for task_id, error, where in self.failures:
            lines.append(f"  task {task_id!r} failed: {error}")
            if where is not None:
                lines.append(f"    at {where.location} in {where.name}")
                if where.line:
                    lines.append(f"      {where.line}")
        if self.failures:
            lines.append(
                "Fix the task(s) above and run again; task_results[task_id]['traceback'] has "
                "each full traceback"
            )
        else:
            lines.append(
                "No task failed: the run was cancelled; run it again (resume= continues a "
                "stored run)"
            )
        super().__init__("\n".join(lines))


class StoreError(WfkitError):
    def __init__(self, message: str, *, path: Any = None) -> None:
        self.path = path
        super().__init__(message)


class ReportError(WfkitError):
    """A report cannot be written to the output path (a folder, the store itself, a file that
    is not a report, or no permission); nothing was written."""

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


class ConditionError(ValidationError):
    """A malformed declarative condition; ``.path`` says where in it (``$.all[1].not``)."""

    def __init__(self, message: str, *, path: str = "$", condition: Any = None) -> None:
        self.path = path
        self.condition = condition
        super().__init__(f"malformed condition at {path}: {message}")


class IntegrationConfigError(IntegrationError, ValidationError):
    """An endpoint, transformation or flow that cannot work; raised before any message moves."""

    def __init__(
        self,
        message: str,
        *,
        endpoint_id: str | None = None,
        flow_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.flow_id = flow_id
        self.field = field
        super().__init__(message, endpoint_id=endpoint_id)


class UnknownEndpointError(IntegrationConfigError):
    def __init__(self, flow_id: str, missing: Iterable[str], known: Iterable[str] = ()) -> None:
        self.missing = sorted(set(missing))
        known = sorted(known)
        names = ", ".join(map(repr, self.missing))
        hint = f" (registered: {', '.join(map(repr, known))})" if known else " (none registered)"
        super().__init__(
            f"flow {flow_id!r} refers to unknown endpoint(s) {names}{hint}: "
            f"register_endpoint(IntegrationEndpoint(...)) first or fix the id",
            flow_id=flow_id,
        )


class UnknownFlowError(IntegrationError, KeyError):
    def __init__(self, flow_id: str, known: Iterable[str] = ()) -> None:
        self.flow_id = flow_id
        known = sorted(known)
        hint = f" (known: {', '.join(map(repr, known))})" if known else ""
        super().__init__(f"no flow {flow_id!r}{hint}: call create_flow(IntegrationFlow(...)) first")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


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


class LeaseExpiredError(CoordinationError):
    def __init__(self, resource_id: str, participant: str, lease: float) -> None:
        self.resource_id = resource_id
        self.participant = participant
        self.lease = lease
        super().__init__(
            f"{participant!r} held resource {resource_id!r} past its lease of {lease:g} s, so "
            f"it was handed to the next waiter while {participant!r} still used it; raise "
            f"lease=, call grant.renew() inside long critical sections, or do less while holding"
        )


class UnknownSessionError(CoordinationError, KeyError):
    def __init__(self, session_id: object, known: Iterable[str] = ()) -> None:
        self.session_id = session_id
        known = sorted(known)
        hint = f" (known: {', '.join(map(repr, known[:10]))})" if known else ""
        super().__init__(
            f"no coordination session {session_id!r}{hint}: use the id returned by "
            f"create_coordination_session(participants, coordination_type)"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownKeyError(CoordinationError, KeyError):
    """``del state[key]`` for a key the shared state does not hold."""

    def __init__(self, key: object, known: Iterable[str] = ()) -> None:
        self.key = key
        known = sorted(known)
        hint = f" (keys: {', '.join(map(repr, known[:10]))})" if known else " (it is empty)"
        super().__init__(f"the shared state has no key {key!r} to delete{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class MissingDependencyError(WfkitError, ImportError):
    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        target = f"'wfkit[{extra}]'" if extra else package
        why = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is needed{why}: pip install {target}")


class FrameError(ValidationError):
    """A DataFrame that lacks the columns a figure needs (``.missing``; ``.columns`` it has)."""

    def __init__(self, what: str, missing: Iterable[str], columns: Iterable[str]) -> None:
        self.missing = sorted(missing)
        self.columns = list(columns)
        super().__init__(
            f"{what} needs the column(s) {', '.join(map(repr, self.missing))}; this frame has "
            f"{', '.join(map(repr, self.columns)) or 'no columns'}. Pass a frame from "
            f"AdvancedWorkflowMetrics or RunStore (task_frame(), agent_load_frame(), "
            f"workflow_frame())"
        )


class BrowserNotFoundError(WfkitError, RuntimeError):
    """Static image export (kaleido) found no Chromium-based browser to render with."""

    def __init__(self, browser_path: str | None = None) -> None:
        self.browser_path = browser_path
        where = (
            f"BROWSER_PATH={browser_path!r} is not an executable browser"
            if browser_path
            else "no Chrome or Chromium executable was found"
        )
        super().__init__(
            f"static image export renders with a Chromium-based browser, but {where}. "
            f"Install one: apt-get install chromium (Debian/Ubuntu; other systems: install "
            f"Chrome or Chromium), or set BROWSER_PATH to a browser executable"
        )
