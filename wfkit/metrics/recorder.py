"""``AdvancedWorkflowMetrics``: what workflows and integration flows did, as pandas frames.

Keeps the pattern document's API (``record_workflow_execution``, ``record_integration_flow``,
``get_workflow_summary``) and adds :meth:`AdvancedWorkflowMetrics.attach`, after which every
run of an orchestrator (agent workflows or integration flows) is recorded from its events.
Recording happens on the engine's hot path, so an event only appends to or updates a plain
list; frames are built when asked for.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wfkit.errors import ValidationError
from wfkit.events import (
    FlowMessageDeadLettered,
    FlowMessageDelivered,
    FlowMessageFailed,
    FlowStepFinished,
    ResourceAcquired,
    ResourceReleased,
    ResourceWaitEnded,
    RunFinished,
    RunStarted,
    SharedStateChanged,
    Subscriptions,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskSkipped,
    TaskStarted,
)
from wfkit.metrics import frames

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AdvancedWorkflowMetrics", "DEFAULT_MAX_ROWS"]

DEFAULT_MAX_ROWS = 100_000  # per table; an integration message costs about 1.5 KB in all
_TABLES = ("workflows", "tasks", "integration", "flow_steps", "changes", "resource_requests")

# Row layouts (indices into the plain lists kept per record), in frame-schema order.
_R_STATUS, _R_STARTED, _R_FINISHED, _R_DURATION, _R_TOTAL = 2, 3, 4, 5, 6
_R_RESUMED, _R_PARTICIPANTS, _R_IDS = 11, 12, 13
_T_STARTED, _T_FINISHED = 6, 7
# integration message rows
(_M_STATUS, _M_SUCCESS, _M_DELIVERED, _M_ENDPOINTS, _M_TRANSFORMS, _M_STEPS, _M_RETRIES,
 _M_ERROR, _M_STARTED, _M_FINISHED, _M_DURATION) = range(3, 14)


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def _count(value: Any, what: str) -> int:
    """The document passes counts; lists of ids are accepted too (their distinct members)."""
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a count or a list of ids, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValidationError(f"{what} must be >= 0, got {value}")
        return value
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(f"{what} must be a count or a list of ids, got {value!r}")
    return len(set(value))


def _start_or_end(row: tuple[Any, ...]) -> float:
    return row[_T_STARTED] if row[_T_STARTED] is not None else row[_T_FINISHED]


def _ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, int):
        return ()
    return tuple(sorted({str(v) for v in value}))


class AdvancedWorkflowMetrics:
    """Records workflow runs, task attempts and integration messages; serves them as frames.

    ``attach(x)`` subscribes to anything with ``subscribe(callback)`` (a
    :class:`~wfkit.CollectiveAgentWorkflowOrchestrator`, an ``IntegrationOrchestrator``, an
    :class:`~wfkit.EventBus`); the instance is itself a subscriber callable too.
    ``workflow_metrics`` and ``integration_metrics`` keep the document's per-id lists of dicts.

    ``max_rows`` (default 100,000) bounds each table: workflow runs, task attempts, integration
    messages and flow steps. A long-running process that records forever keeps the newest
    ``max_rows`` of each; the oldest rows go first, with their entries in
    ``workflow_metrics`` / ``integration_metrics`` (so summaries describe what is kept), and
    ``dropped_rows`` counts what went, per table. ``None`` keeps everything.
    """

    #: Attached to an ``IntegrationOrchestrator``, it records each message from the events
    #: (which carry its endpoints and transformations): the orchestrator need not call
    #: :meth:`record_integration_flow` too.
    records_flow_events = True

    def __init__(self, *, max_rows: int | None = DEFAULT_MAX_ROWS) -> None:
        if max_rows is not None and (
            isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1
        ):
            raise ValidationError(
                f"max_rows must be a whole number of rows >= 1 (or None for no bound), "
                f"got {max_rows!r}"
            )
        self.max_rows = max_rows
        self._limit = sys.maxsize if max_rows is None else max_rows
        self.dropped_rows: dict[str, int] = dict.fromkeys(_TABLES, 0)
        self.workflow_metrics: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.integration_metrics: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._runs: deque[list[Any]] = deque()  # WORKFLOW_COLUMNS rows
        self._run_by_id: dict[str, list[Any]] = {}
        self._run_record: dict[str, dict[str, Any]] = {}  # run_id -> its workflow_metrics entry
        self._tasks: deque[tuple[Any, ...]] = deque()  # TASK_COLUMNS rows of ended attempts
        self._static: dict[str, frozenset[str]] = {}  # run id -> the run's own task ids
        # (run_id, task_id, agent_id) -> the row of its running attempt (a coordination
        # session's task has one per participant)
        self._open: dict[tuple[str, str, str | None], tuple[Any, ...]] = {}
        self._capacity: dict[str, int] = {}
        self._messages: deque[list[Any]] = deque()  # INTEGRATION_COLUMNS rows
        self._message_by_key: dict[tuple[str, str, str], list[Any]] = {}
        self._message_steps: dict[tuple[str, str, str], set[str]] = {}
        self._message_record: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._steps: deque[tuple[Any, ...]] = deque()  # FLOW_STEP_COLUMNS rows
        self._changes: deque[tuple[Any, ...]] = deque()  # CHANGE_COLUMNS rows
        self._requests: deque[tuple[Any, ...]] = deque()  # RESOURCE_COLUMNS rows
        # (run_id, resource_id) -> (requested_at, acquired_at, waited) of its holder
        self._holders: dict[tuple[str, str], tuple[float, float, float]] = {}
        # id(row) -> the document record of a hand-recorded row (rows from events find theirs
        # by run or message id), to drop both together
        self._hand_records: dict[int, dict[str, Any]] = {}
        self._detach = Subscriptions()
        self._handlers: dict[type, Callable[[Any], None]] = {
            TaskFailed: self._task_failed,
            TaskSkipped: self._task_skipped,
            TaskCancelled: self._task_cancelled,
            RunStarted: self._run_started,
            RunFinished: self._run_finished,
            FlowStepFinished: self._flow_step,
            FlowMessageDelivered: self._flow_delivered,
            FlowMessageFailed: self._flow_failed,
            FlowMessageDeadLettered: self._flow_dead_lettered,
            SharedStateChanged: self._state_changed,
            ResourceAcquired: self._resource_acquired,
            ResourceReleased: self._resource_released,
            ResourceWaitEnded: self._resource_wait_ended,
        }

    # -- subscribing -------------------------------------------------------------------------

    def attach(self, source: Any) -> AdvancedWorkflowMetrics:
        """Record every event ``source`` publishes from now on; returns ``self``."""
        subscribe = getattr(source, "subscribe", None)
        if not callable(subscribe):
            raise ValidationError(
                f"attach() needs an object with subscribe(callback), such as a "
                f"CollectiveAgentWorkflowOrchestrator or an IntegrationOrchestrator; "
                f"got {type(source).__name__}"
            )
        self._detach.add(source, self)
        return self

    def detach(self, source: Any = None) -> None:
        """Stop recording ``source`` (every attached source when None)."""
        self._detach.remove(source)

    def __call__(self, e: Any) -> None:
        kind = type(e)
        if kind is TaskStarted:  # the hot path, inlined: one per attempt
            self._open[(e.run_id, e.task_id, e.agent_id)] = (
                e.run_id, e.workflow_id, e.task_id, e.agent_id, "running", e.attempt,
                e.timestamp, None, None, None, None, False)
        elif kind is TaskCompleted:  # carries the whole attempt; rows are atomic tuples, which
            self._open.pop((e.run_id, e.task_id, e.agent_id), None)  # the collector then skips
            tasks = self._tasks
            if len(tasks) >= self._limit:
                tasks.popleft()
                self.dropped_rows["tasks"] += 1
            tasks.append((e.run_id, e.workflow_id, e.task_id, e.agent_id, "completed",
                                e.attempt, e.started_at, e.timestamp, e.timestamp - e.started_at,
                                None, True, e.cached))
        else:
            handler = self._handlers.get(kind)
            if handler is not None:
                handler(e)

    # -- agent workflow events ---------------------------------------------------------------

    def _run_started(self, e: RunStarted) -> None:
        for agent_id, capacity in e.agents:
            self._capacity[agent_id] = capacity
        self._static[e.run_id] = frozenset(e.task_ids)  # to tell mapped children apart
        row = self._run_by_id.get(e.run_id)
        if row is None:  # a resumed run keeps its row (and first start)
            row = [e.run_id, e.workflow_id, "running", e.timestamp, None, None,
                   len(e.task_ids), 0, 0, 0, 0, len(e.resumed), 0, (), e.policy,
                   dict(e.params or {}), e.parent_run_id, e.parent_task_id]
            self._add_run(row)
            self._run_by_id[e.run_id] = row
        else:
            row[_R_STATUS], row[_R_FINISHED], row[_R_DURATION] = "running", None, None
            row[_R_RESUMED] = len(e.resumed)

    def _run_finished(self, e: RunFinished) -> None:
        row = self._run_by_id.get(e.run_id)
        if row is None:  # attached while the run was going
            row = [e.run_id, e.workflow_id, "", e.started_at, None, None, 0, 0, 0, 0, 0, 0, 0,
                   (), "", {}, None, None]
            self._add_run(row)
            self._run_by_id[e.run_id] = row
        ids = tuple(sorted(set(row[_R_IDS]) | set(e.participants)))
        row[_R_STATUS] = e.status
        row[_R_FINISHED] = e.timestamp
        row[_R_DURATION] = e.timestamp - row[_R_STARTED]
        row[_R_TOTAL:_R_RESUMED] = [e.total_tasks, e.successful_tasks, e.failed_tasks,
                                    e.skipped_tasks, e.cancelled_tasks]
        row[_R_PARTICIPANTS] = len(ids)
        row[_R_IDS] = ids
        record = self._run_record.get(e.run_id)
        if record is None:  # a resumed run updates its record: one per run
            record = self._run_record[e.run_id] = {"run_id": e.run_id}
            self.workflow_metrics[e.workflow_id].append(record)
        record.update(duration=row[_R_DURATION], success=e.status == "completed",
                      participants=len(ids), timestamp=e.timestamp)

    def _end_attempt(
        self, e: Any, status: str, started: float | None, error: str | None, final: bool
    ) -> None:
        self._open.pop((e.run_id, e.task_id, e.agent_id), None)
        self._add_task((e.run_id, e.workflow_id, e.task_id, e.agent_id, status, e.attempt,
                            started, e.timestamp,
                            None if started is None else e.timestamp - started, error, final,
                            False))

    def _task_failed(self, e: TaskFailed) -> None:
        self._end_attempt(e, "failed", e.started_at, e.error, e.final)

    def _task_skipped(self, e: TaskSkipped) -> None:
        self._add_task((e.run_id, e.workflow_id, e.task_id, e.agent_id, "skipped", 0, None,
                            e.timestamp, None, e.reason, True, False))

    def _task_cancelled(self, e: TaskCancelled) -> None:
        if e.agent_id is None:  # waiting or backing off: no attempt was running
            self._add_task((e.run_id, e.workflow_id, e.task_id, None, "cancelled", 0, None,
                                e.timestamp, None, None, True, False))
        else:
            self._end_attempt(e, "cancelled", e.started_at, None, True)

    # -- integration events ------------------------------------------------------------------

    def _message(self, e: Any) -> list[Any]:
        key = (e.run_id, e.flow_id, e.message_id)
        row = self._message_by_key.get(key)
        if row is None:
            row = [e.run_id, e.flow_id, e.message_id, "in_progress", None, (), 0, 0, 0, 0, None,
                   None, None, None, "events"]
            self._message_by_key[key] = row
            self._message_steps[key] = set()
            self._add_message(row)
        return row

    def _flow_step(self, e: FlowStepFinished) -> None:
        started = e.timestamp - e.duration
        steps = self._steps
        if len(steps) >= self._limit:
            steps.popleft()
            self.dropped_rows["flow_steps"] += 1
        steps.append((e.run_id, e.flow_id, e.message_id, e.step, e.kind, e.status,
                            e.attempts, started, e.timestamp, e.duration, e.error))
        row = self._message(e)
        row[_M_STEPS] += 1
        row[_M_RETRIES] += max(0, e.attempts - 1)
        seen = self._message_steps[(e.run_id, e.flow_id, e.message_id)]
        if e.step not in seen:
            seen.add(e.step)
            if e.kind == "transformation":
                row[_M_TRANSFORMS] += 1
            else:
                row[_M_ENDPOINTS] += 1
        if row[_M_STARTED] is None or started < row[_M_STARTED]:
            row[_M_STARTED] = started

    def _end_message(self, e: Any, status: str, duration: float | None, error: str | None) -> None:
        key = (e.run_id, e.flow_id, e.message_id)
        row = self._message(e)
        if not (status == "failed" and row[_M_STATUS] == "dead_lettered"):  # that says more
            row[_M_STATUS] = status
        row[_M_SUCCESS] = status == "delivered"
        endpoints = getattr(e, "endpoints", None)
        if endpoints is not None:  # what the message went through, as its publisher says
            row[_M_ENDPOINTS] = len(endpoints)
            row[_M_TRANSFORMS] = len(e.transformations or ())
        if error:
            row[_M_ERROR] = error
        row[_M_FINISHED] = e.timestamp
        if duration is not None:
            start = e.timestamp - duration
            if row[_M_STARTED] is None or start < row[_M_STARTED]:
                row[_M_STARTED] = start
            row[_M_DURATION] = duration
        elif row[_M_STARTED] is not None and row[_M_DURATION] is None:
            row[_M_DURATION] = e.timestamp - row[_M_STARTED]
        record = self._message_record.get(key)
        if record is None:
            record = self._message_record[key] = {"message_id": e.message_id}
            self.integration_metrics[e.flow_id].append(record)
        record.update(
            endpoints=row[_M_ENDPOINTS], transformations=row[_M_TRANSFORMS],
            success=row[_M_SUCCESS], status=row[_M_STATUS], duration=row[_M_DURATION],
            timestamp=e.timestamp,
        )

    def _flow_delivered(self, e: FlowMessageDelivered) -> None:
        self._message(e)[_M_DELIVERED] = tuple(e.delivered_to)
        self._end_message(e, "delivered", e.duration, None)

    def _flow_failed(self, e: FlowMessageFailed) -> None:
        self._end_message(e, "failed", e.duration, e.error)

    def _flow_dead_lettered(self, e: FlowMessageDeadLettered) -> None:
        self._end_message(e, "dead_lettered", None, e.reason)

    # -- coordination events -----------------------------------------------------------------

    def _bounded(self, table: deque[tuple[Any, ...]], name: str, row: tuple[Any, ...]) -> None:
        if len(table) >= self._limit:
            table.popleft()
            self.dropped_rows[name] += 1
        table.append(row)

    def _state_changed(self, e: SharedStateChanged) -> None:
        self._bounded(self._changes, "changes", (
            e.session_id, e.version, e.timestamp, e.participant, tuple(e.keys),
            dict(e.changes) if e.changes is not None else None, e.strategy))

    def _resource_acquired(self, e: ResourceAcquired) -> None:
        self._holders[(e.run_id, e.resource_id)] = (
            e.timestamp - e.waited, e.timestamp, e.waited)

    def _resource_released(self, e: ResourceReleased) -> None:
        holder = self._holders.pop((e.run_id, e.resource_id), None)
        if holder is None:  # attached while it was held: its wait is unknown
            holder = (e.timestamp - e.held, e.timestamp - e.held, 0.0)
        requested, acquired, waited = holder
        self._bounded(self._requests, "resource_requests", (
            e.resource_id, e.participant, requested, acquired, e.timestamp, waited, e.held,
            e.outcome))

    def _resource_wait_ended(self, e: ResourceWaitEnded) -> None:
        self._bounded(self._requests, "resource_requests", (
            e.resource_id, e.participant, e.timestamp - e.waited, None, e.timestamp, e.waited,
            None, e.outcome))

    # -- bounded tables: the oldest rows go first, with what refers to them ------------------

    def _add_task(self, row: tuple[Any, ...]) -> None:
        tasks = self._tasks
        if len(tasks) >= self._limit:
            tasks.popleft()
            self.dropped_rows["tasks"] += 1
        tasks.append(row)

    def _add_run(self, row: list[Any], record: dict[str, Any] | None = None) -> None:
        runs = self._runs
        while len(runs) >= self._limit:
            old = runs.popleft()
            self.dropped_rows["workflows"] += 1
            if old[0] is None:  # recorded by hand
                dropped = self._hand_records.pop(id(old), None)
            else:
                self._run_by_id.pop(old[0], None)
                dropped = self._run_record.pop(old[0], None)
            _forget(self.workflow_metrics, old[1], dropped)
        if record is not None:
            self._hand_records[id(row)] = record
        runs.append(row)

    def _add_message(self, row: list[Any], record: dict[str, Any] | None = None) -> None:
        messages = self._messages
        while len(messages) >= self._limit:
            old = messages.popleft()
            self.dropped_rows["integration"] += 1
            if old[0] is None and old[2] is None:  # recorded by hand
                dropped = self._hand_records.pop(id(old), None)
            else:
                key = (old[0], old[1], old[2])
                self._message_by_key.pop(key, None)
                self._message_steps.pop(key, None)
                dropped = self._message_record.pop(key, None)
            _forget(self.integration_metrics, old[1], dropped)
        if record is not None:
            self._hand_records[id(row)] = record
        messages.append(row)

    # -- the pattern document's API ----------------------------------------------------------

    def record_workflow_execution(
        self,
        workflow_id: str,
        duration: float,
        success: bool,
        participants: int | Iterable[str],
    ) -> None:
        """Record one execution by hand (``participants``: a count or the agent ids)."""
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValidationError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        duration = self._duration(duration)
        count = _count(participants, "participants")
        now = time.time()
        row: list[Any] = [None, workflow_id, "completed" if success else "failed",
                           now - duration, now, duration, None, None, None, None, None, None,
                           count, _ids(participants), None, {}, None, None]
        record = {"duration": duration, "success": bool(success), "participants": count,
             "timestamp": now}
        self._add_run(row, record)
        self.workflow_metrics[workflow_id].append(record)

    def record_integration_flow(
        self,
        flow_id: str,
        endpoints: int | Iterable[str],
        transformations: int | Iterable[str],
        success: bool,
        *,
        duration: float | None = None,
    ) -> None:
        """Record one flow execution by hand: one row of :meth:`integration_frame` (an
        attached ``IntegrationOrchestrator``'s messages are recorded from its events)."""
        if not isinstance(flow_id, str) or not flow_id:
            raise ValidationError(f"flow_id must be a non-empty string, got {flow_id!r}")
        n_endpoints = _count(endpoints, "endpoints")
        n_transforms = _count(transformations, "transformations")
        if duration is not None:
            duration = self._duration(duration)
        now = time.time()
        row = [None, flow_id, None, "delivered" if success else "failed",
                               bool(success), (), n_endpoints, n_transforms, None, None, None,
                               None if duration is None else now - duration, now, duration,
                               "record"]
        record = {"endpoints": n_endpoints, "transformations": n_transforms,
             "success": bool(success), "duration": duration, "timestamp": now}
        self._add_message(row, record)
        self.integration_metrics[flow_id].append(record)

    @staticmethod
    def _duration(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ValidationError(f"duration must be a number of seconds, got {value!r}")
        if value < 0:
            raise ValidationError(f"duration must be >= 0 seconds, got {value!r}")
        return float(value)

    def get_workflow_summary(self) -> dict[str, dict[str, Any]]:
        """Per workflow: ``total_executions``, ``success_rate``, ``average_duration``,
        ``average_participants`` (finished runs and hand-recorded executions)."""
        summary: dict[str, dict[str, Any]] = {}
        for workflow_id, records in self.workflow_metrics.items():
            if not records:
                continue
            ok = sum(1 for r in records if r["success"])
            summary[workflow_id] = {
                "total_executions": len(records),
                "successful_executions": ok,
                "success_rate": ok / len(records),
                "average_duration": _mean(r["duration"] for r in records),
                "average_participants": _mean(r["participants"] for r in records),
                "last_execution": max(r["timestamp"] for r in records),
            }
        return summary

    def get_integration_summary(self) -> dict[str, dict[str, Any]]:
        """Per flow: ``total_executions`` (messages and recorded calls), ``success_rate``,
        ``average_duration`` (over those with a duration), ``average_endpoints``,
        ``average_transformations``."""
        summary: dict[str, dict[str, Any]] = {}
        for flow_id, records in self.integration_metrics.items():
            if not records:
                continue
            ok = sum(1 for r in records if r["success"])
            durations = [r["duration"] for r in records if r["duration"] is not None]
            summary[flow_id] = {
                "total_executions": len(records),
                "successful_executions": ok,
                "success_rate": ok / len(records),
                "average_duration": _mean(durations) if durations else None,
                "average_endpoints": _mean(r["endpoints"] for r in records),
                "average_transformations": _mean(
                    r["transformations"] for r in records
                ),
            }
        return summary

    # -- frames ------------------------------------------------------------------------------

    def workflow_frame(self) -> pd.DataFrame:
        """One row per run (and per hand-recorded execution): status, times, counts."""
        return frames.build_frame(list(self._runs), frames.WORKFLOW_COLUMNS)

    def task_frame(self) -> pd.DataFrame:
        """One row per task attempt; skipped tasks, tasks cancelled while not running and
        tasks served from the result cache (``cached``) have a row with ``attempt`` 0.
        ``final`` is False for a failed attempt that was retried."""
        rows = [*self._tasks, *self._open.values()]
        rows.sort(key=_start_or_end)  # stable: in the order things happened
        return frames.build_frame(
            frames.with_map_columns(rows, self._static), frames.TASK_COLUMNS
        )

    def agent_load_frame(self) -> pd.DataFrame:
        """Each agent's load and capacity over time, from the task attempts' intervals."""
        return frames.agent_load(self.task_frame(), self._capacity)

    def integration_frame(self) -> pd.DataFrame:
        """One row per integration message (from events) or recorded flow execution
        (``source`` says which): status, where it was delivered, step counts and times."""
        return frames.build_frame(list(self._messages), frames.INTEGRATION_COLUMNS)

    def flow_step_frame(self) -> pd.DataFrame:
        """One row per integration step (source, transformation, target...) of each message."""
        return frames.build_frame(list(self._steps), frames.FLOW_STEP_COLUMNS)

    def changes_frame(
        self, session_id: str | None = None, *, order: Iterable[str] | None = None
    ) -> Any:
        """One row per commit to a coordination session's shared state (of ``session_id``,
        or of every session), each session's commits oldest first; sessions in ``order``
        (ids), else in the order they first changed."""
        return frames.build_frame(
            _grouped(self._changes, session_id, order), frames.CHANGE_COLUMNS
        )

    def resource_frame(
        self, resource_id: str | None = None, *, order: Iterable[str] | None = None
    ) -> Any:
        """One row per finished request for a shared resource (of ``resource_id``, or of
        every resource): waited, held, and how it ended (``released``, ``expired``,
        ``cancelled`` or ``timeout``); resources in ``order`` (ids), else as first seen."""
        return frames.build_frame(
            _grouped(self._requests, resource_id, order), frames.RESOURCE_COLUMNS
        )

    def clear(self) -> None:
        """Forget everything recorded (attachments stay)."""
        self.workflow_metrics.clear()
        self.integration_metrics.clear()
        for container in (self._runs, self._run_by_id, self._run_record, self._tasks,
                          self._open, self._messages, self._message_by_key,
                          self._message_steps, self._message_record, self._steps,
                          self._hand_records, self._changes, self._requests, self._holders):
            container.clear()
        self.dropped_rows = dict.fromkeys(_TABLES, 0)

    def __repr__(self) -> str:
        return (
            f"<AdvancedWorkflowMetrics {len(self._runs)} runs, "
            f"{len(self._tasks) + len(self._open)} task rows, "
            f"{len(self._messages)} integration rows, attached to {len(self._detach)}"
            + (f", dropped {sum(self.dropped_rows.values())} oldest rows"
               if any(self.dropped_rows.values()) else "")
            + ">"
        )


def _grouped(
    rows: Iterable[tuple[Any, ...]], owner: str | None, order: Iterable[str] | None
) -> list[tuple[Any, ...]]:
    """Rows (their owner's id first) of ``owner`` or of all, grouped by owner: owners in
    ``order`` first, the others as first seen; each owner's rows in the order they came."""
    groups: dict[str, list[tuple[Any, ...]]] = {o: [] for o in order or ()}
    for row in rows:
        if owner is None or row[0] == owner:
            groups.setdefault(row[0], []).append(row)
    return [row for group in groups.values() for row in group]


def _forget(records: dict[str, list[dict[str, Any]]], owner: str, record: Any) -> None:
    """Remove ``record`` (by identity: equal records are distinct executions) from its list."""
    if record is None:
        return
    rows = records.get(owner)
    if not rows:
        return
    for i, r in enumerate(rows):  # the oldest rows go first, so it is near the front
        if r is record:
            del rows[i]
            break
    if not rows:
        del records[owner]
