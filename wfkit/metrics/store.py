"""``RunStore``: every run, task attempt and task result in one SQLite file, and resume.

Durability. The store subscribes to an orchestrator's events. Rows are buffered and written
in one transaction per event-loop iteration: the first event of an iteration schedules a
flush with ``loop.call_soon``, which therefore runs before any task dispatched in that
iteration starts its work. So a task's result is committed before its dependents run, and a
crash (a killed kernel, SIGKILL) loses at most the attempts that were in flight. The file is
in WAL mode with ``synchronous=NORMAL``: committed rows survive a process crash; pass
``fsync=True`` to survive power loss too, at the price of an fsync per commit.

Concurrency. Several processes may share one file (two notebooks, a papermill sweep). Every
write is a short ``BEGIN IMMEDIATE`` transaction, so writers queue on SQLite's lock instead of
failing on a lock upgrade; a writer waits up to ``timeout`` seconds for its turn (retrying
the few cases SQLite's busy handler does not cover) before it gives up with a StoreError.

Layout. ``runs`` has one row per run. Attempt transitions go to ``transitions`` as one row per
flush and run holding a list of attempt states, so a commit costs a couple of pages however
many tasks finished (a row per attempt, or JSON with its slow float formatting, would cost
more than the engine's own work on small tasks); the last state written for a (run,
execution, task, attempt) is current. The list holds only plain values (str, int, float,
None, and JSON-exact results) and is pickled; it is read back with an unpickler that refuses
every class, and every value read from the file is checked for type and bounded in depth and
size (:mod:`wfkit.metrics.decode`), so reading history is safe whoever wrote the file: a
damaged or crafted file gives a StoreError, never a traceback or a hang.

Results are stored inline as JSON when the value survives it exactly, otherwise pickled into
``pickles`` (:mod:`wfkit.metrics.codec`). Unpickling runs code chosen by whoever wrote the
file: resume only from stores you trust. The first time a process loads a store's pickled
results it says so (:class:`PickledResultsWarning`); ``RunStore(path,
json_only_results=True)`` (``wfkit run --resume --json-only-results``) refuses them instead. A result neither can store does not fail its task;
the task is marked not resumable (it runs again on resume) and a
:class:`ResultNotStoredWarning` names it.

Identity. The file carries SQLite's ``application_id`` (:data:`APPLICATION_ID`) and the schema
version in ``user_version``. A file that is not a wfkit store, is corrupt, or was written by a
newer schema gives a :class:`~wfkit.StoreError` naming the path, and is never written to.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import socket
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.errors import ResumeError, StoreError
from wfkit.events import (
    RunFinished,
    RunStarted,
    Subscriptions,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskSkipped,
    TaskStarted,
)
from wfkit.lifecycle import Closing
from wfkit.metrics import decode, frames
from wfkit.metrics.codec import NotStorable, from_pickle, json_exact, to_pickle
from wfkit.metrics.flushing import FlushSoon
from wfkit.statuses import FINAL_STATUSES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunStore", "ResultNotStoredWarning", "PickledResultsWarning", "APPLICATION_ID",
           "SCHEMA_VERSION"]

log = logging.getLogger("wfkit.metrics.store")

APPLICATION_ID = 0x77666B74  # b"wfkt"
SCHEMA_VERSION = 1
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,              -- running, completed, failed, cancelled
    started_at REAL NOT NULL,          -- first execution's start, UNIX seconds
    finished_at REAL,
    total_tasks INTEGER NOT NULL,
    successful_tasks INTEGER NOT NULL DEFAULT 0,
    failed_tasks INTEGER NOT NULL DEFAULT 0,
    skipped_tasks INTEGER NOT NULL DEFAULT 0,
    cancelled_tasks INTEGER NOT NULL DEFAULT 0,
    resumed_tasks INTEGER NOT NULL DEFAULT 0,
    executions INTEGER NOT NULL DEFAULT 1,   -- 1 + the number of resumes
    participants TEXT NOT NULL DEFAULT '[]', -- JSON list of agent ids
    agents TEXT NOT NULL DEFAULT '[]',       -- JSON [[agent_id, capacity], ...]
    policy TEXT NOT NULL DEFAULT '',
    graph TEXT NOT NULL,                     -- JSON {task_id: [dependency, ...], ...}
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    params TEXT,                             -- JSON {name: value} (NULL: stored before params)
    parent_run_id TEXT,                      -- the run whose task started this one (ctx.run_workflow)
    parent_task_id TEXT
);
CREATE INDEX runs_by_workflow ON runs (workflow_id, started_at);
CREATE TABLE transitions (
    run_id TEXT NOT NULL,
    execution INTEGER NOT NULL,        -- 0 for the first execution, n after the n-th resume
    rows BLOB NOT NULL                 -- pickled list of attempt states (see _ROW)
);
CREATE INDEX transitions_by_run ON transitions (run_id);
CREATE TABLE pickles (
    run_id TEXT NOT NULL,
    execution INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX pickles_by_run ON pickles (run_id, task_id);
"""
_TABLES = {"meta", "runs", "transitions", "pickles"}
# Columns added to ``runs`` after the first release, and added to older stores when opened
# (readers that predate them select columns by name, so the file stays readable to them).
_ADDED_RUN_COLUMNS = {"params": "TEXT", "parent_run_id": "TEXT", "parent_task_id": "TEXT"}

