"""The dead-letter channel: where messages go that could not be delivered.

A dead letter keeps the *original* message, the reason (``"no route"``, ``"transformation
't' failed"``, ``"delivery to 'a' failed"``, ...), the error text (secrets masked), the stage it
failed in and, for delivery failures, the processed message and the targets that did not get
it, so a replay can resend just those. Two channels exist: the orchestrator's built-in
:class:`DeadLetterStore` (one SQL table; a SQLite file by default) and any
``message_queue`` endpoint, which receives the same letter as a JSON envelope.

A message dead-lettered again before it was replayed (a redelivery after a crash) updates its
pending letter instead of adding a second one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from wfkit.integration.database import Database, quick
from wfkit.integration.durable_queue import dumps, loads

__all__ = ["DeadLetterStore", "letter", "FRAME_COLUMNS"]

DEFAULT_TABLE = "wfkit_dead_letters"
FRAME_COLUMNS = [
    "dead_letter_id",
    "flow_id",
    "message_id",
    "reason",
    "error",
    "stage",
    "failed_targets",
    "message",
    "processed_data",
    "dead_lettered_at",
    "times",
    "replayed_at",
    "replay_status",
    "channel",
]


def letter(
    *,
    flow_id: str,
    message_id: str,
    run_id: str,
    reason: str,
    error: str | None,
    stage: str,
    message: Any,
    processed: Any = None,
    failed_targets: Iterable[str] = (),
) -> dict[str, Any]:
    """A dead letter as a plain dict (the queue channel's envelope)."""
    return {
        "flow_id": flow_id,
        "message_id": message_id,
        "run_id": run_id,
        "reason": reason,
        "error": error,
        "stage": stage,
        "failed_targets": list(failed_targets),
        "message": message,
        "processed_data": processed,
        "dead_lettered_at": time.time(),
    }


class DeadLetterStore:
    """Dead letters in one SQL table, written through the group-committing :class:`Database`."""

    def __init__(self, db: Database, table: str = DEFAULT_TABLE) -> None:
        import sqlalchemy as sa

        self.db = db
        self.metadata = sa.MetaData()
        self.table = sa.Table(
            table,
            self.metadata,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
            sa.Column("flow_id", sa.String(255), nullable=False),
            sa.Column("message_id", sa.String(255), nullable=False),
            sa.Column("run_id", sa.String(64)),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("stage", sa.String(32)),
            sa.Column("failed_targets", sa.Text),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("processed", sa.Text),
            sa.Column("dead_lettered_at", sa.Float, nullable=False),
            sa.Column("times", sa.Integer, nullable=False, default=1),
            sa.Column("replayed_at", sa.Float),
            sa.Column("replay_status", sa.String(32)),
            sa.Index(f"{table}_flow", "flow_id", "replayed_at", "id"),
        )
        self._ready = False

    def __repr__(self) -> str:
        return f"DeadLetterStore({self.db!r})"

    def _ensure(self, conn: Any) -> None:
        if not self._ready:
            self.metadata.create_all(conn, checkfirst=True)
            self._ready = True

    async def add(self, dead: dict[str, Any]) -> int:
        """Store a letter (see :func:`letter`); returns its id. Durable when this returns."""
        import sqlalchemy as sa

        t = self.table
        values = {
            "flow_id": dead["flow_id"],
            "message_id": dead["message_id"],
            "run_id": dead["run_id"],
            "reason": dead["reason"],
            "error": dead["error"],
            "stage": dead["stage"],
            "failed_targets": dumps(dead["failed_targets"]),
            "message": dumps(dead["message"]),
            "processed": None if dead["processed_data"] is None else dumps(dead["processed_data"]),
            "dead_lettered_at": dead["dead_lettered_at"],
        }

        @quick
        def op(conn: Any) -> int:
            self._ensure(conn)
            existing = conn.execute(
                sa.select(t.c.id).where(
                    t.c.flow_id == values["flow_id"],
                    t.c.message_id == values["message_id"],
                    t.c.replayed_at.is_(None),
                )
            ).first()
            if existing is not None:
                conn.execute(
                    sa.update(t).where(t.c.id == existing.id).values(times=t.c.times + 1, **values)
                )
                return int(existing.id)
            return int(conn.execute(sa.insert(t).values(times=1, **values)).inserted_primary_key[0])

        return await self.db.submit(op)

    def _select(self, flow_id: str | None, include_replayed: bool, limit: int | None) -> Any:
        import sqlalchemy as sa

        t = self.table
        stmt = sa.select(t).order_by(t.c.id)
        if flow_id is not None:
            stmt = stmt.where(t.c.flow_id == flow_id)
        if not include_replayed:
            stmt = stmt.where(t.c.replayed_at.is_(None))
        if limit is not None:
            stmt = stmt.limit(limit)
        return stmt

    @staticmethod
    def _decode(row: Any) -> dict[str, Any]:
        return {
            "dead_letter_id": row["id"],
            "flow_id": row["flow_id"],
            "message_id": row["message_id"],
            "run_id": row["run_id"],
            "reason": row["reason"],
            "error": row["error"],
            "stage": row["stage"],
            "failed_targets": loads(row["failed_targets"] or "[]"),
            "message": loads(row["message"]),
            "processed_data": None if row["processed"] is None else loads(row["processed"]),
            "dead_lettered_at": row["dead_lettered_at"],
            "times": row["times"],
            "replayed_at": row["replayed_at"],
            "replay_status": row["replay_status"],
            "channel": "store",
        }

    def _read(
        self, flow_id: str | None, include_replayed: bool, limit: int | None
    ) -> Callable[[Any], list[dict[str, Any]]]:
        """The operation that reads the selected letters, decoded."""
        stmt = self._select(flow_id, include_replayed, limit)

        def op(conn: Any) -> list[dict[str, Any]]:
            self._ensure(conn)
            return [self._decode(r) for r in conn.execute(stmt).mappings()]

        return op

    def rows(
        self, flow_id: str | None = None, *, include_replayed: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The letters, oldest first (blocking read)."""
        return self.db.run_sync(self._read(flow_id, include_replayed, limit))

    async def pending(self, flow_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Letters of ``flow_id`` not replayed yet, oldest first."""
        return await self.db.submit(self._read(flow_id, False, limit))

    async def mark(self, dead_letter_id: int, status: str, *, reopen: bool = False) -> None:
        """Record a replay of one letter; ``reopen`` puts it back among the pending ones."""
        import sqlalchemy as sa

        t = self.table
        stmt = (
            sa.update(t)
            .where(t.c.id == dead_letter_id)
            .values(replayed_at=None if reopen else time.time(), replay_status=status)
        )
        await self.db.submit(lambda conn: conn.execute(stmt))

    async def resolve(self, flow_id: str, message_id: str, status: str) -> int:
        """Close the pending letter of a message that has now been handled another way."""
        import sqlalchemy as sa

        t = self.table
        stmt = (
            sa.update(t)
            .where(t.c.flow_id == flow_id, t.c.message_id == message_id, t.c.replayed_at.is_(None))
            .values(replayed_at=time.time(), replay_status=status)
        )

        def op(conn: Any) -> int:
            self._ensure(conn)
            return int(conn.execute(stmt).rowcount)

        return await self.db.submit(op)
