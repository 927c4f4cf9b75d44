"""A session's versioned shared state: optimistic concurrency with versions.

Every commit bumps ``version`` by one. A read returns a :class:`Snapshot` (a private deep copy
and its version); a write names the version it was based on. Granularity is the top-level key:

- a write based on the current version is applied as is;
- :meth:`SharedState.update` is a read-modify-write that re-reads and re-runs ``fn`` when
  someone committed in between (compare-and-set), so concurrent updates are never lost. An
  update that lost such a race waits for its *turn* (one FIFO turn per event loop, one for
  threads) and runs again there; newcomers queue behind it while the turn is taken. So
  contended updates run one after another instead of all re-running after every commit:
  every update runs ``fn`` at most twice plus once per commit made in its turn by others
  (another loop, a thread, a direct write), not once per competitor;
- ``state[key] = value`` and ``del state[key]`` write at the current version, taken under
  the lock: they never conflict;
- a :meth:`SharedState.write` based on an old version is a *stale write*. Its keys that nobody
  changed since its base version (or changed to the very same value) merge. Keys changed by
  both sides to different values are a :class:`Conflict`, handled by the strategy:

  ``"merge"`` (default)   the other keys apply; the clashing keys keep the current value and
                          the conflict stays ``pending`` until ``resolve_conflict``.
  ``"manual"``            nothing of the write applies; it waits (``pending``) with both
                          values and both participants until ``resolve_conflict``.
  ``"last_writer_wins"``  the whole write applies; the conflict is recorded as resolved.
  ``"first_writer_wins"`` the whole write is rejected; recorded as resolved.
  a callable              ``strategy(conflict) -> {key: value}`` decides the clashing keys
                          (a key it leaves out keeps the current value); the rest applies.

Invariants: ``_key_version[k]`` is the version of the last commit that set or deleted ``k``;
values inside the state are never mutated in place (writes store deep copies and snapshots
hand out deep copies), so a shallow copy of ``_data`` is an exact picture of a version. All
transitions happen under ``_lock`` (re-entrant: sync handlers run in worker threads, and a
strategy callable may read the state); events are emitted after it is released. ``_lock`` is
never held while user code runs (``fn``, ``strategy`` callables aside, which decide within the
commit); the turns are held across ``fn`` and only ever by updates.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfkit.errors import CoordinationError, UnknownKeyError, ValidationError
from wfkit.events import EventBus, SharedStateChanged, SharedStateConflict

__all__ = [
    "DELETE",
    "STRATEGIES",
    "Conflict",
    "SharedState",
    "Snapshot",
    "WriteOutcome",
    "check_strategy",
    "strategy_name",
]

STRATEGIES = ("merge", "last_writer_wins", "first_writer_wins", "manual")


class _Delete:
    """Marks a key as deleted in a write's changes (``{"k": DELETE}``)."""

    _instance: _Delete | None = None

    def __new__(cls) -> _Delete:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DELETE"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Delete:
        return self

    def __reduce__(self) -> str:
        return "DELETE"


DELETE = _Delete()


def check_strategy(strategy: Any) -> Any:
    """Return ``strategy`` if it is a known name or a callable, else raise a clear error."""
    if callable(strategy) and not isinstance(strategy, str):
        return strategy
    if strategy in STRATEGIES:
        return strategy
    raise ValidationError(
        f"unknown conflict_strategy {strategy!r}: use one of {', '.join(map(repr, STRATEGIES))} "
        f"or a callable strategy(conflict) -> {{key: value}}"
    )


def strategy_name(strategy: Any) -> str:
    if isinstance(strategy, str):
        return strategy
    return getattr(strategy, "__name__", None) or type(strategy).__name__


def _same(a: Any, b: Any) -> bool:
    """Equal values (a value that cannot say, such as an array, counts as different)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The shared state at one version. ``data`` is the reader's own deep copy."""

    version: int
    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass(eq=False)
