"""The streaming mode: drain a flow's queue source with bounded concurrency.

One consumer leases messages in batches and hands them to ``concurrency`` workers through a
bounded inbox; it never holds more than ``2 * concurrency`` leases (one per worker plus a
full inbox), so a slow flow slows consumption instead of piling up leases (backpressure). A message is
acknowledged only after its outcome is durable: delivered (every target committed) or
dead-lettered (the letter committed). A message that failed without a dead-letter channel is
released for redelivery after the visibility timeout. Messages this run holds get their
leases extended while they wait or work, so slow messages are not redelivered under it; if
the process dies, the leases run out and another run picks the messages up again. On
cancellation, messages not finished are released at once.

Invariant (per run): ``consumed == delivered + dead_lettered + failed``; with a dead-letter
channel, ``failed`` stays 0 unless the channel itself fails.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from wfkit.callables import describe_error
from wfkit.errors import IntegrationConfigError, IntegrationError
from wfkit.integration.durable_queue import QueueMessage
from wfkit.integration.plan import STORE, FlowPlan
from wfkit.integration.processing import RawMessage

if TYPE_CHECKING:
    from wfkit.integration.endpoints.queue import QueueEndpoint
    from wfkit.integration.orchestrator import IntegrationOrchestrator

__all__ = ["run_stream"]

log = logging.getLogger("wfkit.integration")
_MAX_CONSUME_ERRORS = 5


async def run_stream(
    orch: IntegrationOrchestrator,
    plan: FlowPlan,
    *,
    concurrency: int = 8,
    limit: int | None = None,
    idle_timeout: float = 0.0,
    poll_interval: float = 0.05,
) -> dict[str, Any]:
    if plan.queue_source is None:
        raise IntegrationConfigError(
            f"flow {plan.flow_id!r} has no message_queue source to drain: add one to "
            f"source_endpoints, or call execute_flow() per message",
            flow_id=plan.flow_id,
            field="source_endpoints",
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise IntegrationConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise IntegrationConfigError(f"limit must be an int >= 0 or None, got {limit!r}")
    source: QueueEndpoint = orch._endpoints[plan.queue_source]  # type: ignore[assignment]
    source.active()
    queue, topic, vt = source.queue, source.topic, source.visibility_timeout
    max_deliveries = source.max_deliveries
    processor = orch._processor
    run_id = uuid.uuid4().hex
    stats = {
        "consumed": 0,
        "delivered": 0,
        "retried": 0,
        "dead_lettered": 0,
        "failed": 0,
        "redelivered": 0,
    }
    inbox: asyncio.Queue[QueueMessage | None] = asyncio.Queue(maxsize=concurrency)
    held: dict[int, QueueMessage] = {}  # leased by this run, not yet acknowledged or released
    most = 2 * concurrency  # leases held at once: one per worker plus a full inbox
    room = asyncio.Event()
    clock = orch.clock
    started_at, began = clock.time(), clock.monotonic()

    async def handle(message: QueueMessage) -> None:
        stats["consumed"] += 1
        if message.deliveries > 1:
            stats["redelivered"] += 1
        original = RawMessage(message.raw)
        if max_deliveries is not None and message.deliveries > max_deliveries:
            outcome = await processor.reject(
                plan,
                message_id=message.message_id,
                run_id=run_id,
                original=original,
                step=source.endpoint_id,
                reason=f"delivered {message.deliveries} times (max_deliveries {max_deliveries})",
                error=f"the message was delivered {message.deliveries} times without being "
                f"acknowledged; max_deliveries is {max_deliveries}",
                deliveries=message.deliveries,
            )
        else:
            body = message.body
            data = body if isinstance(body, dict) else {"value": body}
            now = clock.time()
            step = {
                "step": source.endpoint_id,
                "kind": "source",
                "status": "ok",
                "attempts": 1,
                "duration": 0.0,
                "started_at": now,
                "error": None,
                "deliveries": message.deliveries,
                "queued_for": max(0.0, now - message.enqueued_at),
            }
            outcome = await processor.process(
                plan,
                data,
                message_id=message.message_id,
                run_id=run_id,
                original=original,
                source_step=step,
            )
        stats["retried"] += outcome.retries
        if outcome.status == "completed" or outcome.dead_lettered:
            if not await queue.ack(message):
                log.warning(
                    "flow %r: the lease on message %r ran out before it was acknowledged; it "
                    "will be delivered again (raise visibility_timeout)",
                    plan.flow_id, message.message_id,
                )
            if outcome.status == "completed":
                stats["delivered"] += 1
                if message.deliveries > 1 and plan.dead_letter == STORE:
                    # an earlier delivery may have dead-lettered it before a crash
                    await orch.dead_letter_store().resolve(
                        plan.flow_id, message.message_id, "delivered_on_redelivery"
                    )
            else:
                stats["dead_lettered"] += 1
        else:
            stats["failed"] += 1
            await queue.release(message, delay=vt)

    async def worker() -> None:
        while True:
            message = await inbox.get()
            if message is None:
                return
            try:
                await handle(message)
            except Exception as exc:  # the message stays leased and is redelivered later
                stats["failed"] += 1
                log.error(
                    "flow %r: message %r could not be settled: %s", plan.flow_id,
                    message.message_id, orch.redactor(describe_error(exc)),
                )
            held.pop(message.id, None)  # not on cancellation: then it is released below
            room.set()

    async def keep_leases() -> None:
        while True:
            await clock.sleep(vt / 3)
            if held:
                try:
                    await queue.extend(list(held.values()), vt)
                except Exception as exc:
                    log.warning("flow %r: could not extend leases: %s", plan.flow_id,
                                orch.redactor(describe_error(exc)))

    async def consume() -> None:
        remaining = limit
        idle_since = clock.monotonic()
        errors = 0
        while remaining is None or remaining > 0:
            while len(held) >= most:  # backpressure: lease no more than can be worked on soon
                room.clear()
                await room.wait()
            want = min(concurrency, most - len(held))
            if remaining is not None:
                want = min(want, remaining)
            try:
                batch = await queue.consume(topic, want, visibility_timeout=vt)
            except Exception as exc:
                errors += 1
                text = orch.redactor(describe_error(exc))
                if errors >= _MAX_CONSUME_ERRORS:
                    raise IntegrationError(
                        f"flow {plan.flow_id!r}: consuming topic {topic!r} failed "
                        f"{errors} times in a row: {text}",
                        endpoint_id=source.endpoint_id,
                    ) from None
                log.warning("flow %r: consume failed (%s); trying again", plan.flow_id, text)
                await clock.sleep(poll_interval * 2**errors)
                continue
            errors = 0
            if batch:
                idle_since = clock.monotonic()
                for message in batch:
                    held[message.id] = message
                for message in batch:
                    await inbox.put(message)
                if remaining is not None:
                    remaining -= len(batch)
                continue
            if idle_timeout <= 0 or clock.monotonic() - idle_since >= idle_timeout:
                return
            if not held and (await queue.stats(topic))["total"] == 0:
                return  # drained: nothing leased elsewhere that could come back
            await clock.sleep(poll_interval)

    failure: Exception | None = None
    try:
        async with asyncio.TaskGroup() as group:
            workers = [group.create_task(worker()) for _ in range(concurrency)]
            keeper = group.create_task(keep_leases())
            try:
                await consume()
            except Exception as exc:  # finish what was taken, then report it
                failure = exc
            for _ in workers:
                await inbox.put(None)
            await asyncio.gather(*workers)
            keeper.cancel()
    except BaseException:
        if held:  # cancelled or failed: give unfinished messages back at once
            try:
                await queue.release_many(list(held.values()))
            except Exception as exc:
                log.warning("flow %r: could not release %d messages: %s", plan.flow_id,
                            len(held), orch.redactor(exc))
        raise
    if failure is not None:
        raise failure
    duration = clock.monotonic() - began
    return {
        "flow_id": plan.flow_id,
        "run_id": run_id,
        **stats,
        "started_at": started_at,
        "duration": duration,
        "throughput": stats["consumed"] / duration if duration > 0 else 0.0,
    }
