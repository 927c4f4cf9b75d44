"""The result cache: a task whose inputs and code have not changed is not run again.

A task's key is a digest of what its result depends on:

- its code: the action's (or the agent handler's) code object with its constants, nested code
  and names, recursively the functions of the same module it refers to, its default
  arguments, the values it closes over and the plain values (numbers, strings) of module
  globals it reads. File names and line numbers are left out, so moving a function, or a
  notebook that is restarted (whose cells get new file names), keeps the key;
- the task's id and ``cache_version``; for a task run by its agent's handler, the task fields
  a handler reads (description, capabilities, estimate);
- each input's key: the key of a cached upstream result, else a digest of the value itself
  (pandas through ``pandas.util.hash_pandas_object``, numpy arrays by their buffer, anything
  else pickled). So a change upstream changes every key downstream;
- the run parameters the task read (``ctx.params``). Which ones it reads is only known once it
  has run, so an entry records them with their values' digests under the key made of the rest
  (the *base* key): a later run reuses the entry only when those parameters still have the
  same values.

``cache_key=callable(ctx)`` replaces the computed part with what the callable returns.
An input that cannot be hashed makes the task uncacheable for that run (one warning line).

Entries live in memory per orchestrator, or in the run store's file when the orchestrator has
a store (:mod:`wfkit.metrics.cache_table`): they survive a kernel restart and are shared by
every process using that file. ``orchestrator.cache`` is a :class:`ResultCache`.
"""

from __future__ import annotations

import marshal
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

try:  # hashlib's own blake2b, without importing hashlib (and OpenSSL's) with wfkit
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _blake2b

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ResultCache",
    "CacheEntry",
    "KeyMaker",
    "UncacheableWarning",
    "Unhashable",
    "value_digest",
    "function_digest",
    "full_key",
    "digest_key",
    "warn_uncacheable",
    "CACHE_MODES",
    "KEPT_AS_IS",
]

CACHE_MODES = ("use", "refresh", "off")
_SCALARS = (int, float, str, bytes, bool, complex, type(None))


class UncacheableWarning(UserWarning):
    """A task could not be cached in this run (an input or its key could not be hashed)."""


class Unhashable(Exception):
    """A value the cache cannot digest (the message says why)."""


def _digest(*parts: bytes) -> str:
    h = _blake2b(digest_size=16)
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return h.hexdigest()


# -- values ------------------------------------------------------------------------------------