class Conflict:
    """A stale write that changed keys someone else changed since its base version.

    ``current`` and ``incoming`` hold both values of each clashing key (``DELETE`` for a
    deleted key); ``participants`` is (the last writer of those keys, the stale writer).
    ``held`` is the rest of a write the ``manual`` strategy holds back. ``status`` is
    ``"pending"`` until resolved, then ``"resolved"`` with the applied ``resolution``.
    """

    conflict_id: str
    session_id: str
    keys: tuple[str, ...]
    current: dict[str, Any]
    incoming: dict[str, Any]
    participants: tuple[str, str]
    strategy: str
    base_version: int
    version: int
    created_at: float
    status: str = "pending"
    resolution: dict[str, Any] | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    held: dict[str, Any] = field(default_factory=dict)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = field(
        default_factory=list, repr=False
    )

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    async def wait(self) -> dict[str, Any]:
        """Wait until the conflict is resolved; returns the values that were applied."""
        if self.status != "pending":
            return dict(self.resolution or {})
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiters.append((loop, fut))
        try:
            return await fut
        finally:
            try:
                self._waiters.remove((loop, fut))
            except ValueError:
                pass

    def _wake(self) -> None:
        values = dict(self.resolution or {})
        for loop, fut in tuple(self._waiters):
            try:
                loop.call_soon_threadsafe(_set_result, fut, values)
            except RuntimeError:  # that loop is closed: nobody is waiting there any more
                pass

    def as_row(self) -> dict[str, Any]:
        return {
            "conflict_id": self.conflict_id,
            "session_id": self.session_id,
            "created_at": self.created_at,
            "participants": self.participants,
            "keys": self.keys,
            "current": _show(self.current),
            "incoming": _show(self.incoming),
            "held": _show(self.held),
            "strategy": self.strategy,
            "status": self.status,
            "base_version": self.base_version,
            "version": self.version,
            "resolution": None if self.resolution is None else _show(self.resolution),
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
        }


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _copies(values: Mapping[str, Any]) -> dict[str, Any]:
    """Private deep copies of ``values``, so nothing stored is shared with the caller."""
    return {k: (v if v is DELETE else copy.deepcopy(v)) for k, v in values.items()}


def _discard_awaitable(value: Any) -> bool:
    """True if ``value`` is an awaitable a sync caller cannot await; a coroutine is closed
    first, so refusing it leaves no "never awaited" warning behind."""
    if not inspect.isawaitable(value):
        return False
    close = getattr(value, "close", None)
    if close is not None:
        close()
    return True


def _show(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("<deleted>" if v is DELETE else v) for k, v in values.items()}