# One attempt state in transitions.rows: a tuple in this order (the execution is the row's
# column). attempt 0: the task ended without an attempt (skipped, cancelled while
# waiting, or completed from the result cache). status: running, completed, failed,
# cancelled, skipped, interrupted (running when
# its process died). final: 0 for a failed attempt that was retried. encoding: "json" (the
# result is inline), "pickle" (it is in the pickles table), "unstorable", "traceback" (a failed
# attempt: the result slot holds its traceback), or None.
_ROW = ("run_id", "task_id", "attempt", "agent_id", "status", "started_at", "finished_at",
        "error", "final", "encoding", "result")
_RUN, _TID, _ATTEMPT, _AGENT, _STATUS, _STARTED, _FINISHED, _ERROR, _FINAL, _ENC, _RESULT = (
    range(11)
)

_dumps = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


# What each field of an attempt state may hold, checked as it is read (metrics.decode.KINDS).
# Inline results are checked only by the readers that return them (walking every result
# would make the frames several times slower; those readers never look at results).
_ROW_FIELDS = tuple(zip(_ROW, (
    "text", "text", "count", "optional_text", "text", "timestamp", "timestamp",
    "optional_text", "flag", "optional_text", "json",
), strict=True))
_ROW_FIELDS_NO_RESULT = (*_ROW_FIELDS[:-1], ("result", "unread"))


def _pack(rows: list[tuple[Any, ...]]) -> bytes:
    return pickle.dumps(rows, protocol=5)


class ResultNotStoredWarning(UserWarning):
    """A task's result could not be stored; that task will run again on resume."""


class PickledResultsWarning(UserWarning):
    """Results are being unpickled from a store: that runs code chosen by its writer."""


_WARNED_PICKLES: set[str] = set()  # stores whose pickled results this process has loaded
_CHECKED: set[tuple[int, int]] = set()  # files this process created or integrity-checked
QUICK_CHECK_SECONDS = 30.0  # longest integrity check before a store is first written


