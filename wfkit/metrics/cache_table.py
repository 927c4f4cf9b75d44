"""The result cache's table in a run store's SQLite file (see :mod:`wfkit.cache`).

Kept beside the run history, not inside :mod:`wfkit.metrics.store`: the cache has its own
connection and its own table (``cache``), created when first used, so a store written before
the cache existed gains it and older readers are not disturbed. Values are written as results
are (:mod:`wfkit.metrics.codec`: JSON when exact, else pickle; only use stores you trust, or
open the store with ``json_only_results=True``: the cache then keeps and reads JSON only).
New entries and hit counts are buffered and written once per event-loop iteration, so a run of
many cached tasks costs few transactions; entries written by another process are read as soon
as they are committed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import warnings
from typing import Any

from wfkit.cache import CacheEntry, UncacheableWarning
from wfkit.errors import StoreError
from wfkit.metrics import decode
from wfkit.metrics.codec import NotStorable, from_pickle, json_exact, to_pickle
from wfkit.metrics.flushing import FlushSoon

__all__ = ["StoredCache"]

log = logging.getLogger("wfkit.cache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,          -- the full key: base key and the parameters read
    base TEXT NOT NULL,            -- the key without the run parameters the task read
    task_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    params TEXT NOT NULL,          -- JSON {parameter name: value digest}
    encoding TEXT NOT NULL,        -- json or pickle
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,         -- UNIX seconds
    expires REAL,                  -- UNIX seconds, or NULL
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cache_by_base ON cache (base);
"""


def _checked(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A cache row (key, base, task_id, workflow_id, params, ..., created, expires, hits) with
    each value checked like the run history's (metrics.decode): a damaged or crafted row is
    decode.Damaged, not a wrong type further on."""
    key, base, tid, wid, params, *middle, created, expires, hits = row
    what = f"the cache entry of task {tid!r}" if type(tid) is str else "a cache entry"
    for value in (key, base, tid, wid):
        decode.text(value, what)
    params = decode.json_column(params, f"the parameters of {what}", decode.mapping)
    if any(type(v) is not str for v in params.values()):
        raise decode.Damaged(f"the parameters of {what} are not digests")
    return (key, base, tid, wid, params, *middle,
            decode.timestamp(created, f"created of {what}"),
            decode.timestamp(expires, f"expires of {what}"),
            decode.count(hits, f"hits of {what}"))


class StoredCache(FlushSoon):
    """Cache entries in the SQLite file at ``path`` (a run store's)."""

    _flush_log = log
    _flush_failure = "%s: could not write the result cache"

    def __init__(self, path: Any, *, timeout: float = 60.0, json_only: bool = False) -> None:
        self.path = path
        self.json_only = json_only  # the store refuses pickles: keep and read JSON values only
        self._lock = threading.Lock()
        self._puts: list[tuple[Any, ...]] = []
        self._hits: dict[str, int] = {}
        self._flush_pending = False
        try:
            self._conn = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._write(lambda c: [c.execute(s) for s in _SCHEMA.split(";") if s.strip()])
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot hold the result cache ({exc})", path=path) from exc

    def _write(self, work: Any) -> Any:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = work(conn)
            conn.execute("COMMIT")
            return out
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- the backend protocol of wfkit.cache.ResultCache ---------------------------------------

    def candidates(self, base: bytes) -> list[CacheEntry]:
        """The entries under the raw base key ``base`` (the table holds keys in hex)."""
        hexbase = base.hex()
        with self._lock:
            pending = [row for row in self._puts if row[1] == hexbase]
            rows = self._conn.execute(
                "SELECT key, base, task_id, workflow_id, params, encoding, data, size, "
                "created, expires, hits FROM cache WHERE base = ? ORDER BY created",
                (hexbase,),
            ).fetchall()
        if self.json_only:
            rows = [r for r in rows if r[5] == "json"]
        out = []
        for row in [*rows, *((*row, 0) for row in pending)]:
            try:  # a damaged entry, or a class that no longer imports: run the task again
                key, base_, tid, wid, params, enc, data, size, created, expires, hits = (
                    _checked(row)
                )
                value = json.loads(data) if enc == "json" else from_pickle(data)
            except Exception as exc:  # noqa: BLE001 - the entry is not used, the task runs
                log.warning("%s: a cached result of task %r cannot be loaded (%s: %s); the "
                            "task runs again", self.path, row[2], type(exc).__name__, exc)
                continue
            out.append(CacheEntry(key, base_, tid, wid, params, value, created, expires, hits,
                                  size))
        return out

    def put(self, row: tuple[Any, ...]) -> bool:
        """Buffer an entry given with raw keys (:meth:`CacheEntry.raw_row`)."""
        key, base, task_id, workflow_id, params, value, created, expires = row
        data: str | bytes
        if json_exact(value):
            enc, data = "json", json.dumps(value, separators=(",", ":"))
        elif self.json_only:
            return False  # it could never be read back from this store
        else:
            try:
                enc, data = "pickle", to_pickle(value)
            except NotStorable as exc:
                warnings.warn(
                    f"task {task_id!r} is not cached in this run: its result cannot be "
                    f"stored ({exc})", UncacheableWarning, stacklevel=3,
                )
                return False
        self._puts.append((key.hex(), base.hex(), task_id, workflow_id, json.dumps(dict(params)),
                           enc, data, len(data), created, expires))
        self._soon()
        return True

    def hit(self, entry: CacheEntry) -> None:
        entry.hits += 1
        self._hits[entry.key] = self._hits.get(entry.key, 0) + 1
        self._soon()

    def entries(self) -> list[CacheEntry]:
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, base, task_id, workflow_id, params, size, created, expires, hits "
                "FROM cache ORDER BY created"
            ).fetchall()
        try:
            checked = [_checked(row) for row in rows]
        except decode.Damaged as exc:
            raise StoreError(
                f"{self.path}: cannot be read: its result cache is damaged or was not written "
                f"by wfkit ({exc}); it was left unchanged", path=self.path,
            ) from None
        return [CacheEntry(k, b, t, w, p, None, c, e, h, s)
                for k, b, t, w, p, s, c, e, h in checked]

    def clear(self) -> int:
        with self._lock:
            self._puts.clear()
            self._hits.clear()
            return self._write(lambda c: c.execute("DELETE FROM cache").rowcount)

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            self._flush_pending = False
            puts, hits = self._puts[:], dict(self._hits)
            if not puts and not hits:
                return

            def work(conn: sqlite3.Connection) -> None:
                if puts:
                    conn.executemany(
                        "INSERT OR REPLACE INTO cache (key, base, task_id, workflow_id, params, "
                        "encoding, data, size, created, expires) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        puts,
                    )
                if hits:
                    conn.executemany("UPDATE cache SET hits = hits + ? WHERE key = ?",
                                     [(n, k) for k, n in hits.items()])
                # expired entries go when anyone writes
                conn.execute("DELETE FROM cache WHERE expires IS NOT NULL AND expires < ?",
                             (time.time(),))

            self._write(work)
            del self._puts[:len(puts)]
            for k, n in hits.items():
                left = self._hits.get(k, 0) - n
                if left > 0:
                    self._hits[k] = left
                else:
                    self._hits.pop(k, None)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._conn.close()