@dataclass(slots=True)
class WriteOutcome:
    """What a write did.

    ``status``: ``"applied"`` (fresh write), ``"merged"`` (stale, but everything applied or was
    decided by the strategy), ``"conflict"`` (merge: part applied, a conflict is pending),
    ``"held"`` (manual: nothing applied yet), ``"rejected"`` (first_writer_wins),
    ``"unchanged"`` (nothing to write). ``version`` is the state's version afterwards.
    """

    status: str
    version: int
    applied: tuple[str, ...] = ()
    conflict: Conflict | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True when every key of the write is in the state now."""
        return self.status in ("applied", "merged", "unchanged")


_conflict_ids = itertools.count(1)


def _default_conflict_id() -> str:
    return f"conflict-{next(_conflict_ids)}"


class SharedState(Mapping[str, Any]):
    """A versioned mapping shared by the participants of one session.

    Read it like a dict (values come back as copies), or take a consistent :meth:`read`.
    Change it with :meth:`update` (async, retried on conflict), :meth:`update_sync`,
    :meth:`write` (optimistic, with a base version), :meth:`assign` (keys at the current
    version) or ``state[key] = value``.
    """

    def __init__(
        self,
        session_id: str = "",
        initial: Mapping[str, Any] | None = None,
        *,
        strategy: Any = "merge",
        bus: EventBus | None = None,
        conflicts: dict[str, Conflict] | None = None,
        new_conflict_id: Any = None,
        history_limit: int | None = 100_000,
    ) -> None:
        self.session_id = session_id
        self.strategy = check_strategy(strategy)
        self._bus = bus if bus is not None else EventBus()
        self.conflicts: dict[str, Conflict] = {} if conflicts is None else conflicts
        self._new_conflict_id = new_conflict_id or _default_conflict_id
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._key_version: dict[str, int] = {}
        self._key_writer: dict[str, str] = {}
        self._version = 0
        # (version, timestamp, participant, changes, strategy) per commit, oldest first.
        self._history: deque[tuple[int, float, str, dict[str, Any], str | None]] = deque(
            maxlen=history_limit
        )
        self.retries = 0  # compare-and-set failures of update(), re-run with fresh data
        # Turns of contended updates: an asyncio.Lock per event loop, one lock for threads;
        # _turn_holders has the task (or thread id) in a turn, to refuse a nested update.
        self._loop_turns: weakref.WeakKeyDictionary[Any, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._thread_turn = threading.Lock()
        self._turn_holders: set[Any] = set()
        if initial:
            if not isinstance(initial, Mapping):
                raise ValidationError(
                    f"the initial shared state must be a dict, got {type(initial).__name__}"
                )
            self._check_keys(initial)
            self._data = copy.deepcopy(dict(initial))
            self._key_writer = dict.fromkeys(self._data, "initial")
            self._key_version = dict.fromkeys(self._data, 0)

    def _attach(
        self, bus: EventBus, conflicts: dict[str, Conflict], new_conflict_id: Any
    ) -> None:
        """Publish on the manager's bus and keep conflicts in the manager's registry."""
        self._bus = bus
        conflicts.update(self.conflicts)
        self.conflicts = conflicts
        self._new_conflict_id = new_conflict_id

    # -- reading -----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def read(self) -> Snapshot:
        """The current state as a private deep copy, with its version."""
        with self._lock:
            version, data = self._version, dict(self._data)
        return Snapshot(version, copy.deepcopy(data))

    @property
    def data(self) -> dict[str, Any]:
        """A deep copy of the current state (without the version)."""
        return self.read().data

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            value = self._data[key]
        return copy.deepcopy(value)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            keys = list(self._data)
        return iter(keys)

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> Any:
        """Keys and values of one version (a dict's items view of a snapshot)."""
        return self.read().data.items()

    def values(self) -> Any:
        """Values of one version (copies)."""
        return self.read().data.values()

    def keys(self) -> Any:
        with self._lock:
            return dict.fromkeys(self._data).keys()

    def __repr__(self) -> str:
        return f"<SharedState {self.session_id!r} v{self._version}: {sorted(self._data)}>"

    def history(self) -> list[dict[str, Any]]:
        """Every commit, oldest first: version, timestamp, participant, changes, strategy."""
        with self._lock:
            rows = list(self._history)
        return [
            {
                "session_id": self.session_id,
                "version": v,
                "timestamp": ts,
                "participant": who,
                "keys": tuple(changes),
                "changes": _show(changes),
                "strategy": strategy,
            }
            for v, ts, who, changes, strategy in rows
        ]

    # -- writing -----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self._write_current("user", {key: value})

    def __delitem__(self, key: str) -> None:
        self._write_current("user", {key: DELETE}, must_exist=key)

    def assign(self, participant: str, changes: Mapping[str, Any]) -> WriteOutcome:
        """Set keys (``DELETE`` removes one) at the current version, in one commit: like
        ``state[key] = value`` for several keys, and never a conflict."""
        _check_participant(participant)
        return self._write_current(participant, changes)

    def _write_current(
        self, participant: str, changes: Mapping[str, Any], *, must_exist: str | None = None
    ) -> WriteOutcome:
        """Write at whatever version is current when the lock is taken: never stale."""
        changes = self._normalise(changes, ())
        events: list[Any] = []
        with self._lock:
            if must_exist is not None and must_exist not in self._data:
                raise UnknownKeyError(must_exist, self._data)
            version = self._commit(participant, changes, None, events)
        self._emit(events)
        return WriteOutcome("applied", version, tuple(changes))

    def write(
        self,
        participant: str,
        changes: Mapping[str, Any],
        *,
        base_version: int,
        deletes: Iterable[str] = (),
    ) -> WriteOutcome:
        """Set (and with ``deletes`` or a ``DELETE`` value, remove) keys, based on a version.

        A base older than the current version goes to the conflict strategy (see the module
        docstring); the returned :class:`WriteOutcome` says what happened.
        """
        _check_participant(participant)
        changes = self._normalise(changes, deletes)
        if isinstance(base_version, bool) or not isinstance(base_version, int) or base_version < 0:
            raise ValidationError(
                f"base_version must be the int version of a snapshot, got {base_version!r}"
            )
        events: list[Any] = []
        with self._lock:
            current = self._version
            if base_version > current:
                raise ValidationError(
                    f"base_version {base_version} is newer than the shared state of session "
                    f"{self.session_id!r} (version {current}); use the version of a read()"
                )
            if not changes:
                return WriteOutcome("unchanged", current)
            if base_version == current:
                version = self._commit(participant, changes, None, events)
                outcome = WriteOutcome("applied", version, tuple(changes))
            else:
                outcome = self._stale_write(participant, changes, base_version, events)
        self._emit(events)
        return outcome

    async def update(
        self, participant: str, fn: Any, *, max_retries: int | None = None
    ) -> WriteOutcome:
        """Read-modify-write: ``fn(data)`` (sync or async) gets a copy of the state and returns
        the new state (or mutates the copy and returns ``None``). If someone committed in
        between, ``fn`` runs again on the fresh state, so no update is ever lost; contended
        updates take turns (see the module docstring). ``fn`` must not update this state."""
        _check_participant(participant)
        if not callable(fn):
            raise ValidationError(f"update() needs a callable fn(data), got {fn!r}")
        me = asyncio.current_task()
        self._refuse_nested(me, "update")
        turn = self._loop_turn()
        attempts = 0
        if not turn.locked():  # nobody queued: try at once, as an uncontended update would
            attempts += 1
            outcome = await self._attempt(participant, fn, attempts)
            if outcome is not None:
                return outcome
            _check_retries(attempts, max_retries, self.session_id)
        async with turn:
            self._turn_holders.add(me)
            try:
                while True:
                    attempts += 1
                    outcome = await self._attempt(participant, fn, attempts)
                    if outcome is not None:
                        return outcome
                    _check_retries(attempts, max_retries, self.session_id)
                    await asyncio.sleep(0)  # a thread or another loop beat us: let it finish
            finally:
                self._turn_holders.discard(me)

    async def _attempt(self, participant: str, fn: Any, attempts: int) -> WriteOutcome | None:
        version, base, data = self._read_for_update()
        new = fn(data)
        if inspect.isawaitable(new):
            new = await new
        return self._compare_and_set(participant, version, base, data, new, attempts)

    def update_sync(
        self, participant: str, fn: Any, *, max_retries: int | None = None
    ) -> WriteOutcome:
        """:meth:`update` for sync code (for example a sync handler in a worker thread)."""
        _check_participant(participant)
        if not callable(fn):
            raise ValidationError(f"update_sync() needs a callable fn(data), got {fn!r}")
        me = threading.get_ident()
        self._refuse_nested(me, "update_sync")
        self._refuse_nested(_current_task(), "update_sync")
        turn = self._thread_turn
        attempts = 0
        if not turn.locked():
            attempts += 1
            outcome = self._attempt_sync(participant, fn, attempts)
            if outcome is not None:
                return outcome
            _check_retries(attempts, max_retries, self.session_id)
        with turn:
            self._turn_holders.add(me)
            try:
                while True:
                    attempts += 1
                    outcome = self._attempt_sync(participant, fn, attempts)
                    if outcome is not None:
                        return outcome
                    _check_retries(attempts, max_retries, self.session_id)
            finally:
                self._turn_holders.discard(me)

    def _attempt_sync(self, participant: str, fn: Any, attempts: int) -> WriteOutcome | None:
        version, base, data = self._read_for_update()
        new = fn(data)
        if _discard_awaitable(new):
            raise ValidationError(
                "update_sync() got an async fn; use `await shared.update(participant, fn)`"
            )
        return self._compare_and_set(participant, version, base, data, new, attempts)

    def _loop_turn(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            turn = self._loop_turns.get(loop)
            if turn is None:
                turn = self._loop_turns[loop] = asyncio.Lock()
        return turn

    def _refuse_nested(self, me: Any, what: str) -> None:
        if me is not None and me in self._turn_holders:
            raise ValidationError(
                f"{what}() was called from inside an update fn of the same shared state "
                f"(session {self.session_id!r}); it would wait for its own turn. Make the "
                f"change in the outer fn's returned dict instead"
            )

    def _read_for_update(self) -> tuple[int, dict[str, Any], dict[str, Any]]:
        with self._lock:
            version, base = self._version, dict(self._data)
        return version, base, copy.deepcopy(base)

    def _compare_and_set(
        self,
        participant: str,
        version: int,
        base: dict[str, Any],
        data: dict[str, Any],
        new: Any,
        attempts: int,
    ) -> WriteOutcome | None:
        if new is None:
            new = data
        if not isinstance(new, Mapping):
            raise ValidationError(
                f"an update fn must return the new state as a dict (or None after changing "
                f"the dict it got), got {type(new).__name__}"
            )
        changes: dict[str, Any] = {k: v for k, v in new.items() if k not in base or not _same(base[k], v)}
        for k in base:
            if k not in new:
                changes[k] = DELETE
        self._check_keys(changes)
        changes = _copies(changes)
        events: list[Any] = []
        with self._lock:
            if self._version != version:
                self.retries += 1
                return None
            if not changes:
                return WriteOutcome("unchanged", version, attempts=attempts)
            new_version = self._commit(participant, changes, None, events)
        self._emit(events)
        return WriteOutcome("applied", new_version, tuple(changes), attempts=attempts)

    # -- conflicts ---------------------------------------------------------------------------

    def _stale_write(
        self, participant: str, changes: dict[str, Any], base: int, events: list[Any]
    ) -> WriteOutcome:
        """A write based on an old version (called under the lock)."""
        data, kv = self._data, self._key_version
        clash = tuple(
            k for k in changes if kv.get(k, -1) > base and not _same(data.get(k, DELETE), changes[k])
        )
        if not clash:
            version = self._commit(participant, changes, "merge", events)
            return WriteOutcome("merged", version, tuple(changes))
        strategy = self.strategy
        name = strategy_name(strategy)
        last = max(clash, key=lambda k: kv.get(k, -1))
        conflict = Conflict(
            conflict_id=self._new_conflict_id(),
            session_id=self.session_id,
            keys=clash,
            current={k: copy.deepcopy(data.get(k, DELETE)) for k in clash},
            incoming={k: changes[k] for k in clash},
            participants=(self._key_writer.get(last, "initial"), participant),
            strategy=name,
            base_version=base,
            version=self._version,
            created_at=time.time(),
        )
        rest = {k: v for k, v in changes.items() if k not in clash}
        if strategy == "merge":
            self._record(conflict, events)
            version = self._commit(participant, rest, "merge", events) if rest else self._version
            return WriteOutcome("conflict", version, tuple(rest), conflict)
        if strategy == "manual":
            conflict.held = rest
            self._record(conflict, events)
            return WriteOutcome("held", self._version, (), conflict)
        if strategy == "last_writer_wins":
            self._settle(conflict, dict(conflict.incoming), "last_writer_wins", events)
            version = self._commit(participant, changes, name, events)
            return WriteOutcome("merged", version, tuple(changes), conflict)
        if strategy == "first_writer_wins":
            self._settle(conflict, {}, "first_writer_wins", events)
            return WriteOutcome("rejected", self._version, (), conflict)
        decided = self._ask_callable(strategy, conflict)
        self._settle(conflict, decided, name, events)
        merged = {**rest, **{k: v for k, v in decided.items() if not _same(data.get(k, DELETE), v)}}
        version = self._commit(participant, merged, name, events) if merged else self._version
        return WriteOutcome("merged", version, tuple(merged), conflict)

    def _ask_callable(self, strategy: Any, conflict: Conflict) -> dict[str, Any]:
        name = conflict.strategy
        try:
            decided = strategy(conflict)
        except Exception as exc:
            raise CoordinationError(
                f"conflict strategy {name} failed on {conflict.conflict_id} "
                f"(keys {', '.join(conflict.keys)}): {type(exc).__name__}: {exc}; nothing of "
                f"the write by {conflict.participants[1]!r} was applied"
            ) from exc
        if _discard_awaitable(decided):
            raise ValidationError(
                f"conflict strategy {name} must be a plain function returning {{key: value}}, "
                f"not a coroutine function"
            )
        if decided is None:
            decided = {}
        if not isinstance(decided, Mapping):
            raise ValidationError(
                f"conflict strategy {name} must return a dict {{key: value}} for the clashing "
                f"keys {list(conflict.keys)}, got {type(decided).__name__}"
            )
        extra = set(decided) - set(conflict.keys)
        if extra:
            raise ValidationError(
                f"conflict strategy {name} returned key(s) {sorted(map(str, extra))} that are "
                f"not in conflict; it decides only {list(conflict.keys)}"
            )
        return _copies(decided)

    def resolve(self, conflict: Conflict | str, resolution: Any) -> bool:
        """Apply the chosen value of a pending conflict; False if it is not pending.

        ``resolution`` is ``"current"`` or ``"incoming"`` (or the name of the participant whose
        side wins), or a dict ``{key: value}`` of the values to write. For a held (manual)
        write, ``"incoming"`` applies all of it and ``"current"`` drops all of it.
        """
        if isinstance(conflict, str):
            found = self.conflicts.get(conflict)
            if found is None or found.session_id != self.session_id:
                return False
            conflict = found
        events: list[Any] = []
        with self._lock:
            if conflict.status != "pending":
                return False
            values, who = self._resolution_values(conflict, resolution)
            changes = {k: v for k, v in values.items() if not _same(self._data.get(k, DELETE), v)}
            self._settle(conflict, values, "manual", events)
            if changes:
                self._commit(who, changes, "manual", events)
        self._emit(events)
        return True

    def _resolution_values(self, conflict: Conflict, resolution: Any) -> tuple[dict[str, Any], str]:
        current_side, incoming_side = conflict.participants
        if isinstance(resolution, str):
            side = resolution
            if resolution not in ("current", "incoming"):
                if current_side == incoming_side and resolution == current_side:
                    raise ValidationError(
                        f"both sides of {conflict.conflict_id} are {resolution!r}: resolve it "
                        f"with 'current', 'incoming' or a dict {{key: value}}"
                    )
                if resolution == current_side:
                    side = "current"
                elif resolution == incoming_side:
                    side = "incoming"
                else:
                    raise ValidationError(_resolution_help(conflict, resolution))
            if side == "current":
                return {}, current_side
            return {**conflict.held, **conflict.incoming}, incoming_side
        if isinstance(resolution, Mapping):
            allowed = set(conflict.keys) | set(conflict.held)
            extra = set(resolution) - allowed
            if extra:
                raise ValidationError(
                    f"resolution for {conflict.conflict_id} names key(s) "
                    f"{sorted(map(str, extra))} outside the conflict; it may set "
                    f"{sorted(allowed)}"
                )
            return _copies(resolution), "resolve_conflict"
        raise ValidationError(_resolution_help(conflict, resolution))

    def _record(self, conflict: Conflict, events: list[Any]) -> None:
        self.conflicts[conflict.conflict_id] = conflict
        if self._bus:
            events.append(self._conflict_event(conflict))

    def _settle(
        self, conflict: Conflict, values: dict[str, Any], by: str, events: list[Any]
    ) -> None:
        conflict.status = "resolved"
        conflict.resolution = values
        conflict.resolved_by = by
        conflict.resolved_at = time.time()
        self.conflicts[conflict.conflict_id] = conflict
        conflict._wake()
        if self._bus:
            events.append(self._conflict_event(conflict))

    def _conflict_event(self, c: Conflict) -> SharedStateConflict:
        return SharedStateConflict(
            self.session_id,
            c.resolved_at or c.created_at,
            self.session_id,
            c.conflict_id,
            c.participants,
            c.keys,
            c.strategy if c.resolved_by is None else c.resolved_by,
            c.status == "resolved",
        )

    # -- the one place a version is made -----------------------------------------------------

    def _commit(
        self, participant: str, changes: dict[str, Any], strategy: str | None, events: list[Any]
    ) -> int:
        """Apply ``changes`` as the next version (called under the lock)."""
        self._version += 1
        version = self._version
        data, kv, kw = self._data, self._key_version, self._key_writer
        for key, value in changes.items():
            if value is DELETE:
                data.pop(key, None)
            else:
                data[key] = value
            kv[key] = version
            kw[key] = participant
        now = time.time()
        self._history.append((version, now, participant, changes, strategy))
        if self._bus:
            events.append(
                SharedStateChanged(
                    self.session_id, now, self.session_id, participant, version,
                    tuple(changes), strategy, _show(changes),
                )
            )
        return version

    def _emit(self, events: list[Any]) -> None:
        for event in events:
            self._bus.emit(event)

    def _normalise(self, changes: Mapping[str, Any], deletes: Iterable[str]) -> dict[str, Any]:
        if not isinstance(changes, Mapping):
            raise ValidationError(
                f"changes must be a dict {{key: value}}, got {type(changes).__name__}"
            )
        if isinstance(deletes, str):
            deletes = [deletes]
        out = _copies(changes)
        for k in deletes:
            out[k] = DELETE
        self._check_keys(out)
        return out

    @staticmethod
    def _check_keys(values: Mapping[Any, Any]) -> None:
        for key in values:
            if not isinstance(key, str):
                raise ValidationError(f"shared state keys must be strings, got {key!r}")


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return None


def _check_participant(participant: object) -> None:
    if not isinstance(participant, str) or not participant:
        raise ValidationError(
            f"participant must be a non-empty string naming who writes, got {participant!r}"
        )


def _check_retries(attempts: int, max_retries: int | None, session_id: str) -> None:
    if max_retries is not None and attempts > max_retries:
        raise CoordinationError(
            f"update of the shared state of session {session_id!r} lost the race "
            f"{attempts} times (max_retries={max_retries}); raise max_retries or write less "
            f"often"
        )


def _resolution_help(conflict: Conflict, resolution: Any) -> str:
    a, b = conflict.participants
    return (
        f"cannot resolve {conflict.conflict_id} with {resolution!r}: use 'current' (keep "
        f"{a!r}'s value), 'incoming' (take {b!r}'s), a participant name, or a dict "
        f"{{key: value}} for keys {list(conflict.keys)}"
    )
