"""``"message_queue"`` endpoints: a topic of a durable queue (SQLite file by default).

Config: ``url`` (a SQLAlchemy URL or a SQLite file path; PostgreSQL works too), ``topic``,
``table`` (default ``wfkit_queue``), ``visibility_timeout`` (seconds a consumed message stays
leased before it is redelivered, default 30) and ``max_deliveries`` (a message delivered more
often than this is dead-lettered instead of processed again; default unlimited).

A target publishes the message (keyed by its message id, so a redelivered flow does not queue
it twice); a source is what :meth:`IntegrationOrchestrator.run_flow` drains. As a source in
:meth:`~IntegrationOrchestrator.execute_flow` it does nothing: the input is the message.
"""

from __future__ import annotations

from typing import Any

from wfkit.errors import EndpointError
from wfkit.integration.durable_queue import DEFAULT_TABLE, DurableQueue
from wfkit.integration.endpoints.base import Endpoint, MessageContext
from wfkit.integration.endpoints.sql import classify_db_error, database_url

__all__ = ["QueueEndpoint"]


class QueueEndpoint(Endpoint):
    TYPE = "message_queue"
    KEYS = ("url", "topic", "table", "visibility_timeout", "max_deliveries")
    REQUIRED = ("url", "topic")

    def check(self) -> None:
        super().check()
        cfg = self.config
        self.url, self.safe_url = database_url(self)
        topic = cfg["topic"]
        if not isinstance(topic, str) or len(topic) > 255:
            raise self.fail_config(f"topic must be a string (at most 255 characters), got {topic!r}")
        self.topic = topic
        self.table = self.identifier(cfg.get("table", DEFAULT_TABLE), "table")
        self.visibility_timeout = self.seconds("visibility_timeout", 30.0)
        md = cfg.get("max_deliveries")
        if md is not None and (isinstance(md, bool) or not isinstance(md, int) or md < 1):
            raise self.fail_config(f"max_deliveries must be an int >= 1 or None, got {md!r}")
        self.max_deliveries: int | None = md
        self._queue: DurableQueue | None = None

    @property
    def queue(self) -> DurableQueue:
        if self._queue is None:
            self._queue = self.resources.queue(self.url, self.table)
        return self._queue

    def error(self, exc: Exception, what: str) -> EndpointError:
        if isinstance(exc, EndpointError):
            return exc
        if isinstance(exc, TypeError | ValueError):  # not JSON
            return EndpointError(
                f"endpoint {self.endpoint_id!r}: the message cannot be queued: {exc}",
                endpoint_id=self.endpoint_id,
            )
        return classify_db_error(
            exc,
            endpoint_id=self.endpoint_id,
            where=f"{what} on topic {self.topic!r} of {self.safe_url}",
            redact=self.resources.redactor,
        )

    async def fetch(self, data: dict[str, Any], ctx: MessageContext) -> None:
        return None  # the message itself is what this source supplies

    async def send(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any]:
        self.active()
        try:
            queued = await self.queue.publish(self.topic, data, message_id=ctx.idempotency_key)
        except Exception as exc:
            raise self.error(exc, "publish") from None
        return {"topic": self.topic, "queued": queued}
