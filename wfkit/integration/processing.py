"""One message through one flow: the only place a message's state changes.

    sources (in order) -> transformations (in order) -> route -> targets (concurrently)
        target exhausted -> fallback (if any)
        any failure -> notification (if any); message failed -> dead-letter channel (if any)

Invariants: every step appends exactly one trace entry (and, when someone subscribed, one
``FlowStepFinished``); a message ends ``completed`` exactly when every routed target (or the
fallback standing in for it) accepted it; a failed message is ``dead_lettered`` only once the
letter is durably stored, which is what lets the streaming mode acknowledge it. Errors are
strings with secrets masked; exceptions other than cancellation never escape
:meth:`MessageProcessor.process`.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict

from wfkit.callables import describe_error
from wfkit.errors import IntegrationError, NoRouteError
from wfkit.events import (
    FlowMessageDeadLettered,
    FlowMessageDelivered,
    FlowMessageFailed,
    FlowStepFinished,
)
from wfkit.integration.deadletter import letter
from wfkit.integration.durable_queue import loads
from wfkit.integration.endpoints.base import MessageContext
from wfkit.integration.plan import STORE, FlowPlan
from wfkit.integration.retry import Attempts, call_with_retry

if TYPE_CHECKING:
    from wfkit.integration.orchestrator import IntegrationOrchestrator

__all__ = ["MessageProcessor", "Outcome", "RawMessage"]

log = logging.getLogger("wfkit.integration")
_now = time.time
_clock = time.perf_counter


_UNSET = object()


class RawMessage(str):
    """The stored JSON text of a consumed message: decoded only if it must be dead-lettered."""

    __slots__ = ()

    def decode(self) -> Any:
        return loads(self)


class FlowResult(TypedDict):
    """What ``execute_flow`` returns for one message (``trace``: one dict per step, with
    ``step``, ``kind``, ``status``, ``attempts``, ``duration``, ``error``)."""

    flow_id: str
    message_id: str
    run_id: str
    status: str  # "completed" or "failed"
    processed_data: Any  # the message after its transformations; None when it failed before
    error: str | None
    reason: str | None
    routed_to: list[str]
    delivered_to: list[str]
    failed_targets: list[str]
    fallback_for: list[str]
    dead_lettered: bool
    retries: int
    execution_time: float
    started_at: float
    trace: list[dict[str, Any]]


@dataclass(slots=True)
class Outcome:
    """The bookkeeping of one message; :meth:`result` is what ``execute_flow`` returns."""

    flow_id: str
    message_id: str
    run_id: str
    status: str = "completed"
    data: Any = None
    processed: bool = False
    error: str | None = None
    reason: str | None = None
    stage: str | None = None
    routed_to: tuple[str, ...] = ()
    delivered_to: list[str] = field(default_factory=list)
    failed_targets: list[str] = field(default_factory=list)
    fallback_for: list[str] = field(default_factory=list)
    dead_lettered: bool = False
    trace: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    started_at: float = 0.0
    duration: float = 0.0
    transformations: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    fallback_lock: asyncio.Lock | None = None
    fallback_error: Any = _UNSET  # _UNSET until the fallback was tried, then None or the error

    def fail(self, stage: str, reason: str, error: str) -> None:
        if self.status != "failed":  # the first failure names the message's reason
            self.status, self.stage, self.reason = "failed", stage, reason
            self.error = error
        elif error and self.error and error not in self.error:
            self.error = f"{self.error}; {error}"

    def result(self) -> FlowResult:
        return {
            "flow_id": self.flow_id,
            "message_id": self.message_id,
            "run_id": self.run_id,
            "status": self.status,
            "processed_data": self.data if self.processed else None,
            "error": self.error,
            "reason": self.reason,
            "routed_to": list(self.routed_to),
            "delivered_to": list(self.delivered_to),
            "failed_targets": list(self.failed_targets),
            "fallback_for": list(self.fallback_for),
            "dead_lettered": self.dead_lettered,
            "retries": self.retries,
            "execution_time": self.duration,
            "started_at": self.started_at,
            "trace": self.trace,
        }


class MessageProcessor:
    """Runs messages through flow plans for one orchestrator."""

    def __init__(self, orchestrator: IntegrationOrchestrator) -> None:
        self.orch = orchestrator

    # -- the steps ----------------------------------------------------------------------------

    def _step(
        self,
        out: Outcome,
        step: str,
        kind: str,
        status: str,
        attempts: int,
        started: float,
        began: float,
        error: str | None = None,
        **detail: Any,
    ) -> None:
        duration = _clock() - began
        entry = {
            "step": step,
            "kind": kind,
            "status": status,
            "attempts": attempts,
            "duration": duration,
            "started_at": started,
            "error": error,
        }
        if detail:
            entry.update(detail)
        out.trace.append(entry)
        if attempts > 1:
            out.retries += attempts - 1
        bus = self.orch._bus
        if bus:
            bus.emit(
                FlowStepFinished(
                    out.run_id, started + duration, out.flow_id, out.message_id, step, kind,
                    status, attempts, duration, error,
                )
            )

    async def _call(
        self, out: Outcome, step: str, kind: str, fn: Callable[[], Awaitable[Any]], plan: FlowPlan
    ) -> tuple[Attempts, str | None]:
        """Run ``fn`` under the flow's retry policy and trace it; returns the record and, when
        it failed, the error text (secrets masked)."""
        started, began = _now(), _clock()
        record = await call_with_retry(fn, plan.retry, sleep=self.orch._sleep)
        detail: dict[str, Any] = {}
        if record.delays:
            detail["delays"] = record.delays
        if isinstance(record.result, dict):
            detail.update(record.result)
        error = None
        if record.error is not None:
            error = self.orch.redactor(describe_error(record.error))
            status = getattr(record.error, "status", None)
            if status is not None:
                detail["status_code"] = status
        self._step(
            out, step, kind, "ok" if record.ok else "failed", record.attempts, started, began,
            error, **detail,
        )
        return record, error

    async def _deliver(
        self, out: Outcome, plan: FlowPlan, target: str, data: dict[str, Any], ctx: MessageContext,
        isolate: bool,
    ) -> None:
        endpoints = self.orch._endpoints
        endpoint = endpoints[target]
        payload = copy.deepcopy(data) if isolate and endpoint.TYPE == "function" else data
        record, error = await self._call(
            out, target, "target", lambda: endpoint.send(payload, ctx), plan
        )
        if error is None:
            out.delivered_to.append(target)
            return
        await self._notify(out, plan, target, "target", error, record.attempts, data)
        fallback = plan.fallback
        if fallback and fallback != target:
            fb_error = await self._fallback(out, plan, fallback, data, ctx)
            if fb_error is None:
                out.fallback_for.append(target)
                return
            error = f"{error}; fallback {fallback!r}: {fb_error}"
        out.failed_targets.append(target)
        out.fail("delivery", f"delivery to {target!r} failed", f"{target}: {error}")

    async def _fallback(
        self, out: Outcome, plan: FlowPlan, fallback: str, data: dict[str, Any], ctx: MessageContext
    ) -> str | None:
        """Deliver to the fallback once per message, however many targets failed; returns the
        error text, or None when the fallback took the message."""
        if out.fallback_lock is None:
            out.fallback_lock = asyncio.Lock()
        async with out.fallback_lock:
            if out.fallback_error is not _UNSET:
                return out.fallback_error
            fb = self.orch._endpoints[fallback]
            payload = copy.deepcopy(data) if fb.TYPE == "function" else data
            record, error = await self._call(
                out, fallback, "fallback", partial(fb.send, payload, ctx), plan
            )
            if error is None:
                out.fallback_error = None
                out.delivered_to.append(fallback)
                return None
            out.fallback_error = error
            await self._notify(out, plan, fallback, "fallback", error, record.attempts, data)
            return error

    async def _notify(
        self, out: Outcome, plan: FlowPlan, step: str, kind: str, error: str, attempts: int,
        data: Any,
    ) -> None:
        """Tell the flow's notification callable or endpoint about one failure (never raises)."""
        target = plan.notification
        if target is None:
            return
        failure = {
            "flow_id": out.flow_id,
            "message_id": out.message_id,
            "run_id": out.run_id,
            "step": step,
            "kind": kind,
            "error": error,
            "attempts": attempts,
            "message": data,
            "timestamp": _now(),
        }
        started, began = _now(), _clock()
        name = target if isinstance(target, str) else getattr(target, "__name__", "notification")
        try:
            if isinstance(target, str):
                await self.orch._endpoints[target].send(
                    failure, MessageContext(out.flow_id, f"{out.message_id}:{step}", out.run_id)
                )
            else:
                result = target(failure)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            text = self.orch.redactor(describe_error(exc))
            log.warning("flow %r: notification %r failed: %s", out.flow_id, name, text)
            self._step(out, name, "notification", "failed", 1, started, began, text)
        else:
            self._step(out, name, "notification", "ok", 1, started, began)

    async def _dead_letter(
        self, out: Outcome, plan: FlowPlan, original: Any, data: Any
    ) -> None:
        started, began = _now(), _clock()
        if isinstance(original, RawMessage):
            original = original.decode()
        dead = letter(
            flow_id=out.flow_id,
            message_id=out.message_id,
            run_id=out.run_id,
            reason=out.reason or "failed",
            error=out.error,
            stage=out.stage or "",
            message=original,
            processed=data if out.stage == "delivery" else None,
            failed_targets=out.failed_targets,
        )
        channel = plan.dead_letter
        try:
            if channel == STORE:
                await self.orch.dead_letter_store().add(dead)
            else:
                endpoint = self.orch._endpoints[channel]  # type: ignore[index]
                # keyed per run: a letter of a replay that failed again is a new letter
                key = MessageContext(out.flow_id, f"{out.message_id}:{out.run_id}", out.run_id)
                await endpoint.send(dead, key)
        except Exception as exc:
            text = self.orch.redactor(describe_error(exc))
            log.error(
                "flow %r: message %r could not be dead-lettered to %r: %s",
                out.flow_id, out.message_id, channel, text,
            )
            self._step(out, str(channel), "dead_letter", "failed", 1, started, began, text)
            return
        out.dead_lettered = True
        self._step(out, str(channel), "dead_letter", "ok", 1, started, began, reason=out.reason)
        bus = self.orch._bus
        if bus:
            bus.emit(
                FlowMessageDeadLettered(out.run_id, _now(), out.flow_id, out.message_id, out.reason or "")
            )

    # -- one message ----------------------------------------------------------------------------

    async def process(
        self,
        plan: FlowPlan,
        data: dict[str, Any],
        *,
        message_id: str,
        run_id: str,
        original: Any,
        resume_targets: tuple[str, ...] | None = None,
        source_step: dict[str, Any] | None = None,
    ) -> Outcome:
        """Run one message; ``resume_targets`` skips to delivery (replaying a delivery failure)."""
        out = Outcome(plan.flow_id, message_id, run_id, data=data, started_at=_now())
        began = _clock()
        ctx = MessageContext(plan.flow_id, message_id, run_id)
        endpoints = self.orch._endpoints
        redact = self.orch.redactor
        if source_step is not None:  # the queue source that supplied this message
            out.trace.append(source_step)
            if self.orch._bus:
                self.orch._bus.emit(FlowStepFinished(
                    run_id, source_step["started_at"], plan.flow_id, message_id,
                    source_step["step"], "source", "ok", 1, 0.0,
                ))
        if resume_targets is None:
            for sid in plan.sources:
                source = endpoints[sid]
                out.sources.append(sid)
                record, error = await self._call(
                    out, sid, "source", partial(source.fetch, data, ctx), plan
                )
                if error is not None:
                    out.fail("source", f"source {sid!r} failed", error)
                    await self._notify(out, plan, sid, "source", error, record.attempts, data)
                    break
            if out.status == "completed":
                for step in plan.transformations:
                    started, t0 = _now(), _clock()
                    try:
                        data = await step.apply(data)
                    except Exception as exc:
                        error = redact(describe_error(exc))
                        self._step(out, step.transformation_id, "transformation", "failed", 1, started, t0, error)
                        out.fail("transformation", f"transformation {step.transformation_id!r} failed", error)
                        await self._notify(out, plan, step.transformation_id, "transformation", error, 1, data)
                        break
                    out.transformations.append(step.transformation_id)
                    self._step(out, step.transformation_id, "transformation", "ok", 1, started, t0)
            out.data = data
            if out.status == "completed":
                out.processed = True
                started, t0 = _now(), _clock()
                try:
                    targets = plan.router.route(data)
                except IntegrationError as exc:
                    error = redact(str(exc))
                    self._step(out, "routing", "route", "failed", 1, started, t0, error)
                    out.fail("route", "routing failed", error)
                    await self._notify(out, plan, "routing", "route", error, 1, data)
                    targets = ()
                else:
                    if plan.router.has_rules or not targets:
                        self._step(out, "routing", "route", "ok" if targets else "failed", 1,
                                   started, t0, None if targets else "no route", to=list(targets))
                    if not targets:
                        error = describe_error(NoRouteError(
                            "no routing rule matched and the flow has no default route"
                        ))
                        out.fail("route", "no route", error)
                        await self._notify(out, plan, "routing", "route", error, 1, data)
                out.routed_to = targets
        else:
            out.processed = True
            out.routed_to = targets = resume_targets
        if out.status == "completed" and targets:
            if len(targets) == 1:
                await self._deliver(out, plan, targets[0], data, ctx, False)
            else:
                async with asyncio.TaskGroup() as group:
                    for target in targets:
                        group.create_task(self._deliver(out, plan, target, data, ctx, True))
            if out.stage == "delivery":  # name every target that missed the message
                out.reason = f"delivery to {', '.join(map(repr, out.failed_targets))} failed"
        if out.status == "failed" and plan.dead_letter:
            await self._dead_letter(out, plan, original, data)
        out.duration = _clock() - began
        self._finish(out, plan)
        return out

    async def reject(
        self,
        plan: FlowPlan,
        *,
        message_id: str,
        run_id: str,
        original: Any,
        step: str,
        reason: str,
        error: str,
        deliveries: int = 1,
    ) -> Outcome:
        """Fail a message before processing it (a poison message from the queue source)."""
        out = Outcome(plan.flow_id, message_id, run_id, started_at=_now())
        began = _clock()
        self._step(out, step, "source", "failed", 1, out.started_at, began, error, deliveries=deliveries)
        out.fail("source", reason, error)
        await self._notify(out, plan, step, "source", error, 1, None)
        if plan.dead_letter:
            await self._dead_letter(out, plan, original, None)
        out.duration = _clock() - began
        self._finish(out, plan)
        return out

    def _finish(self, out: Outcome, plan: FlowPlan) -> None:
        bus = self.orch._bus
        if out.status == "failed":
            log.warning(
                "flow %r: message %r failed (%s)%s: %s", out.flow_id, out.message_id, out.reason,
                ", dead-lettered" if out.dead_lettered else "", out.error,
            )
        if bus:
            now = _now()
            endpoints = (*out.sources, *dict.fromkeys([*out.routed_to, *out.delivered_to]))
            transformations = tuple(out.transformations)
            if out.status == "completed":
                bus.emit(FlowMessageDelivered(
                    out.run_id, now, out.flow_id, out.message_id, tuple(out.delivered_to),
                    out.duration, endpoints, transformations,
                ))
            else:
                bus.emit(FlowMessageFailed(
                    out.run_id, now, out.flow_id, out.message_id, out.error or "", out.duration,
                    endpoints, transformations,
                ))
