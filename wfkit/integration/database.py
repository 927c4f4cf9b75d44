"""One SQLAlchemy engine per database URL, driven by one thread, with group commit.

Why one thread: SQLite allows one writer at a time, so parallel writers only add lock waits;
and the event loop must never block on a driver call. Why group commit: every operation an
async caller submits (an insert, an acknowledgement, a lease) is queued; the database thread
takes everything queued so far and runs it in one transaction, so concurrent messages share
one commit; operations that run the same statement (:class:`Batched`: every insert into one
table, every acknowledgement) share one ``executemany``. If that transaction fails, each
operation is re-run alone, so one bad message never fails its neighbours. A caller's future resolves only after the commit: when
``await db.submit(op)`` returns, the work is durable.

On a SQLite file, operations marked :func:`quick` (a lease, an acknowledgement, a one-row
insert: microseconds each) skip the thread: they are collected during one turn of the event
loop and run together on the loop's own connection, which saves two thread hand-offs per batch.
That connection never waits for a lock (``busy_timeout=0``): if another process is writing, or
anything else goes wrong, the batch moves to the database thread, which waits, retries one by
one and reports. Everything else (queries a user wrote, DDL, PostgreSQL) uses the thread.

Invariants: an operation is a function ``op(connection) -> result`` that can be re-run (it is,
when its batch fails); the thread uses pooled connections, the loop only its own one;
``_draining`` is true exactly while a drain job is scheduled or running, guarded by ``_lock``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from wfkit.errors import ClosedError, IntegrationConfigError

__all__ = ["Database", "Batched", "quick", "normalize_url", "MAX_BATCH"]

log = logging.getLogger("wfkit.integration")

T = TypeVar("T")
Op = Callable[[Any], Any]
MAX_BATCH = 512


def normalize_url(url: Any, *, what: str = "url") -> str:
    """A SQLAlchemy URL string; a plain path (or ``PathLike``) means a SQLite file."""
    if isinstance(url, os.PathLike):
        return f"sqlite:///{os.fspath(url)}"
    if not isinstance(url, str) or not url:
        raise IntegrationConfigError(
            f"{what} must be a SQLAlchemy URL such as 'sqlite:///data.db' or "
            f"'postgresql+psycopg://user@host/db' (or a file path), got {url!r}",
            field=what,
        )
    if "://" not in url:
        return f"sqlite:///{url}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from wfkit.redaction import redact_url

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError) as exc:
        raise IntegrationConfigError(
            f"{what} {redact_url(url)!r} cannot be used: {exc}", field=what
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = " (pip install 'wfkit[postgres]')" if "psycopg" in str(exc) else ""
        raise IntegrationConfigError(
            f"{what} {redact_url(url)!r} needs a database driver that is not installed: "
            f"{exc}{hint}",
            field=what,
        ) from None
    return url


class _Regroup(Exception):
    """A shared ``executemany`` did not touch one row per operation: run them one by one."""


def quick(op: Callable[[Any], T]) -> Callable[[Any], T]:
    """Mark ``op`` as a few-row statement that may run inline on a SQLite file."""
    op.quick = True  # type: ignore[attr-defined]
    return op


class Batched:
    """An operation that may share one ``executemany`` with others of the same statement.

    Alone it runs ``single(connection)`` (which returns its exact result); together, the
    statement runs once for all their parameter sets and, when that touched exactly one row
    per operation, each result is ``ok``. Any other rowcount (a duplicate skipped, a lost
    lease, a driver that cannot tell) sends the whole batch down the one-by-one path, where
    ``single`` gives exact answers. Operations submitted together never depend on each other
    (none awaited another), so grouping them is safe.
    """

    __slots__ = ("statement", "params", "single", "ok", "key", "many")
    quick = True

    def __init__(
        self,
        statement: Any,
        params: dict[str, Any],
        single: Callable[[Any], Any],
        ok: Any = 1,
        many: Callable[[Any, list[dict[str, Any]]], int] | None = None,
    ) -> None:
        self.statement = statement
        self.params = params
        self.single = single
        self.ok = ok
        self.many = many  # how to run (and count) them together; default: executemany rowcount
        self.key = (id(statement), tuple(params))

    def __call__(self, conn: Any) -> Any:
        return self.single(conn)


def _run_ops(conn: Any, ops: list[Op]) -> list[Any]:
    """Run a batch's operations on one connection, sharing executemany where possible."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, op in enumerate(ops):
        if isinstance(op, Batched):
            groups.setdefault(op.key, []).append(i)
    if not groups or all(len(g) == 1 for g in groups.values()):
        return [op(conn) for op in ops]
    results: list[Any] = [None] * len(ops)
    done: set[int] = set()
    for members in groups.values():
        if len(members) == 1:
            continue
        batch: list[Batched] = [ops[i] for i in members]  # type: ignore[misc]
        params = [b.params for b in batch]
        many = batch[0].many
        count = many(conn, params) if many else conn.execute(batch[0].statement, params).rowcount
        if count != len(members):
            raise _Regroup
        for i, op in zip(members, batch, strict=True):
            results[i] = op.ok
        done.update(members)
    for i, op in enumerate(ops):
        if i not in done:
            results[i] = op(conn)
    return results


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


