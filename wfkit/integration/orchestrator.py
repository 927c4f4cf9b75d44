"""The public face of integration flows: register endpoints and transformations, create flows,
execute messages one at a time or drain a queue, inspect and replay dead letters.

The orchestrator owns the shared resources: one pooled ``httpx.AsyncClient`` (created on first
use, closed by :meth:`IntegrationOrchestrator.aclose`), one engine and database thread per
database URL, and the built-in dead-letter store (a SQLite file, created on first use).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from wfkit.clock import SYSTEM, Clock
from wfkit.errors import ClosedError, IntegrationConfigError, UnknownFlowError
from wfkit.events import Event, EventBus, FlowMessageDelivered, FlowMessageFailed
from wfkit.integration.database import Database, normalize_url
from wfkit.integration.deadletter import FRAME_COLUMNS, DeadLetterStore
from wfkit.integration.durable_queue import DEFAULT_TABLE, DurableQueue
from wfkit.integration.endpoints import Endpoint, build_endpoint
from wfkit.integration.model import (
    DataTransformation,
    IntegrationEndpoint,
    IntegrationFlow,
    RegisteredId,
)
from wfkit.integration.plan import STORE, FlowPlan, compile_flow
from wfkit.integration.processing import FlowResult, MessageProcessor
from wfkit.integration.streaming import run_stream
from wfkit.integration.transform import CompiledTransformation
from wfkit.lifecycle import Closing
from wfkit.redaction import Redactor, guard_library_logs

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from wfkit.integration.endpoints.queue import QueueEndpoint

__all__ = ["IntegrationOrchestrator", "DEFAULT_DEAD_LETTER_STORE"]

log = logging.getLogger("wfkit.integration")


def _record_flow(record: Callable[..., Any], e: Event) -> None:
    """The document's call for one message that ended (a subscriber of the orchestrator)."""
    if isinstance(e, FlowMessageDelivered | FlowMessageFailed):
        try:
            record(e.flow_id, list(e.endpoints or ()), list(e.transformations or ()),
                   isinstance(e, FlowMessageDelivered))
        except Exception:
            log.exception("flow %r: metrics.record_integration_flow failed", e.flow_id)

DEFAULT_DEAD_LETTER_STORE = "wfkit-dead-letters.sqlite"