def value_digest(value: Any) -> str:
    """A digest of ``value``'s content; raises :class:`Unhashable` when there is none."""
    import pickle  # loaded with the first value pickled, not with wfkit

    kind = type(value)
    if kind in _SCALARS:
        return _digest(b"s", kind.__name__.encode(), repr(value).encode())
    module = kind.__module__ or ""
    try:
        if module.startswith("pandas"):
            return _pandas_digest(value)
        if module == "numpy" and kind.__name__ == "ndarray":
            return _numpy_digest(value)
        return _digest(b"p", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Unhashable:
        raise
    except Exception as exc:  # PicklingError, TypeError, RecursionError...
        raise Unhashable(f"{type(value).__name__} ({type(exc).__name__}: {exc})") from None


def _numpy_digest(arr: Any) -> str:
    import pickle

    import numpy as np

    if arr.dtype.hasobject:  # pointers, not content: pickle the objects
        return _digest(b"np-o", pickle.dumps(arr, protocol=pickle.HIGHEST_PROTOCOL))
    data = np.ascontiguousarray(arr)
    return _digest(b"np", str(arr.dtype).encode(), repr(arr.shape).encode(), data.tobytes())


def _pandas_digest(obj: Any) -> str:
    import pickle

    import pandas as pd

    if isinstance(obj, pd.DataFrame | pd.Series | pd.Index):
        try:
            rows = pd.util.hash_pandas_object(obj, index=not isinstance(obj, pd.Index)).to_numpy()
        except TypeError:  # unhashable cells (lists, dicts): their pickle is the content
            return _digest(b"pd-p", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        meta = (
            repr(list(obj.columns)) + repr([str(d) for d in obj.dtypes])
            if isinstance(obj, pd.DataFrame)
            else repr(getattr(obj, "name", None)) + str(obj.dtype)
        )
        return _digest(b"pd", type(obj).__name__.encode(), meta.encode(), rows.tobytes())
    return _digest(b"p", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


# -- code --------------------------------------------------------------------------------------


def _const_bytes(c: Any, out: list[bytes]) -> None:
    if isinstance(c, types.CodeType):
        _code_bytes(c, out)
    elif isinstance(c, tuple):
        out.append(b"(")
        for x in c:
            _const_bytes(x, out)
        out.append(b")")
    elif isinstance(c, frozenset):  # iteration order depends on the hash seed: sort
        parts = []
        for x in c:
            sub: list[bytes] = []
            _const_bytes(x, sub)
            parts.append(b"".join(sub))
        out.append(b"{" + b",".join(sorted(parts)) + b"}")
    else:
        out.append(type(c).__name__.encode() + b":" + repr(c).encode())


_code_memo: dict[types.CodeType, bytes] = {}
_CODE_MEMO_LIMIT = 8192


def _code_bytes(code: types.CodeType, out: list[bytes]) -> None:
    """The parts of ``code`` that decide what it does: not its file name or line numbers."""
    memo = _code_memo.get(code)
    if memo is None:
        parts: list[bytes] = [
            code.co_code,
            marshal.dumps((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                           code.co_argcount, code.co_kwonlyargcount, code.co_flags)),
        ]
        for c in code.co_consts:
            _const_bytes(c, parts)
        memo = _blake2b(b"\0".join(parts), digest_size=16).digest()
        if len(_code_memo) >= _CODE_MEMO_LIMIT:
            _code_memo.clear()
        _code_memo[code] = memo
    out.append(memo)


def _names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _names(c)


def function_digest(fn: Any, memo: dict[int, str] | None = None) -> str:
    """A digest of what ``fn`` does (see the module docstring); ``memo`` (id -> digest) is
    shared by the tasks of one run. Raises :class:`Unhashable` for what cannot be digested."""
    if memo is None:
        memo = {}
    return _function_digest(fn, memo, set())


def _function_digest(fn: Any, memo: dict[int, str], visiting: set[int]) -> str:
    key = id(fn)
    known = memo.get(key)
    if known is not None:
        return known
    if key in visiting:  # recursion (a function that calls itself): its name is enough
        return _digest(b"rec", getattr(fn, "__qualname__", "?").encode())
    visiting.add(key)
    try:
        out = _describe(fn, memo, visiting)
    finally:
        visiting.discard(key)
    memo[key] = out
    return out


def _describe(fn: Any, memo: dict[int, str], visiting: set[int]) -> str:
    from wfkit.agents.model import WorkflowTask

    if isinstance(fn, WorkflowTask):
        return _function_digest(fn.fn, memo, visiting)
    if isinstance(fn, types.MethodType):
        return _digest(b"m", _function_digest(fn.__func__, memo, visiting).encode(),
                       value_digest(fn.__self__).encode())
    import functools

    if isinstance(fn, functools.partial):
        return _digest(b"partial", _function_digest(fn.func, memo, visiting).encode(),
                       value_digest((fn.args, fn.keywords)).encode())
    if not isinstance(fn, types.FunctionType):
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - a callable object
        if isinstance(call, types.FunctionType):  # its class's code and its state
            return _digest(b"obj", _function_digest(call, memo, visiting).encode(),
                           value_digest(fn).encode())
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        return _digest(b"builtin", f"{getattr(fn, '__module__', None)}.{name}".encode())
    code = fn.__code__
    parts: list[bytes] = []
    _code_bytes(code, parts)
    if fn.__defaults__:
        parts.append(value_digest(fn.__defaults__).encode())
    if fn.__kwdefaults__:
        parts.append(value_digest(sorted(fn.__kwdefaults__.items())).encode())
    if fn.__closure__:
        for name, cell in zip(code.co_freevars, fn.__closure__, strict=False):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            parts.append(name.encode() + b"=" + _reference_digest(content, fn, memo, visiting))
    module = fn.__module__
    g = fn.__globals__
    builtins = g.get("__builtins__")
    for name in sorted(set(_names(code))):
        if name not in g:
            continue  # a builtin, an attribute name, or not defined yet
        ref = g[name]
        if ref is builtins:
            continue
        digest = _global_digest(ref, module, memo, visiting)
        if digest is not None:
            parts.append(name.encode() + b"=" + digest)
    return _blake2b(b"\0".join(parts), digest_size=16).hexdigest()


def _reference_digest(value: Any, owner: Any, memo: dict[int, str], visiting: set[int]) -> bytes:
    if callable(value) and not isinstance(value, type):
        return _function_digest(value, memo, visiting).encode()
    return value_digest(value).encode()


def _global_digest(ref: Any, module: str, memo: dict[int, str], visiting: set[int]) -> bytes | None:
    """What a global name a function reads adds to its digest: same-module functions
    recursively, plain values by value; modules, classes and other libraries' functions by
    nothing (their version is the environment's business)."""
    from wfkit.agents.model import WorkflowTask

    if type(ref) in _SCALARS:
        return value_digest(ref).encode()
    if isinstance(ref, tuple | frozenset) and all(type(x) in _SCALARS for x in ref):
        return value_digest(ref).encode()
    if isinstance(ref, WorkflowTask):
        ref = ref.action
    if isinstance(ref, types.FunctionType) and ref.__module__ == module:
        return _function_digest(ref, memo, visiting).encode()
    return None


# -- keys ------------------------------------------------------------------------------------
#
# Inside a run and in memory, keys are raw 16-byte digests: a key is hashed from fixed-width
# parts, so the parts of a task with a few inputs fit one blake2b block (hex keys took two),
# and no hex is made for a key that is only compared. Hex is made where a key is shown
# (CacheEntry, frame()) or written (the run store's table).
#
# A base key is the blake2b-16 of: the code digest (16 bytes), the task id (UTF-8), then
# either 0xFF, or 0xFE, a count and length-prefixed extra parts (cache_version, map index,
# the fields a handler reads), then the inputs' keys (16 bytes each). 0xFE and 0xFF never
# occur in UTF-8, and the inputs' keys fill the rest at a fixed width, so two different sets
# of parts never make the same bytes. Keys made before this layout (hex-joined text) are
# simply not found again: their tasks run once more and are stored under the new keys.


def _raw_digest(*parts: bytes) -> bytes:
    h = _blake2b(digest_size=16)
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return h.digest()


def digest_key(parts: list[str]) -> str:
    """The digest of text parts joined by a control character (a custom key's parts: the
    task id and the reprs of what ``cache_key`` returned and of ``cache_version``)."""
    return _blake2b("\x01".join(parts).encode(), digest_size=16).hexdigest()


def raw_key(parts: list[str]) -> bytes:
    """:func:`digest_key` as the raw 16 bytes the engine keeps."""
    return _blake2b("\x01".join(parts).encode(), digest_size=16).digest()


def full_key(base: str, params: Mapping[str, str]) -> str:
    """The key of an entry: its base key and the digests of the parameters it read (hex)."""
    return full_raw_key(bytes.fromhex(base), params).hex()


def full_raw_key(base: bytes, params: Mapping[str, str]) -> bytes:
    """:func:`full_key` on raw keys."""
    if not params:
        return base
    return _raw_digest(base, *(f"{k}={v}".encode() for k, v in sorted(params.items())))


# An empty 16-byte blake2b to copy: its constructor parses keyword arguments, which is most of
# what digesting a task's short key costs.
_KEY_HASH = _blake2b(digest_size=16)
_PLAIN_TASK = b"\xff"  # after the task id: no extra parts
_EXTRA = b"\xfe"  # after the task id: a count and length-prefixed extra parts


class KeyMaker:
    """Makes the base keys of one run's tasks; digests of functions and of uncached inputs
    are computed once per run."""

    def __init__(self, run_params: Mapping[str, Any]) -> None:
        self._functions: dict[int, str] = {}
        # id(callable) -> a hash with its code digest already fed: each key copies it. The
        # run's tasks hold their callables, so an id is not reused while the run lasts.
        self._codes: dict[int, Any] = {}
        self._values: dict[str, bytes] = {}
        self._param_digests: dict[str, str] = {}
        self.run_params = run_params

    def key(
        self, task: Any, fn: Any, keys: Mapping[str, bytes], results: Mapping[str, Any]
    ) -> bytes:
        """A task's raw key but for the run parameters it reads (see the layout above): its
        code, id and options, and its inputs' keys (``keys``, the raw keys of cached
        results; else a digest of the value in ``results``). Raises :class:`Unhashable`
        when something cannot be digested."""
        h = self._codes.get(id(fn))
        if h is None:
            h = self._code_hash(fn)
        h = h.copy()  # copying a fresh hash costs half of making one
        if task.cache_version is None and task.action is not None and task.map_index is None:
            h.update(task.task_id.encode())
            h.update(_PLAIN_TASK)
        else:
            h.update(task.task_id.encode() + self._extra(task))
        deps = task.dependencies
        if deps:
            try:  # the inputs' keys, when they are all cached (the common case)
                for d in deps:
                    h.update(keys[d])
            except KeyError:
                return self._key_with_values(task, fn, keys, results)
        return h.digest()

    def _key_with_values(
        self, task: Any, fn: Any, keys: Mapping[str, bytes], results: Mapping[str, Any]
    ) -> bytes:
        """:meth:`key` when some input is not cached: that input's value digest instead."""
        h = self._codes[id(fn)].copy()
        if task.cache_version is None and task.action is not None and task.map_index is None:
            h.update(task.task_id.encode() + _PLAIN_TASK)
        else:
            h.update(task.task_id.encode() + self._extra(task))
        for d in task.dependencies:
            h.update(self.input_key(d, keys, results))
        return h.digest()

    @staticmethod
    def _extra(task: Any) -> bytes:
        parts = ["v" + repr(task.cache_version)]
        if task.map_index is not None:  # the same inputs, another item
            parts.append(f"map_index={task.map_index}")
        if task.action is None:  # a handler reads the task
            parts += [repr(task.description), repr(sorted(task.capability_set)),
                      repr(task.estimated_duration)]
        out = [_EXTRA, len(parts).to_bytes(4, "little")]
        for p in parts:
            b = p.encode()
            out += [len(b).to_bytes(4, "little"), b]
        return b"".join(out)

    def _code_hash(self, fn: Any) -> Any:
        code = function_digest(fn, self._functions)
        h = self._codes[id(fn)] = _KEY_HASH.copy()
        h.update(bytes.fromhex(code))
        return h

    def base_key(
        self, task: Any, fn: Any, keys: Mapping[str, str], results: Mapping[str, Any]
    ) -> str:
        """:meth:`key` in hex, given the inputs' keys in hex."""
        raw = {d: bytes.fromhex(k) for d, k in keys.items()}
        return self.key(task, fn, raw, results).hex()

    def input_key(self, dep: str, keys: Mapping[str, bytes], results: Mapping[str, Any]) -> bytes:
        key = keys.get(dep)
        if key is not None:
            return key
        key = self._values.get(dep)
        if key is None:
            try:
                key = self._values[dep] = bytes.fromhex(value_digest(results[dep]))
            except Unhashable as exc:
                raise Unhashable(f"its input {dep!r} is a {exc}") from None
        return key

    def param_digests(self, names: Iterable[str]) -> dict[str, str]:
        out = {}
        for name in names:
            d = self._param_digests.get(name)
            if d is None:
                d = self._param_digests[name] = value_digest(self.run_params.get(name))
            out[name] = d
        return out


# -- where entries live ------------------------------------------------------------------------


class CacheEntry:
    """One cached result: its key and base key (hex), task, parameters read, value and
    bookkeeping."""

    __slots__ = ("key", "base", "task_id", "workflow_id", "params", "value", "created",
                 "expires", "hits", "size")

    def __init__(self, key: str, base: str, task_id: str, workflow_id: str,
                 params: Mapping[str, str] | Iterable[tuple[str, str]], value: Any, created: float,
                 expires: float | None, hits: int = 0, size: int | None = None) -> None:
        self.key, self.base, self.task_id, self.workflow_id = key, base, task_id, workflow_id
        self.params = dict(params) if not isinstance(params, dict) else params
        self.value, self.created, self.expires = value, created, expires
        self.hits, self.size = hits, size

    def row(self) -> tuple[Any, ...]:
        """The entry's data as a plain tuple (``CacheEntry(*row)`` rebuilds it); what
        :meth:`ResultCache.put` takes has the raw keys instead (:meth:`raw_row`)."""
        return (self.key, self.base, self.task_id, self.workflow_id,
                tuple(sorted(self.params.items())), self.value, self.created, self.expires)

    def raw_row(self) -> tuple[Any, ...]:
        """:meth:`row` with the keys as raw bytes (what :meth:`ResultCache.put` takes)."""
        return (bytes.fromhex(self.key), bytes.fromhex(self.base), *self.row()[2:])

    def matches(self, current: Callable[[Iterable[str]], dict[str, str]], now: float) -> bool:
        if self.expires is not None and now >= self.expires:
            return False
        return not self.params or current(self.params) == self.params


# The types of values an in-memory entry keeps as they are: immutable, so no private copy is
# needed. The engine keeps a new entry of such a value in the index itself (no call).
KEPT_AS_IS = (type(None), bool, int, float, complex, str, bytes, range)


def _freeze(value: Any) -> tuple[Any, bool]:
    """An in-memory entry's value as a private copy: its pickle, and True (a task that changes
    its input in place must not change the cached result). Immutable scalars stay as they
    are, and so does a value that cannot be pickled (shared): False."""
    import pickle  # loaded with the first value pickled, not with wfkit

    if type(value) in KEPT_AS_IS:
        return value, False
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), True
    except Exception:
        return value, False


def _rows(kept: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
    """The rows kept under a base key: one row itself (its first field is its key), or a
    tuple of rows (one per set of parameter values read)."""
    return (kept,) if type(kept[0]) is bytes else kept


class _Memory:
    """Entries in this process only (an orchestrator without a store).

    An entry is kept as a plain tuple (:meth:`CacheEntry.raw_row`) under its raw base key
    (one row, or a tuple of rows: see :func:`_rows`); the keys of those whose value is kept
    pickled (:func:`_freeze`) in a set, and hit counts in a dict of raw key -> int: tuples of
    plain values and such containers leave the cyclic garbage collector's view, so thousands
    of entries do not slow every collection of a run down. Each hit unpickles a fresh copy
    of the value.
    """

    def __init__(self) -> None:
        self.by_base: dict[bytes, tuple[Any, ...]] = {}
        self.hits: dict[bytes, int] = {}
        self.pickled: set[bytes] = set()

    def candidates(self, base: bytes) -> list[CacheEntry]:
        kept = self.by_base.get(base)
        if not kept:
            return []
        return [_Lazy(row, self.hits.get(row[0], 0), row[0] in self.pickled)
                for row in _rows(kept)]

    def put(self, row: tuple[Any, ...]) -> None:
        key, base = row[0], row[1]
        value, pickled = _freeze(row[5])
        if pickled:
            row = (*row[:5], value, *row[6:])
            self.pickled.add(key)
        else:
            self.pickled.discard(key)
        kept = self.by_base.get(base)
        if kept is None:
            self.by_base[base] = row
            return
        others = tuple(r for r in _rows(kept) if r[0] != key)
        self.by_base[base] = (*others, row) if others else row
        self.hits.pop(key, None)

    def hit(self, entry: CacheEntry) -> None:
        entry.hits += 1
        key = entry._row[0] if isinstance(entry, _Lazy) else bytes.fromhex(entry.key)
        self.hits[key] = self.hits.get(key, 0) + 1

    def entries(self) -> list[CacheEntry]:
        out = []
        pickled = self.pickled
        for kept in self.by_base.values():
            for row in _rows(kept):
                value = row[5]
                size = len(value) if row[0] in pickled else sys.getsizeof(value)
                out.append(CacheEntry(row[0].hex(), row[1].hex(), row[2], row[3], row[4], None,
                                      row[6], row[7], hits=self.hits.get(row[0], 0), size=size))
        return out

    def clear(self) -> int:
        n = sum(len(_rows(kept)) for kept in self.by_base.values())
        self.by_base.clear()
        self.hits.clear()
        self.pickled.clear()
        return n

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Lazy(CacheEntry):
    """An in-memory entry whose value is unpickled only if it is used (a hit)."""

    __slots__ = ("_row", "_pickled")

    def __init__(self, row: tuple[Any, ...], hits: int, pickled: bool) -> None:
        super().__init__(row[0].hex(), row[1].hex(), row[2], row[3], row[4], None, row[6],
                         row[7], hits=hits)
        self._row, self._pickled = row, pickled

    @property
    def value(self) -> Any:
        if not self._pickled:
            return self._row[5]
        import pickle

        return pickle.loads(self._row[5])

    @value.setter
    def value(self, _: Any) -> None:
        pass


class ResultCache:
    """``orchestrator.cache``: the results of cacheable tasks, by key.

    ``frame()`` lists the entries (key, task, size in bytes, created, hits); ``clear()``
    forgets them all. With a run store the entries are in the store's file (see
    :mod:`wfkit.metrics.cache_table`).
    """

    def __init__(self, path: Any = None, *, json_only: bool = False) -> None:
        self._path = path
        self._json_only = json_only
        self._backend: Any = _Memory() if path is None else None
        # The in-memory entries by raw base key (None with a store): the engine tests a key
        # against it before calling lookup(), so a miss costs no call.
        self.index: dict[bytes, Any] | None = (
            self._backend.by_base if self._backend is not None else None
        )
        self._lock = threading.Lock()

    @property
    def backend(self) -> Any:
        """Where the entries are; a store's table is opened on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    from wfkit.metrics.cache_table import StoredCache

                    self._backend = StoredCache(self._path, json_only=self._json_only)
        return self._backend

    @property
    def persistent(self) -> bool:
        return self._path is not None

    def lookup(
        self, base: bytes, current: Callable[[Iterable[str]], dict[str, str]]
    ) -> CacheEntry | None:
        """The entry for the raw base key ``base`` whose parameters still have their values,
        or None."""
        if self.index is not None and base not in self.index:
            return None  # the common miss, without a call
        candidates = (self._backend or self.backend).candidates(base)
        if not candidates:
            return None
        now = time.time()
        for entry in reversed(candidates):  # newest first
            if entry.matches(current, now):
                self.backend.hit(entry)
                return entry
        return None

    def put(self, row: tuple[Any, ...]) -> bool:
        """Keep an entry, given as :meth:`CacheEntry.raw_row` (raw key, raw base key, task
        id, workflow id, sorted (parameter, digest) pairs, value, created, expires); False
        when its value cannot be stored (then it is not cached)."""
        by_base = self.index
        if by_base is not None and type(row[5]) in KEPT_AS_IS and row[1] not in by_base:
            by_base[row[1]] = row  # a new entry of a plain value: no call
            return True
        return (self._backend or self.backend).put(row) is not False

    def flush(self) -> None:
        """Write what is buffered (a stored cache writes once per loop iteration)."""
        if self._backend is not None:
            self._backend.flush()

    def clear(self) -> int:
        """Forget every entry; returns how many there were."""
        return self.backend.clear()

    def frame(self) -> pd.DataFrame:
        """One row per entry: key, task, size (bytes), created (UTC), hits."""
        import pandas as pd

        rows = [(e.key, e.task_id, e.size, e.created, e.hits) for e in self.backend.entries()]
        df = pd.DataFrame(rows, columns=["key", "task", "size", "created", "hits"])
        df["key"] = df["key"].astype("string")
        df["task"] = df["task"].astype("string")
        df["size"] = df["size"].astype("Int64")
        df["hits"] = df["hits"].astype("Int64")
        df["created"] = pd.to_datetime(df["created"].astype("float64"), unit="s", utc=True)
        return df.sort_values("created", kind="stable").reset_index(drop=True)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def __len__(self) -> int:
        return len(self.backend.entries())

    def __repr__(self) -> str:
        where = f"in {self._path}" if self._path is not None else "in memory"
        return f"<ResultCache {where}>"


def warn_uncacheable(task_id: str, why: str) -> None:
    warnings.warn(
        f"task {task_id!r} is not cached in this run: {why}", UncacheableWarning, stacklevel=2
    )
