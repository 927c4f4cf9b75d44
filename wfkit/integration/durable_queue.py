"""A durable message queue with topics, in one SQL table (a SQLite file by default).

The semantics are those of SQS-style queues: ``consume`` leases messages for a visibility
timeout (they are invisible to other consumers meanwhile), ``ack`` deletes a leased message,
``release`` makes it visible again (after an optional delay), and a message whose lease runs
out without an ack is delivered again, with ``deliveries`` counting how often. Several
processes may share one queue file: leasing is a single ``UPDATE ... RETURNING`` statement
(with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a message is leased to one consumer at a
time. ``(topic, message_id)`` is unique among unacknowledged messages, so publishing the same
message twice (a redelivered flow) queues it once.

Messages are JSON objects; ``datetime``/``date`` become ISO strings, ``Decimal`` a float,
``UUID`` a string, sets and tuples lists.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wfkit.clock import SYSTEM, Clock
from wfkit.errors import ArgumentError
from wfkit.integration.database import Batched, Database, quick

__all__ = ["DurableQueue", "QueueMessage", "dumps", "loads"]

DEFAULT_TABLE = "wfkit_queue"


def _default(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise ArgumentError(
        f"{type(value).__name__} is not JSON serializable: send dicts, lists, strings, "
        f"numbers, dates, decimals or UUIDs (convert other objects first)"
    )


def dumps(value: Any) -> str:
    """JSON text for a message (compact; see the module docstring for extra types)."""
    return json.dumps(value, separators=(",", ":"), default=_default, ensure_ascii=False)


loads = json.loads


@dataclass(slots=True)
class QueueMessage:
    """A leased message. ``body`` is the decoded JSON; ``raw`` the stored text."""

    id: int
    topic: str
    message_id: str
    body: Any
    deliveries: int
    lease: str
    enqueued_at: float
    raw: str = field(repr=False, default="")


class DurableQueue:
    """Publish, consume with leases, acknowledge; see the module docstring.

    ``clock`` gives the UNIX time that visibility and enqueue times are stored in (replace it
    with a :class:`wfkit.clock.ManualClock` to step through leases without waiting).
    """

    def __init__(self, db: Database, table: str = DEFAULT_TABLE, *, clock: Clock = SYSTEM) -> None:
        from sqlalchemy import (
            BigInteger,
            Column,
            Float,
            Index,
            Integer,
            MetaData,
            String,
            Table,
            Text,
            UniqueConstraint,
        )

        from wfkit.integration.endpoints.base import check_identifier

        self.db = db
        self.clock = clock
        self.table_name = check_identifier(table, "queue table")
        self.metadata = MetaData()
        self.table = Table(
            table,
            self.metadata,
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
            Column("topic", String(255), nullable=False),
            Column("message_id", String(255), nullable=False),
            Column("body", Text, nullable=False),
            Column("enqueued_at", Float, nullable=False),
            Column("visible_at", Float, nullable=False),
            Column("deliveries", Integer, nullable=False, default=0),
            Column("lease", String(64), nullable=True),
            UniqueConstraint("topic", "message_id", name=f"{table}_topic_message_id"),
            # leasing walks a topic in id order and stops after n visible rows: O(n), where an
            # index on visible_at would have to sort every visible message of the topic
            Index(f"{table}_order", "topic", "id"),
        )
        self._ready = False
        self._build_statements()

    def __repr__(self) -> str:
        return f"DurableQueue({self.db!r}, table={self.table_name!r})"

    # -- statements (built once; SQLAlchemy caches their compiled form) ------------------------

    def _build_statements(self) -> None:
        from sqlalchemy import Integer, bindparam, delete, func, select, update

        t = self.table
        pick = (
            select(t.c.id)
            .where(t.c.topic == bindparam("q_topic"), t.c.visible_at <= bindparam("q_now"))
            .order_by(t.c.id)
            .limit(bindparam("q_n", type_=t.c.deliveries.type))
        )
        if self.db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        self._lease = (
            update(t)
            .where(t.c.id.in_(pick.scalar_subquery()))
            .values(
                visible_at=bindparam("q_until"),
                deliveries=t.c.deliveries + 1,
                lease=bindparam("q_lease"),
            )
            .returning(t.c.id, t.c.message_id, t.c.body, t.c.deliveries, t.c.enqueued_at)
        )
        self._claim = (
            update(t)
            .where(
                t.c.topic == bindparam("q_topic"),
                t.c.id.in_(bindparam("q_ids", expanding=True)),
                t.c.visible_at <= bindparam("q_now"),
            )
            .values(
                visible_at=bindparam("q_until"),
                deliveries=t.c.deliveries + 1,
                lease=bindparam("q_lease"),
            )
            .returning(t.c.id, t.c.message_id, t.c.body, t.c.deliveries, t.c.enqueued_at)
        )
        self._ack = delete(t).where(t.c.id == bindparam("mid"), t.c.lease == bindparam("mlease"))
        self._release = (
            update(t)
            .where(t.c.id == bindparam("mid"), t.c.lease == bindparam("mlease"))
            .values(visible_at=bindparam("q_at"), lease=None)
        )
        self._extend = (
            update(t)
            .where(t.c.id == bindparam("mid"), t.c.lease == bindparam("mlease"))
            .values(visible_at=bindparam("q_until"))
        )
        self._count = select(
            func.count(),
            func.coalesce(func.sum((t.c.visible_at <= bindparam("q_now")).cast(Integer)), 0),
        ).where(t.c.topic == bindparam("q_topic"))
        dialect_insert: Any
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif self.db.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:  # pragma: no cover - other databases: plain insert, duplicates raise
            from sqlalchemy import insert as dialect_insert
        stmt = dialect_insert(t)
        if hasattr(stmt, "on_conflict_do_nothing"):
            stmt = stmt.on_conflict_do_nothing(index_elements=["topic", "message_id"])
        self._publish = stmt.returning(t.c.id)  # rowcount is unreliable with ON CONFLICT

    def _ensure(self, conn: Any) -> None:
        if not self._ready:
            self.metadata.create_all(conn, checkfirst=True)
            self._ready = True

    # -- operations -----------------------------------------------------------------------------

    def _rows_to_messages(self, topic: str, rows: Iterable[Any], lease: str) -> list[QueueMessage]:
        out = [
            QueueMessage(r.id, topic, r.message_id, loads(r.body), r.deliveries, lease,
                         r.enqueued_at, r.body)
            for r in rows
        ]
        out.sort(key=lambda m: m.id)
        return out

    def _publish_rows(
        self, topic: str, bodies: Iterable[Any], message_ids: Iterable[str | None] | None, delay: float
    ) -> list[dict[str, Any]]:
        now = self.clock.time()
        ids = list(message_ids) if message_ids is not None else None
        rows = []
        for i, body in enumerate(bodies):
            mid = ids[i] if ids is not None and ids[i] is not None else uuid.uuid4().hex
            rows.append(
                {
                    "topic": topic,
                    "message_id": str(mid),
                    "body": dumps(body),
                    "enqueued_at": now,
                    "visible_at": now + delay,
                    "deliveries": 0,
                    "lease": None,
                }
            )
        return rows

    async def publish(
        self, topic: str, body: Any, *, message_id: str | None = None, delay: float = 0.0
    ) -> bool:
        """Queue one message; False when ``(topic, message_id)`` is already queued."""
        (row,) = self._publish_rows(topic, [body], [message_id], delay)

        @quick
        def op(conn: Any) -> bool:
            self._ensure(conn)
            return conn.execute(self._publish, row).first() is not None

        return await self.db.submit(op)

    async def publish_many(
        self,
        topic: str,
        bodies: Iterable[Any],
        *,
        message_ids: Iterable[str | None] | None = None,
        delay: float = 0.0,
    ) -> int:
        """Queue many messages in one transaction; returns how many were new."""
        rows = self._publish_rows(topic, bodies, message_ids, delay)

        def op(conn: Any) -> int:
            self._ensure(conn)
            if not rows:
                return 0
            return len(conn.execute(self._publish, rows).all())

        return await self.db.submit(op)

    async def consume(
        self, topic: str, max_messages: int = 1, *, visibility_timeout: float = 30.0
    ) -> list[QueueMessage]:
        """Lease up to ``max_messages`` visible messages, oldest first."""
        return await self._take(self._lease, topic, {"q_n": max_messages}, visibility_timeout)

    async def claim(
        self, topic: str, ids: Iterable[int], *, visibility_timeout: float = 30.0
    ) -> list[QueueMessage]:
        """Lease the given (visible) messages by id."""
        ids = list(ids)
        if not ids:
            return []
        return await self._take(self._claim, topic, {"q_ids": ids}, visibility_timeout)

    async def _take(
        self, statement: Any, topic: str, params: dict[str, Any], visibility_timeout: float
    ) -> list[QueueMessage]:
        """Run a leasing ``statement`` (consume's or claim's) under a new lease id."""
        lease = uuid.uuid4().hex

        @quick
        def op(conn: Any) -> list[QueueMessage]:
            self._ensure(conn)
            now = self.clock.time()
            rows = conn.execute(
                statement,
                {**params, "q_topic": topic, "q_now": now,
                 "q_until": now + visibility_timeout, "q_lease": lease},
            ).all()
            return self._rows_to_messages(topic, rows, lease)

        return await self.db.submit(op)

    async def ack(self, message: QueueMessage) -> bool:
        """Delete a leased message; False when its lease was lost (it will be redelivered)."""
        params = {"mid": message.id, "mlease": message.lease}
        statement = self._ack
        return await self.db.submit(Batched(
            statement, params, lambda conn: bool(conn.execute(statement, params).rowcount), True
        ))

    async def release(self, message: QueueMessage, *, delay: float = 0.0) -> bool:
        """Give a leased message back: visible again after ``delay`` seconds."""
        params = {"mid": message.id, "mlease": message.lease, "q_at": self.clock.time() + delay}
        return await self.db.submit(
            quick(lambda conn: bool(conn.execute(self._release, params).rowcount))
        )

    async def release_many(self, messages: Iterable[QueueMessage], *, delay: float = 0.0) -> int:
        at = self.clock.time() + delay
        params = [{"mid": m.id, "mlease": m.lease, "q_at": at} for m in messages]
        if not params:
            return 0
        return await self.db.submit(quick(lambda conn: int(conn.execute(self._release, params).rowcount)))

    async def extend(self, messages: Iterable[QueueMessage], visibility_timeout: float) -> int:
        """Push the leases of ``messages`` out to now + ``visibility_timeout``."""
        until = self.clock.time() + visibility_timeout
        params = [{"mid": m.id, "mlease": m.lease, "q_until": until} for m in messages]
        if not params:
            return 0
        return await self.db.submit(quick(lambda conn: int(conn.execute(self._extend, params).rowcount)))

    def _counts(self, conn: Any, topic: str) -> dict[str, int]:
        self._ensure(conn)
        total, visible = conn.execute(self._count, {"q_topic": topic, "q_now": self.clock.time()}).one()
        return {"total": int(total), "visible": int(visible), "leased": int(total) - int(visible)}

    async def stats(self, topic: str) -> dict[str, int]:
        """``total`` unacknowledged messages, how many are ``visible`` and how many ``leased``
        (or waiting out a release delay)."""
        return await self.db.submit(quick(lambda conn: self._counts(conn, topic)))

    def peek(self, topic: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The unacknowledged messages of ``topic`` without leasing them (blocking)."""
        from sqlalchemy import select

        t = self.table
        stmt = select(t).where(t.c.topic == topic).order_by(t.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)

        def op(conn: Any) -> list[dict[str, Any]]:
            self._ensure(conn)
            rows = conn.execute(stmt).mappings().all()
            return [{**row, "body": loads(row["body"])} for row in rows]

        return self.db.run_sync(op)