def _file_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunStore(Closing, FlushSoon):
    """A durable history of workflow runs in one SQLite file; makes ``resume=`` possible.

    ``CollectiveAgentWorkflowOrchestrator(store=RunStore("runs.db"))`` (or ``store="runs.db"``)
    records every run. :meth:`workflow_frame`, :meth:`task_frame` and :meth:`agent_load_frame`
    return the same frames as :class:`~wfkit.AdvancedWorkflowMetrics`, across every run the
    file holds, from any process, after a kernel restart too.
    """

    _flush_log = log
    _flush_failure = "%s: could not write to the run store"
    path: Path

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 60.0,
        fsync: bool = False,
        json_only_results: bool = False,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise StoreError(f"RunStore needs a file path, got {path!r}", path=path)
        self.path = Path(path).expanduser()
        self.timeout = float(timeout)
        self.json_only_results = bool(json_only_results)
        # Handlers only append to these lists (atomic under the GIL); a flush writes and then
        # deletes the prefix it wrote, so rows appended meanwhile from another thread stay.
        self._log: list[tuple[Any, ...]] = []
        self._pickles: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()  # serialises flushes and reads; handlers never take it
        self._execution: dict[str, int] = {}
        self._flush_pending = False
        self._sources = Subscriptions()
        self._closed = False
        self._host = socket.gethostname()
        self._conn = self._open(fsync)
        self._handlers: dict[type, Callable[[Any], None]] = {
            TaskFailed: self._task_failed,
            TaskSkipped: self._task_skipped,
            TaskCancelled: self._task_cancelled,
            RunStarted: self._run_started,
            RunFinished: self._run_finished,
        }

    # -- opening -----------------------------------------------------------------------------

    def _fail(self, what: str, exc: BaseException | None = None) -> StoreError:
        detail = f" ({exc})" if exc is not None else ""
        return StoreError(f"{self.path}: {what}{detail}", path=self.path)

    def _open(self, fsync: bool) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise self._fail("is a directory; give RunStore a file path such as runs.db")
        if not path.exists():
            self._create(fsync)
        try:
            with open(path, "rb") as f:
                header = f.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise self._fail("cannot be read", exc) from exc
        if not header:
            raise self._fail(
                "is an empty file (0 bytes), not a wfkit run store; it was left unchanged. "
                "Delete it, or give RunStore a path that does not exist yet"
            )
        if header != _SQLITE_HEADER:
            raise self._fail(
                "is not a wfkit run store (not an SQLite database); it was left "
                "unchanged. Give RunStore a new file or an existing wfkit store"
            )
        try:
            conn = sqlite3.connect(
                path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._fail("cannot be opened", exc) from exc
        try:
            state = self._retry(lambda: self._inspect(conn))
            if state == "fresh":  # an empty database: nothing to lose, no fsync while creating
                conn.execute("PRAGMA synchronous=OFF")
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            if state == "fresh":
                self._write(conn, self._initialise)
            elif self._missing_columns(conn):
                self._check_before_writing(conn)
                self._write(conn, self._add_columns)
            conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._fail(
                "is not a usable wfkit run store: it is corrupt or not an SQLite database; "
                "it was left unchanged", exc
            ) from exc
        return conn

    def _create(self, fsync: bool) -> None:
        """Make a new store at ``self.path`` all at once: it is built under a temporary name
        beside it and hard-linked into place, so no process ever sees a half-made (0-byte)
        file. If another process makes it first, theirs is used."""
        path = self.path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("PRAGMA journal_mode=WAL")
                self._write(conn, self._initialise)
            finally:
                conn.close()  # checkpoints: the file holds everything, in WAL mode
            if fsync:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return
            except OSError:  # no hard links here: claim the name, then fill it in
                data = tmp.read_bytes()
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            _CHECKED.add(_file_key(path))
        except (sqlite3.Error, OSError) as exc:
            raise self._fail("cannot be created", exc) from exc
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    def _check_before_writing(self, conn: sqlite3.Connection | None = None) -> None:
        """``PRAGMA quick_check`` before the first write to a file this process neither created
        nor checked: corruption on a page that opening did not read is refused before anything
        is written. Bounded: a check that runs past QUICK_CHECK_SECONDS is cut short (logged)."""
        try:
            key = _file_key(self.path)
        except OSError as exc:
            raise self._fail("cannot be read", exc) from exc
        if key in _CHECKED:
            return
        deadline = time.monotonic() + QUICK_CHECK_SECONDS
        with self._lock:
            if conn is None:
                self._check_open()
                conn = self._conn
            conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                found = self._retry(
                    lambda: [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
                )
            except sqlite3.OperationalError as exc:
                if "interrupt" not in str(exc).lower():
                    raise self._fail("is corrupt; it was left unchanged", exc) from exc
                log.warning("%s: the integrity check took more than %g s and was cut short; "
                            "writing without it", self.path, QUICK_CHECK_SECONDS)
                found = ["ok"]
            except sqlite3.DatabaseError as exc:
                raise self._fail("is corrupt; it was left unchanged", exc) from exc
            finally:
                conn.set_progress_handler(None, 0)
        if found != ["ok"]:
            detail = " ".join(" ".join(str(f).split()) for f in found)
            raise self._fail(
                f"is corrupt (PRAGMA quick_check: {detail[:300]}); nothing was written to it. "
                f"Restore it from a copy, or record runs in a new file"
            )
        _CHECKED.add(key)

    def _inspect(self, conn: sqlite3.Connection) -> str:
        """'ours' or 'fresh'; raises StoreError for anything else. Reads only, from one
        snapshot: another process may be creating the store right now."""
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            if own:
                conn.execute("COMMIT")
        if app == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise self._fail(
                    f"was written by a newer wfkit (store schema version {version}, this wfkit "
                    f"reads up to {SCHEMA_VERSION}); upgrade wfkit to read it"
                )
            if not _TABLES <= tables:
                raise self._fail(
                    f"is a damaged wfkit run store (missing tables: "
                    f"{', '.join(sorted(_TABLES - tables))}); it was left unchanged"
                )
            return "ours"
        if app == 0 and version == 0 and not tables:
            return "fresh"
        names = ", ".join(sorted(tables)[:5]) or "none"
        raise self._fail(
            f"is an SQLite database but not a wfkit run store (application_id {app}, tables: "
            f"{names}); it was left unchanged. Give RunStore a new file"
        )

    def _initialise(self, conn: sqlite3.Connection) -> None:
        if self._inspect(conn) == "ours":  # another process won the race
            return
        from wfkit import __version__

        for statement in re.sub(r"--[^\n]*", "", _SCHEMA).split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("format", "wfkit run store"), ("schema_version", str(SCHEMA_VERSION)),
             ("created_by", f"wfkit {__version__}"), ("created_at", repr(time.time()))],
        )
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @staticmethod
    def _missing_columns(conn: sqlite3.Connection) -> list[str]:
        have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        return [c for c in _ADDED_RUN_COLUMNS if c not in have]

    def _add_columns(self, conn: sqlite3.Connection) -> None:
        for column in self._missing_columns(conn):  # again: another process may have won
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {_ADDED_RUN_COLUMNS[column]}")

    # -- SQLite plumbing ---------------------------------------------------------------------

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``, retrying while another process holds a lock SQLite did not wait for."""
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() > deadline:
                    raise self._fail(
                        f"stayed locked by another process for {self.timeout:g} s; raise "
                        f"RunStore(timeout=...) or find the process holding it", exc
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _write(self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work(conn)`` in one IMMEDIATE transaction (queued behind other writers)."""

        def attempt() -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = work(conn)
                conn.execute("COMMIT")
                return out
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

        return self._retry(attempt)

    def _check_open(self) -> None:
        if self._closed:
            raise self._fail("this RunStore is closed; open a new RunStore(path)")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            self._check_open()
            self._flush_locked()
            try:
                return self._retry(lambda: self._conn.execute(sql, params).fetchall())
            except sqlite3.DatabaseError as exc:
                raise self._fail("cannot be read: the store is corrupt", exc) from exc

    def _runs(
        self, columns: str, where: str = "", params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of the runs table with each column checked (JSON columns parsed): a damaged or
        crafted row is a StoreError, never a wrong type further on."""
        names = tuple(c.strip() for c in columns.split(","))
        rows = self._read(f"SELECT {columns} FROM runs{where}", params)
        try:
            return [decode.check_run_row(names, row) for row in rows]
        except decode.Damaged as exc:
            raise self._damaged(exc, "its table of runs") from None

    def _damaged(self, exc: Exception, part: str = "its task history") -> StoreError:
        return self._fail(
            f"cannot be read: {part} is damaged or was not written by wfkit ({exc}); it was "
            f"left unchanged"
        )

    # -- subscribing -------------------------------------------------------------------------

    def attach(self, source: Any) -> RunStore:
        """Record every run ``source`` (an orchestrator) publishes; called by the orchestrator
        given ``store=``. Returns ``self``."""
        self._check_open()
        subscribe = getattr(source, "subscribe", None)
        if not callable(subscribe):
            raise StoreError(
                f"RunStore.attach() needs a CollectiveAgentWorkflowOrchestrator, got "
                f"{type(source).__name__}", path=self.path,
            )
        self._check_before_writing()
        self._sources.add(source, self._on_event)
        return self

    def detach(self, source: Any = None) -> None:
        self._sources.remove(source)

    def _on_event(self, e: Any) -> None:
        kind = type(e)
        if kind is TaskStarted:  # the hot path, inlined: one per attempt
            self._log.append((e.run_id, e.task_id, e.attempt, e.agent_id, "running",
                              e.timestamp, None, None, None, None, None))
        elif kind is TaskCompleted:
            result = e.result
            if result is not None and not json_exact(result):
                self._completed_not_json(e)
            else:
                self._log.append((e.run_id, e.task_id, e.attempt, e.agent_id, "completed",
                                  e.started_at, e.timestamp, None, 1, "json", result))
        else:
            handler = self._handlers.get(kind)
            if handler is not None:
                handler(e)
            return
        if not self._flush_pending:
            self._soon()

    def flush(self) -> None:
        """Commit buffered rows now (events flush by themselves once per loop iteration)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._flush_pending = False
        if (self._log or self._pickles) and not self._closed:
            self._commit()

    def _commit(self, work: Callable[[sqlite3.Connection], Any] | None = None) -> Any:
        """Write the buffered rows, then ``work(conn)``, in one transaction (lock held)."""
        n_rows, n_pickles = len(self._log), len(self._pickles)
        groups: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
        for row in self._log[:n_rows]:  # the last state of each attempt wins
            group = groups.get(row[_RUN])
            if group is None:
                group = groups[row[_RUN]] = {}
            group[row[:3]] = row
        execution = self._execution
        batches = [(run, execution.get(run, 0), _pack(list(g.values())))
                   for run, g in groups.items()]
        pickles = self._pickles[:n_pickles]

        def transaction(conn: sqlite3.Connection) -> Any:
            if batches:
                conn.executemany("INSERT INTO transitions VALUES (?, ?, ?)", batches)
            if pickles:
                conn.executemany("INSERT INTO pickles VALUES (?, ?, ?, ?, ?)", pickles)
            return work(conn) if work is not None else None

        try:
            out = self._write(self._conn, transaction)
        except decode.Damaged as exc:
            raise self._damaged(exc) from None
        del self._log[:n_rows]
        del self._pickles[:n_pickles]
        return out

    # -- events -> rows ----------------------------------------------------------------------

    def _run_started(self, e: RunStarted) -> None:
        graph = self._graph(e)
        agents = json.dumps([list(a) for a in e.agents])
        # JSON values are stored exactly; anything else as its repr (shown, not resumed with)
        params = json.dumps(e.params or {}, default=repr)

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT executions FROM runs WHERE run_id = ?", (e.run_id,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO runs (run_id, workflow_id, status, started_at, total_tasks, "
                    "resumed_tasks, agents, policy, graph, host, pid, params, parent_run_id, "
                    "parent_task_id) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.run_id, e.workflow_id, e.timestamp, len(e.task_ids), len(e.resumed),
                     agents, e.policy, graph, self._host, os.getpid(), params,
                     e.parent_run_id, e.parent_task_id),
                )
                return 0
            # a resume: the same run goes on; attempts its dead process left open are over
            stale: dict[int, list[tuple[Any, ...]]] = {}
            for key, state in self._states(conn, e.run_id, results=True).items():
                if state[_STATUS] == "running":
                    stale.setdefault(key[1], []).append(
                        (*state[:_STATUS], "interrupted", *state[_STATUS + 1:])
                    )
            conn.executemany(
                "INSERT INTO transitions VALUES (?, ?, ?)",
                [(e.run_id, ex, _pack(rows)) for ex, rows in stale.items()],
            )
            conn.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, executions = "
                "executions + 1, resumed_tasks = ?, agents = ?, policy = ?, host = ?, pid = ? "
                "WHERE run_id = ?",
                (len(e.resumed), agents, e.policy, self._host, os.getpid(), e.run_id),
            )
            return row[0]

        with self._lock:
            self._flush_pending = False
            self._execution[e.run_id] = self._commit(work)

    @staticmethod
    def _graph(e: RunStarted) -> str:
        """The run's tasks and dependencies, as the event gives them (to check a resume and
        write a trace); ``null`` dependencies when it gives none."""
        deps = e.dependencies()
        return _dumps(deps if deps is not None else dict.fromkeys(e.task_ids))

    def _run_finished(self, e: RunFinished) -> None:
        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT participants FROM runs WHERE run_id = ?", (e.run_id,)
            ).fetchone()
            if row is None:
                return
            try:
                stored = decode.json_column(row[0], "participants", decode.names)
            except decode.Damaged:  # rewritten from the run's own record below
                stored = []
            participants = sorted(set(stored) | set(e.participants))
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, total_tasks = ?, "
                "successful_tasks = ?, failed_tasks = ?, skipped_tasks = ?, cancelled_tasks = ?,"
                " participants = ? WHERE run_id = ?",
                (e.status, e.timestamp, e.total_tasks, e.successful_tasks, e.failed_tasks,
                 e.skipped_tasks, e.cancelled_tasks, json.dumps(participants), e.run_id),
            )

        with self._lock:
            self._flush_pending = False
            self._commit(work)
            self._execution.pop(e.run_id, None)

    def _completed_not_json(self, e: TaskCompleted) -> None:
        try:
            blob = to_pickle(e.result)
        except NotStorable as exc:
            warnings.warn(
                f"the result of task {e.task_id!r} (workflow {e.workflow_id!r}, run "
                f"{e.run_id}) can be stored neither as JSON nor with pickle ({exc}); the "
                f"task is marked not resumable and will run again on resume",
                ResultNotStoredWarning,
                stacklevel=2,
            )
            encoding = "unstorable"
        else:
            encoding = "pickle"
            self._pickles.append((e.run_id, self._execution.get(e.run_id, 0), e.task_id,
                                  e.attempt, blob))
        self._log.append((e.run_id, e.task_id, e.attempt, e.agent_id, "completed",
                          e.started_at, e.timestamp, None, 1, encoding, None))

    def _task_failed(self, e: TaskFailed) -> None:
        # a failed attempt has no result: its slot holds the traceback (encoding "traceback")
        tb = e.traceback
        self._log.append((e.run_id, e.task_id, e.attempt, e.agent_id, "failed", e.started_at,
                          e.timestamp, e.error, int(e.final), tb and "traceback", tb))
        if not self._flush_pending:
            self._soon()

    def _task_skipped(self, e: TaskSkipped) -> None:
        self._put(e.run_id, e.task_id, 0, None, "skipped", None, e.timestamp, e.reason, 1)

    def _task_cancelled(self, e: TaskCancelled) -> None:
        attempt = e.attempt if e.agent_id is not None else 0
        self._put(e.run_id, e.task_id, attempt, e.agent_id, "cancelled", e.started_at,
                  e.timestamp, None, 1)

    def _put(self, run_id: str, *fields: Any) -> None:
        self._log.append((run_id, *fields, None, None))
        if not self._flush_pending:
            self._soon()

    # -- decoding transitions ----------------------------------------------------------------

    @staticmethod
    def _states(
        conn: sqlite3.Connection, run_id: str | None = None, *, results: bool = False
    ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The current state of every attempt by (run_id, execution, task_id, attempt), of
        ``run_id`` or of every run, in the order attempts first appeared, runs oldest first.
        Inline results are checked only when ``results`` (the caller returns them)."""
        fields = _ROW_FIELDS if results else _ROW_FIELDS_NO_RESULT
        if run_id is None:
            cursor = conn.execute(
                "SELECT t.run_id, t.execution, t.rows FROM transitions t JOIN runs r "
                "ON r.run_id = t.run_id ORDER BY r.started_at, r.rowid, t.rowid"
            )
        else:
            cursor = conn.execute(
                "SELECT run_id, execution, rows FROM transitions WHERE run_id = ? "
                "ORDER BY rowid", (run_id,),
            )
        states: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for rid, ex, data in cursor:
            what = f"run {rid!r}"
            decode.count(ex, f"{what}: its execution number")
            for row in decode.unpack_rows(data, what, fields):
                if row[_RUN] != rid:
                    raise decode.Damaged(f"{what} holds an attempt of run {row[_RUN]!r}")
                states[(rid, ex, row[_TID], row[_ATTEMPT])] = row
        return states

    def _read_states(
        self, run_id: str | None = None, *, results: bool = False
    ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        with self._lock:
            self._check_open()
            self._flush_locked()
            try:
                return self._retry(lambda: self._states(self._conn, run_id, results=results))
            except sqlite3.DatabaseError as exc:
                raise self._fail("cannot be read: the store is corrupt", exc) from exc
            except decode.Damaged as exc:
                raise self._damaged(exc) from None

    # -- resume ------------------------------------------------------------------------------

    def resume_state(
        self,
        workflow_id: str,
        resume: str,
        task_ids: Sequence[str],
        dependencies: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``(run_id, {task_id: result})`` of the tasks that completed in the run to resume.

        ``resume`` is ``"latest"`` (the workflow's most recently started run) or a run id;
        ``task_ids`` are the workflow's tasks now, and ``dependencies`` (``{task_id:
        [dependency, ...]}``, optional) what each waits for now. Raises ResumeError when there
        is no such run, or the workflow's tasks (or given dependencies) changed.
        """
        if not isinstance(resume, str) or not resume:
            raise ResumeError(
                f"resume= takes 'latest' or a run id (a string), got {resume!r}"
            )
        columns = ", ".join(decode.RUN_COLUMNS)  # all of them: resume writes to this row
        if resume == "latest":
            rows = self._runs(
                columns, " WHERE workflow_id = ? ORDER BY started_at DESC, rowid DESC LIMIT 1",
                (workflow_id,),
            )
            if not rows:
                raise ResumeError(
                    f"nothing to resume: the store {self.path} holds no run of workflow "
                    f"{workflow_id!r}; run it once without resume="
                )
        else:
            rows = self._runs(columns, " WHERE run_id = ?", (resume,))
            if not rows:
                raise ResumeError(
                    f"no run {resume!r} in the store {self.path}; pass resume='latest' or a "
                    f"run_id from store.workflow_frame()"
                )
        run = dict(zip(decode.RUN_COLUMNS, rows[0], strict=True))
        run_id, stored_workflow, status, graph, host, pid = (
            run[c] for c in ("run_id", "workflow_id", "status", "graph", "host", "pid")
        )
        if stored_workflow != workflow_id:
            raise ResumeError(
                f"run {run_id!r} is a run of workflow {stored_workflow!r}, not "
                f"{workflow_id!r}; resume it with execute_workflow({stored_workflow!r}, ...)"
            )
        if (
            status == "running"
            and host == self._host
            and pid != os.getpid()
            and _pid_alive(pid)
        ):
            raise ResumeError(
                f"run {run_id!r} of workflow {workflow_id!r} is still running in process "
                f"{pid} on this machine; wait for it to finish (or stop it) before resuming"
            )
        self._check_tasks(run_id, workflow_id, graph, task_ids, dependencies)
        completed = self._completed_results(run_id)
        return run_id, completed

    def _check_tasks(
        self,
        run_id: str,
        workflow_id: str,
        stored: dict[str, Any],
        task_ids: Sequence[str],
        current: Mapping[str, Sequence[str]] | None,
    ) -> None:
        added = sorted(set(task_ids) - stored.keys())
        removed = sorted(stored.keys() - set(task_ids))
        changed: list[str] = []
        if not added and not removed and current is not None:
            changed = sorted(
                tid for tid, deps in stored.items()
                if deps is not None and tid in current and set(deps) != set(current[tid])
            )
        if added or removed or changed:

            def names(ids: list[str]) -> str:
                more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
                return ", ".join(map(repr, ids[:10])) + more

            parts = [f"{label}: {names(ids)}" for label, ids in
                     (("added", added), ("removed", removed), ("dependencies changed", changed))
                     if ids]
            raise ResumeError(
                f"cannot resume run {run_id!r}: the tasks of workflow {workflow_id!r} changed "
                f"since it ran ({'; '.join(parts)}). Resume with the same tasks, or run "
                f"without resume= to start a new run"
            )

    # -- reading -----------------------------------------------------------------------------

    def latest_run(self, workflow_id: str) -> str | None:
        """The id of ``workflow_id``'s most recently started run, or None."""
        rows = self._runs(
            "run_id", " WHERE workflow_id = ? ORDER BY started_at DESC, rowid DESC LIMIT 1",
            (workflow_id,),
        )
        return rows[0][0] if rows else None

    def run_params(self, run_id: str) -> dict[str, Any] | None:
        """The parameters ``run_id`` ran with (None for a run stored before parameters)."""
        rows = self._runs("run_id, params", " WHERE run_id = ?", (run_id,))
        return rows[0][1] if rows else None

    def results(self, run_id: str) -> dict[str, Any]:
        """The stored results of ``run_id``'s completed tasks (those that could be stored)."""
        if not self._read("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            raise StoreError(f"no run {run_id!r} in the store {self.path}", path=self.path)
        return self._completed_results(run_id)

    def _completed_results(self, run_id: str) -> dict[str, Any]:
        """The result of each task that completed in ``run_id`` (in any execution) and could
        be stored and loaded again; a task whose result cannot be loaded gets a warning."""
        chosen: dict[str, tuple[int, int, tuple[Any, ...]]] = {}
        for (_, ex, tid, attempt), row in self._read_states(run_id, results=True).items():
            if row[_STATUS] == "completed":
                chosen[tid] = (ex, attempt, row)  # a later execution's completion wins
        blobs: dict[tuple[int, str, int], bytes] = {}
        pickled = sorted(tid for tid, (_, _, row) in chosen.items() if row[_ENC] == "pickle")
        if pickled:
            self._before_unpickling(run_id, pickled)
            blobs = {
                (ex, tid, attempt): data
                for tid, ex, attempt, data in self._read(
                    "SELECT task_id, execution, attempt, data FROM pickles WHERE run_id = ?",
                    (run_id,),
                )
            }
        out: dict[str, Any] = {}
        for tid, (ex, attempt, row) in chosen.items():
            if row[_ENC] == "json":
                out[tid] = row[_RESULT]
            elif row[_ENC] == "pickle":
                try:
                    value = from_pickle(blobs[(ex, tid, attempt)])
                    decode.measure(value, "the result", strict=False)
                    out[tid] = value
                except Exception as exc:  # e.g. a pickled class that no longer imports
                    warnings.warn(
                        f"the stored result of task {tid!r} (run {run_id}) cannot be loaded "
                        f"({type(exc).__name__}: {exc}); the task will run again on resume",
                        ResultNotStoredWarning,
                        stacklevel=3,
                    )
        return out

    def _before_unpickling(self, run_id: str, tasks: list[str]) -> None:
        """Refuse pickled results (``json_only_results``), or say once per store and process
        that loading them runs code chosen by whoever wrote the file."""
        if self.json_only_results:
            more = f" and {len(tasks) - 5} more" if len(tasks) > 5 else ""
            raise StoreError(
                f"{self.path}: run {run_id} has results stored with pickle (tasks "
                f"{', '.join(map(repr, tasks[:5]))}{more}), and this store was opened with "
                f"json_only_results=True (--json-only-results), which refuses them. Resume "
                f"without it only if you trust whoever wrote this file, or run without resume",
                path=self.path,
            )
        key = os.path.realpath(self.path)
        if key not in _WARNED_PICKLES:
            _WARNED_PICKLES.add(key)
            warnings.warn(
                f"{self.path}: loading pickled task results, which runs code chosen by whoever "
                f"wrote this store; refuse them with --json-only-results "
                f"(RunStore(..., json_only_results=True))",
                PickledResultsWarning,
                stacklevel=4,
            )

    def _where(self, **filters: str | None) -> tuple[str, list[str]]:
        clauses, params = [], []
        for column, value in filters.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def workflow_frame(self, workflow_id: str | None = None) -> pd.DataFrame:
        """One row per stored run (oldest first). Until a run finishes, its counts come from
        its tasks; a run whose process died on this machine shows status ``interrupted``."""
        where, params = self._where(workflow_id=workflow_id)
        rows = self._runs(
            "run_id, workflow_id, status, started_at, finished_at, total_tasks, "
            "successful_tasks, failed_tasks, skipped_tasks, cancelled_tasks, resumed_tasks, "
            "participants, policy, host, pid, params, parent_run_id, parent_task_id",
            f"{where} ORDER BY started_at, rowid",
            params,
        )
        out = []
        for row in rows:
            *head, participants, policy, host, pid, run_params, parent_run, parent_task = row
            started, finished = head[3], head[4]
            head.insert(5, None if finished is None else finished - started)
            ids = set(participants)
            if head[2] == "running":
                if host == self._host and pid != os.getpid() and not _pid_alive(pid):
                    head[2] = "interrupted"
                latest: dict[str, tuple[Any, ...]] = {}
                for (_, _, tid, _), state in self._read_states(head[0]).items():
                    latest[tid] = state
                    if state[_AGENT] is not None:
                        ids.add(state[_AGENT])
                for i, status in zip(range(7, 11), FINAL_STATUSES, strict=True):
                    head[i] = sum(
                        1 for st in latest.values()
                        if st[_STATUS] == status and (status != "failed" or st[_FINAL])
                    )
            out.append((*head, len(ids), tuple(sorted(ids)), policy,
                        run_params or {}, parent_run, parent_task))
        return frames.build_frame(out, frames.WORKFLOW_COLUMNS)

    def task_frame(self, run_id: str | None = None, workflow_id: str | None = None) -> pd.DataFrame:
        """One row per task attempt of every stored run (see AdvancedWorkflowMetrics), runs
        oldest first."""
        where, params = self._where(run_id=run_id, workflow_id=workflow_id)
        workflow_of: dict[str, str] = {}
        static_of: dict[str, frozenset[str]] = {}
        for rid, wf, graph in self._runs("run_id, workflow_id, graph", where, params):
            workflow_of[rid] = wf
            static_of[rid] = frozenset(graph)  # the run's own tasks: the others are children
        if run_id is not None:
            states = self._read_states(run_id) if workflow_of else {}
        else:
            states = self._read_states()
        rows = []
        for (rid, _, tid, attempt), st in states.items():
            wf = workflow_of.get(rid)
            if wf is None:
                continue
            started, finished, final = st[_STARTED], st[_FINISHED], st[_FINAL]
            rows.append((
                rid, wf, tid, st[_AGENT], st[_STATUS], attempt, started, finished,
                finished - started if started is not None and finished is not None else None,
                st[_ERROR], None if final is None else bool(final),
                st[_STATUS] == "completed" and attempt == 0,  # from the result cache
            ))
        rows = frames.with_map_columns(rows, static_of)
        mapped = {(r[0], r[-2]) for r in rows if r[-2] is not None}
        if mapped:  # a mapped task ends without an attempt of its own: it is not cached
            rows = [(*r[:11], False, *r[12:]) if (r[0], r[2]) in mapped else r for r in rows]
        return frames.build_frame(rows, frames.TASK_COLUMNS)

    def to_wfformat(self, run_id: str, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Stored run ``run_id`` as a WfFormat 1.5 document (see ``RunResult.to_wfformat``),
        saved as JSON to ``path`` when given. Each task's runtime is its last attempt's; a
        child ``name[i]`` of a mapped task gets that task's dependencies (the store keeps
        the graph as it was before the run mapped) and the mapped task depends on it."""
        from wfkit.wfformat import run_document, write_json

        rows = self._runs(
            "run_id, workflow_id, status, started_at, finished_at, agents, graph",
            " WHERE run_id = ?", (run_id,),
        )
        if not rows:
            raise StoreError(f"no run {run_id!r} in the store {self.path}", path=self.path)
        _, workflow_id, status, started_at, finished_at, agents, graph = rows[0]
        if any(deps is None for deps in graph.values()):
            raise StoreError(
                f"{self.path}: run {run_id} was stored without its dependencies (its "
                f"RunStarted event carried no task graph), so it has no graph to write",
                path=self.path,
            )
        last: dict[str, tuple[Any, ...]] = {}
        for (_, _, tid, _), st in self._read_states(run_id).items():
            last[tid] = st  # attempts in the order they appeared: the last one wins
        full = {tid: list(deps) for tid, deps in graph.items()}
        for tid in last:
            parent = tid.rsplit("[", 1)[0]
            if tid not in full and parent in graph:  # a mapped child name[i]: it waited
                full[tid] = list(graph[parent])  # for what its task waited for, which
                full[parent].append(tid)  # ended when its children ended
        ends = [st[_FINISHED] for st in last.values() if st[_FINISHED] is not None]
        end = finished_at if finished_at is not None else max(ends, default=started_at)
        doc = run_document(
            name=workflow_id,
            description=f"wfkit run {run_id} of {workflow_id!r}: {status}",
            graph=full,
            attempts={tid: (st[_AGENT], st[_STARTED], st[_FINISHED]) for tid, st in last.items()},
            agents=[(a, c) for a, c in agents],
            started_at=started_at,
            makespan=end - started_at,
        )
        if path is not None:
            write_json(doc, path)
        return doc

    def tracebacks(self, run_id: str) -> dict[str, str]:
        """The full traceback of each task that failed for good in ``run_id`` (the last one
        when a resume failed it again), by task id."""
        out: dict[str, str] = {}
        for (_, _, tid, _), st in self._read_states(run_id).items():
            if st[_STATUS] == "failed" and st[_FINAL] and st[_ENC] == "traceback":
                out[tid] = st[_RESULT]
        return out

    def agent_load_frame(self, run_id: str | None = None, workflow_id: str | None = None) -> pd.DataFrame:
        """Each agent's load and capacity over time, from the stored attempts."""
        capacities: dict[str, int] = {}
        for _, agents in self._runs("run_id, agents", " ORDER BY started_at, rowid"):
            capacities.update({a: c for a, c in agents})
        return frames.agent_load(self.task_frame(run_id, workflow_id), capacities)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is buffered, stop recording and close the file."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self.detach()
                self._closed = True
                self._conn.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RunStore {str(self.path)!r} {state}>"