class Database:
    """An engine plus the thread that uses it; see the module docstring."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url

        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = self.url.database
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if not database or database == ":memory:" or self.url.query.get("mode") == "memory":
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
            else:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 2
        self.engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # quick operations on a SQLite file run inline on the event loop (module docstring)
        self.inline = self.dialect == "sqlite" and "poolclass" not in kwargs
        self._inline_conn: Any = None
        self._inline_loop: asyncio.AbstractEventLoop | None = None
        self._inline_pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._inline_scheduled = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wfkit-db")
        self._lock = threading.Lock()
        self._pending: deque[tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop]] = deque()
        self._draining = False
        self._closed = False
        self.commits = 0  # transactions committed (for diagnostics and tests)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    # -- async: group commit -------------------------------------------------------------------

    async def submit(self, op: Callable[[Any], T]) -> T:
        """Run ``op(connection)`` in the next transaction; returns after it is committed."""
        if self._closed:
            raise ClosedError(repr(self))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._inline_loop is not loop and (
            self._inline_loop is None or self._inline_loop.is_closed()
        ):
            self._inline_loop = loop  # the first loop, or a script's next run_sync loop
        if self.inline and self._inline_loop is loop and getattr(op, "quick", False):
            self._inline_pending.append((op, future))
            if not self._inline_scheduled:
                self._inline_scheduled = True
                loop.call_soon(self._flush_inline)
        else:
            self._to_thread([(op, future)], loop)
        return await future

    def _to_thread(
        self, items: list[tuple[Op, asyncio.Future[Any]]], loop: asyncio.AbstractEventLoop
    ) -> None:
        with self._lock:
            self._pending.extend((op, future, loop) for op, future in items)
            start = not self._draining
            self._draining = True
        if start:
            self._executor.submit(self._drain)

    def _flush_inline(self) -> None:
        """Run the operations collected during this loop turn in one inline transaction."""
        self._inline_scheduled = False
        batch = [item for item in self._inline_pending if not item[1].done()]
        self._inline_pending = []
        if not batch:
            return
        if self._closed:
            for _, future in batch:
                future.set_exception(ClosedError(repr(self)))
            return
        try:
            conn = self._inline_conn
            if conn is None:
                conn = self.engine.connect()
                conn.exec_driver_sql("PRAGMA busy_timeout=0")  # never block the event loop
                conn.commit()
                self._inline_conn = conn
            with conn.begin():
                results = _run_ops(conn, [op for op, _ in batch])
        except Exception:
            # locked by another writer, a failing operation, a shared executemany that must be
            # split: the database thread waits, isolates and reports
            self._to_thread(batch, self._inline_loop)  # type: ignore[arg-type]
            return
        self.commits += 1
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return
                n = min(len(self._pending), MAX_BATCH)
                batch = [self._pending.popleft() for _ in range(n)]
            outcomes = self._execute([op for op, _, _ in batch])
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
            for (_, future, loop), (ok, value) in zip(batch, outcomes, strict=True):
                by_loop.setdefault(loop, []).append((future, ok, value))
            for loop, items in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve, items)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass

    def _execute(self, ops: list[Op]) -> list[tuple[bool, Any]]:
        try:
            with self.engine.begin() as conn:
                results = _run_ops(conn, ops)
            self.commits += 1
            return [(True, r) for r in results]
        except Exception as exc:
            if len(ops) == 1:
                return [(False, exc)]
        outcomes: list[tuple[bool, Any]] = []
        for op in ops:  # isolate the failing operation(s)
            try:
                with self.engine.begin() as conn:
                    outcomes.append((True, op(conn)))
                self.commits += 1
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    # -- sync: for reports read outside the event loop's hot path -------------------------------

    def run_sync(self, op: Callable[[Any], T]) -> T:
        """Run ``op(connection)`` on the database thread and wait for it (blocking)."""
        if self._closed:
            raise ClosedError(repr(self))

        def job() -> T:
            with self.engine.begin() as conn:
                return op(conn)

        return self._executor.submit(job).result()

    def close(self) -> None:
        """Finish queued work, stop the thread and dispose of the engine."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        self.engine.dispose()


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # the caller was cancelled; the work is committed anyway
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