class IntegrationOrchestrator(Closing):
    """Moves messages between real systems along :class:`IntegrationFlow`\\ s.

    ``metrics``: an :class:`~wfkit.AdvancedWorkflowMetrics`, attached (it records every
    message from the events), or anything with ``record_integration_flow``, which is called
    once per message with its endpoints and transformations (its ``attach(self)`` too, if it
    has one).
    ``dead_letter_store``: where ``dead_letter: True`` flows keep their letters (a SQLAlchemy
    URL or a SQLite file path; default ``wfkit-dead-letters.sqlite`` in the working directory,
    created on first use). ``http_client``: an ``httpx.AsyncClient`` to use instead of the
    orchestrator's own (it is then not closed by :meth:`aclose`). ``clock``: the time its
    queues store and the streaming mode waits on (:data:`wfkit.clock.SYSTEM`; a
    :class:`wfkit.clock.ManualClock` steps through leases and retries without waiting).
    ``sleep``: the coroutine used to wait between retries (``clock.sleep`` unless given).
    """

    def __init__(
        self,
        *,
        metrics: Any = None,
        dead_letter_store: str | os.PathLike[str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.endpoints: dict[str, IntegrationEndpoint] = {}
        self.transformations: dict[str, DataTransformation] = {}
        self.flows: dict[str, IntegrationFlow] = {}
        self.redactor = Redactor()
        guard_library_logs(self.redactor)
        self._endpoints: dict[str, Endpoint] = {}
        self._transformations: dict[str, CompiledTransformation] = {}
        self._plans: dict[str, FlowPlan] = {}
        self._bus = EventBus()
        self.clock = clock
        self._sleep = sleep or clock.sleep
        self._http = http_client
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._owns_http = http_client is None
        self._databases: dict[str, Database] = {}
        self._queues: dict[tuple[str, str], DurableQueue] = {}
        self._dead_letter_url = normalize_url(
            dead_letter_store if dead_letter_store is not None else DEFAULT_DEAD_LETTER_STORE,
            what="dead_letter_store",
        )
        self.redactor.add_config({"url": self._dead_letter_url})
        self._store: DeadLetterStore | None = None
        self._processor = MessageProcessor(self)
        self._closed = False
        self.metrics = metrics
        if metrics is not None:
            self._attach_metrics(metrics)

    def _attach_metrics(self, metrics: Any) -> None:
        """Metrics learn of messages from the events: one that records them itself (the
        recorder: ``records_flow_events``) once attached, any other object with the document's
        ``record_integration_flow`` through a subscriber calling it."""
        if callable(getattr(metrics, "attach", None)):
            metrics.attach(self)
        if getattr(metrics, "records_flow_events", False):
            return
        record = getattr(metrics, "record_integration_flow", None)
        if callable(record):
            self.subscribe(partial(_record_flow, record))

    def __repr__(self) -> str:
        return (
            f"<IntegrationOrchestrator: {len(self.endpoints)} endpoints, "
            f"{len(self.transformations)} transformations, {len(self.flows)} flows>"
        )

    # -- shared resources (the endpoints' Resources protocol) -----------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """The pooled client (made on first use, and again if its event loop has closed, as
        between two ``wfkit.run_sync`` calls of a script)."""
        if self._http is not None and self._owns_http:
            loop = self._http_loop
            if loop is not None and loop.is_closed():
                self._http = None  # its connections died with their loop
        if self._http is None:
            import httpx

            guard_library_logs(self.redactor)  # again: a logging config may have reset them

            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                follow_redirects=False,  # "api" endpoints follow redirects themselves
            )
            self._owns_http = True
            try:
                self._http_loop = asyncio.get_running_loop()
            except RuntimeError:
                self._http_loop = None
        return self._http

    def database(self, url: str) -> Database:
        if self._closed:
            raise ClosedError("this IntegrationOrchestrator")
        db = self._databases.get(url)
        if db is None:
            db = self._databases[url] = Database(url)
        return db

    def queue(self, url: str, table: str = DEFAULT_TABLE) -> DurableQueue:
        key = (url, table)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = DurableQueue(self.database(url), table, clock=self.clock)
        return queue

    def dead_letter_store(self) -> DeadLetterStore:
        """The built-in dead-letter store (its SQLite file is created on first use)."""
        if self._store is None:
            self._store = DeadLetterStore(self.database(self._dead_letter_url))
        return self._store

    # -- registration ----------------------------------------------------------------------------

    def register_endpoint(self, endpoint: IntegrationEndpoint) -> RegisteredId:
        """Check and register an endpoint (replacing one with the same id); returns its id."""
        adapter = build_endpoint(endpoint, self)
        self.redactor.add_config(endpoint.connection_config)
        self.endpoints[endpoint.endpoint_id] = endpoint
        self._endpoints[endpoint.endpoint_id] = adapter
        self._plans.clear()  # flows are checked again, against the new endpoint, on next use
        return RegisteredId(endpoint.endpoint_id)

    def register_transformation(self, transformation: DataTransformation) -> RegisteredId:
        """Check (schemas included) and register a transformation; returns its id."""
        if not isinstance(transformation, DataTransformation):
            raise IntegrationConfigError(
                f"register_transformation() needs a DataTransformation, "
                f"got {type(transformation).__name__}"
            )
        compiled = CompiledTransformation(transformation)
        self.transformations[compiled.transformation_id] = transformation
        self._transformations[compiled.transformation_id] = compiled
        self._plans.clear()
        return RegisteredId(compiled.transformation_id)

    def create_flow(self, flow: IntegrationFlow) -> RegisteredId:
        """Check a flow against what is registered and keep it; returns its id.

        Unknown endpoint or transformation ids, an endpoint in a role it cannot play, a
        malformed routing rule or bad error handling raise here, before any message moves.
        """
        plan = compile_flow(flow, self._endpoints, self._transformations)
        self.flows[plan.flow_id] = flow
        self._plans[plan.flow_id] = plan
        return RegisteredId(plan.flow_id)

    def _plan(self, flow_id: str) -> FlowPlan:
        plan = self._plans.get(flow_id)
        if plan is None:
            flow = self.flows.get(flow_id)
            if flow is None:
                raise UnknownFlowError(flow_id, self.flows)
            plan = self._plans[flow_id] = compile_flow(flow, self._endpoints, self._transformations)
        return plan

    def subscribe(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every flow event; returns a function that unsubscribes."""
        return self._bus.subscribe(callback)

    # -- running ----------------------------------------------------------------------------------

    async def execute_flow(
        self, flow_id: str, input_data: Mapping[str, Any], *, message_id: str | None = None
    ) -> FlowResult:
        """Run one message through a flow.

        Returns ``flow_id``, ``status`` (``"completed"`` or ``"failed"``), ``processed_data``,
        ``error``, ``reason``, ``routed_to``, ``delivered_to``, ``dead_lettered``, ``retries``,
        ``execution_time``, ``message_id``, ``run_id`` and ``trace`` (one entry per step:
        ``step``, ``kind``, ``status``, ``attempts``, ``duration``, ``error``). Endpoint
        failures do not raise: they are in the result (and the dead-letter channel).
        """
        plan = self._plan(flow_id)
        if not isinstance(input_data, Mapping):
            raise IntegrationConfigError(
                f"execute_flow({flow_id!r}, input_data): input_data must be a dict, "
                f"got {type(input_data).__name__}",
                flow_id=flow_id,
            )
        data = copy.deepcopy(dict(input_data))
        outcome = await self._processor.process(
            plan,
            data,
            message_id=str(message_id) if message_id is not None else uuid.uuid4().hex,
            run_id=uuid.uuid4().hex,
            original=input_data,
        )
        return outcome.result()

    async def run_flow(
        self,
        flow_id: str,
        *,
        concurrency: int = 8,
        limit: int | None = None,
        idle_timeout: float = 0.0,
        poll_interval: float = 0.05,
    ) -> dict[str, Any]:
        """Drain the flow's ``message_queue`` source with at most ``concurrency`` messages at once.

        Stops after ``limit`` messages, or when no message is visible; with ``idle_timeout`` it
        keeps polling for up to that many seconds without a new message, for as long as the
        topic still holds messages leased elsewhere (for example by a crashed process, whose
        leases run out). Returns ``consumed``, ``delivered``, ``retried`` (extra attempts),
        ``dead_lettered``, ``failed``, ``redelivered``, ``duration`` and ``throughput``.
        """
        return await run_stream(
            self,
            self._plan(flow_id),
            concurrency=concurrency,
            limit=limit,
            idle_timeout=idle_timeout,
            poll_interval=poll_interval,
        )

    def _queue_endpoint(self, endpoint_id: str) -> QueueEndpoint:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None or endpoint.TYPE != "message_queue":
            kind = "no endpoint" if endpoint is None else f"a {endpoint.TYPE} endpoint"
            raise IntegrationConfigError(
                f"{endpoint_id!r} is {kind}; name a registered message_queue endpoint",
                endpoint_id=endpoint_id,
            )
        return endpoint  # type: ignore[return-value]

    async def publish(
        self,
        endpoint_id: str,
        messages: Mapping[str, Any] | Iterable[Mapping[str, Any]],
        *,
        message_ids: Iterable[str] | None = None,
    ) -> int:
        """Put one message (a dict) or many on a queue endpoint's topic; returns how many were new."""
        endpoint = self._queue_endpoint(endpoint_id)
        batch = [messages] if isinstance(messages, Mapping) else list(messages)
        return await endpoint.queue.publish_many(endpoint.topic, batch, message_ids=message_ids)

    async def queue_stats(self, endpoint_id: str) -> dict[str, int]:
        """``total``, ``visible`` and ``leased`` messages on a queue endpoint's topic."""
        endpoint = self._queue_endpoint(endpoint_id)
        return await endpoint.queue.stats(endpoint.topic)

    # -- dead letters ----------------------------------------------------------------------------

    def _dead_letter_rows(self, flow_id: str | None, include_replayed: bool) -> list[dict[str, Any]]:
        plans = [self._plan(flow_id)] if flow_id is not None else [
            self._plan(f) for f in self.flows
        ]
        rows: list[dict[str, Any]] = []
        use_store = flow_id is None or any(p.dead_letter == STORE for p in plans)
        if use_store and (self._store is not None or self._store_exists()):
            rows.extend(self.dead_letter_store().rows(flow_id, include_replayed=include_replayed))
        channels = dict.fromkeys(p.dead_letter for p in plans if p.dead_letter not in (None, STORE))
        for channel in channels:
            endpoint = self._queue_endpoint(channel)
            for item in endpoint.queue.peek(endpoint.topic):
                body = item["body"]
                if not isinstance(body, Mapping) or (flow_id is not None and body.get("flow_id") != flow_id):
                    continue
                rows.append({
                    "dead_letter_id": item["id"],
                    "flow_id": body.get("flow_id"),
                    "message_id": body.get("message_id"),
                    "run_id": body.get("run_id"),
                    "reason": body.get("reason"),
                    "error": body.get("error"),
                    "stage": body.get("stage"),
                    "failed_targets": body.get("failed_targets") or [],
                    "message": body.get("message"),
                    "processed_data": body.get("processed_data"),
                    "dead_lettered_at": body.get("dead_lettered_at"),
                    "times": 1,  # each failure is its own envelope on a queue channel
                    "replayed_at": None,
                    "replay_status": None,
                    "channel": channel,
                })
        return rows

    def _store_exists(self) -> bool:
        url = self._dead_letter_url
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
            return bool(path) and path != ":memory:" and os.path.exists(path)
        return True

    def dead_letters_frame(
        self, flow_id: str | None = None, *, include_replayed: bool = False
    ) -> pd.DataFrame:
        """The dead letters of a flow (or of all flows) as a DataFrame, oldest first.

        Columns: ``dead_letter_id``, ``flow_id``, ``message_id``, ``reason``, ``error``,
        ``stage``, ``failed_targets``, ``message`` (the original), ``processed_data``,
        ``dead_lettered_at`` (UTC), ``times``, ``replayed_at``, ``replay_status``, ``channel``
        (``"store"`` or the queue endpoint's id). Replayed letters are left out unless
        ``include_replayed``.
        """
        import pandas as pd

        rows = self._dead_letter_rows(flow_id, include_replayed)
        frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
        for column in ("dead_lettered_at", "replayed_at"):
            frame[column] = pd.to_datetime(frame[column].astype("float64"), unit="s", utc=True)
        frame["times"] = frame["times"].astype("int64")
        return frame

    def dead_letters(self, flow_id: str | None = None, *, include_replayed: bool = False) -> pd.DataFrame:
        """:meth:`dead_letters_frame` under its first name."""
        return self.dead_letters_frame(flow_id, include_replayed=include_replayed)

    async def replay_dead_letters(self, flow_id: str, *, limit: int | None = None) -> dict[str, Any]:
        """Run a flow's dead letters again (same message ids, so idempotent targets stay exact).

        A letter from a delivery failure goes, as processed then, only to the targets that
        missed it; any other letter runs through the whole flow from its original message.
        Returns ``replayed``, ``delivered``, ``dead_lettered`` (again), ``failed`` and the
        per-letter ``results``.
        """
        plan = self._plan(flow_id)
        run_id = uuid.uuid4().hex
        summary: dict[str, Any] = {"replayed": 0, "delivered": 0, "dead_lettered": 0, "failed": 0,
                                   "results": []}
        if plan.dead_letter == STORE or (plan.dead_letter is None and self._store_exists()):
            store = self.dead_letter_store()
            for dead in await store.pending(flow_id, limit=limit):
                await store.mark(dead["dead_letter_id"], "replaying")
                outcome = await self._replay_one(plan, dead, run_id)
                status = "delivered" if outcome["status"] == "completed" else (
                    "dead_lettered" if outcome["dead_lettered"] else None
                )
                await store.mark(dead["dead_letter_id"], status or "failed", reopen=status is None)
                self._count_replay(summary, outcome)
        if plan.dead_letter not in (None, STORE):
            endpoint = self._queue_endpoint(plan.dead_letter)
            ids = [
                item["id"] for item in endpoint.queue.peek(endpoint.topic)
                if isinstance(item["body"], Mapping) and item["body"].get("flow_id") == flow_id
            ][:limit]
            for message in await endpoint.queue.claim(
                endpoint.topic, ids, visibility_timeout=endpoint.visibility_timeout
            ):
                outcome = await self._replay_one(plan, message.body, run_id)
                if outcome["status"] == "completed" or outcome["dead_lettered"]:
                    await endpoint.queue.ack(message)
                else:
                    await endpoint.queue.release(message)
                self._count_replay(summary, outcome)
        return summary

    async def _replay_one(
        self, plan: FlowPlan, dead: Mapping[str, Any], run_id: str
    ) -> FlowResult:
        targets = tuple(t for t in dead.get("failed_targets") or () if t in self._endpoints)
        if dead.get("stage") == "delivery" and targets and dead.get("processed_data") is not None:
            outcome = await self._processor.process(
                plan, copy.deepcopy(dead["processed_data"]), message_id=dead["message_id"],
                run_id=run_id, original=dead["message"], resume_targets=targets,
            )
        else:
            message = dead.get("message")
            data = copy.deepcopy(message) if isinstance(message, dict) else {"value": message}
            outcome = await self._processor.process(
                plan, data, message_id=dead["message_id"], run_id=run_id, original=message,
            )
        return outcome.result()

    @staticmethod
    def _count_replay(summary: dict[str, Any], outcome: FlowResult) -> None:
        summary["replayed"] += 1
        if outcome["status"] == "completed":
            summary["delivered"] += 1
        elif outcome["dead_lettered"]:
            summary["dead_lettered"] += 1
        else:
            summary["failed"] += 1
        summary["results"].append(outcome)

    # -- lifetime ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client (if the orchestrator made it) and every database."""
        if self._closed:
            return
        self._closed = True
        if self._http is not None and self._owns_http:
            loop = self._http_loop
            if loop is None or not loop.is_closed():  # else its connections died with the loop
                await self._http.aclose()
        self._http = None
        databases = list(self._databases.values())
        self._databases.clear()
        for db in databases:
            await asyncio.to_thread(db.close)

    def close(self) -> None:
        """:meth:`aclose` for code without a coroutine at hand (a script, ``with``): the
        databases close at once; the HTTP client closes on its own event loop (now if that
        loop is idle, as soon as it gets control if it is running)."""
        if self._closed:
            return
        self._closed = True
        http, loop = (self._http, self._http_loop) if self._owns_http else (None, None)
        self._http = None
        databases = list(self._databases.values())
        self._databases.clear()
        for db in databases:
            db.close()
        if http is None or loop is None or loop.is_closed():
            return  # never used on a loop, or its connections died with it
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(http.aclose(), loop)
        else:
            loop.run_until_complete(http.aclose())
