"""Reading a run store's values back without trusting the file.

SQLite stores any type in any column and the task history is a pickle, so a damaged or
crafted file can hold text where a timestamp belongs, JSON that does not parse or nests
thousands deep, or a small pickle whose shared references expand to more values than memory
holds (a 331-byte "bomb" of 40 lists, each holding the previous one twice, is a 2**40-leaf
list). Everything a reader takes from the file passes through here first: a value that is not
what wfkit writes raises :class:`Damaged` (the store turns it into a ``StoreError`` naming the
file), so readers never see a traceback and never walk an unbounded structure.

Sizes are measured as the value would be written out (a shared list counts each time it
appears), but in time proportional to the distinct objects, so a bomb is refused at once.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable
from typing import Any

from wfkit.metrics.codec import json_exact

__all__ = [
    "Damaged",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "measure",
    "unpack_rows",
    "check_json_value",
    "check_run_row",
    "json_column",
]

# Bounds on one stored value (a result, a JSON column), above codec.json_exact's for inline
# results, so whatever wfkit writes reads back, also from stores written by earlier versions.
MAX_DEPTH = 200  # nesting
MAX_ITEMS = 50_000_000  # values, a shared list counted each time it appears
MAX_TEXT = 1 << 30  # characters, counted the same way
MAX_INT_BITS = 13_000  # about 3,900 digits: below Python's int-to-text limit of 4,300
MAX_SECONDS = 9.2e9  # timestamps pandas can hold (nanoseconds in 64 bits: years 1678-2262)

_SCALARS = (type(None), bool, int, float, str)
_CONTAINERS = (list, tuple, dict, set, frozenset)


class Damaged(Exception):
    """A value read from a store is not what wfkit writes; the message says which and why."""


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain values only; refuses every class, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"a run store's transitions hold only plain values, not {module}.{name}"
        )


def _scalar_size(value: Any, what: str, strict: bool) -> int:
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is int:
        if strict and value.bit_length() > MAX_INT_BITS:  # JSON text of it would fail
            raise Damaged(f"{what} holds an integer of {value.bit_length()} bits")
        return 1
    if kind is float:
        if strict and not math.isfinite(value):
            raise Damaged(f"{what} holds {value!r}, which JSON cannot hold")
        return 1
    if kind is bool or value is None:
        return 1
    if not strict:
        return len(value) if kind in (bytes, bytearray) else 1
    raise Damaged(f"{what} holds a {kind.__name__}, not a plain value")


def measure(value: Any, what: str, *, strict: bool = True) -> tuple[int, int, int]:
    """``(items, characters, depth)`` of ``value`` as written out, where a shared container
    counts every time it appears; raises Damaged past MAX_DEPTH, MAX_ITEMS or MAX_TEXT, on a
    cycle, and (``strict``) on anything but JSON's types (lists, string-keyed dicts, str, int,
    finite float, bool, None). Not strict, any other object counts as one item (for results
    loaded from pickles, which may hold instances of classes).

    Iterative and memoised by object identity: time grows with the distinct objects only."""
    if type(value) in _SCALARS or not isinstance(value, _CONTAINERS):
        return 1, _scalar_size(value, what, strict), 0
    done: dict[int, tuple[int, int, int]] = {}
    keep: list[Any] = []  # ids stay valid while the objects are alive
    busy: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            items = chars = depth = 0
            for child in _children(node, what, strict):
                if type(child) in _SCALARS or not isinstance(child, _CONTAINERS):
                    items += 1
                    chars += _scalar_size(child, what, strict)
                    continue
                c_items, c_chars, c_depth = done[id(child)]
                items += c_items
                chars += c_chars
                depth = max(depth, c_depth)
            result = (items + 1, chars, depth + 1)
            if result[2] > MAX_DEPTH:
                raise Damaged(f"{what} is nested more than {MAX_DEPTH} deep")
            if result[0] > MAX_ITEMS:
                raise Damaged(f"{what} would expand to more than {MAX_ITEMS:,} values")
            if result[1] > MAX_TEXT:
                raise Damaged(f"{what} would expand to more than {MAX_TEXT:,} characters")
            busy.discard(key)
            done[key] = result
            continue
        if key in done:
            continue
        if key in busy:
            raise Damaged(f"{what} contains itself")
        if len(busy) >= MAX_DEPTH:
            raise Damaged(f"{what} is nested more than {MAX_DEPTH} deep")
        busy.add(key)
        keep.append(node)
        stack.append((node, True))
        for child in _children(node, what, strict):
            if isinstance(child, _CONTAINERS):
                ckey = id(child)
                if ckey in busy:
                    raise Damaged(f"{what} contains itself")
                if ckey not in done:
                    stack.append((child, False))
    return done[id(value)]


def _children(node: Any, what: str, strict: bool) -> Any:
    if type(node) is dict or (not strict and isinstance(node, dict)):
        if strict and any(type(k) is not str for k in node):
            raise Damaged(f"{what} holds a mapping whose keys are not all text")
        return [*node.keys(), *node.values()] if not strict else node.values()
    if strict and type(node) is not list:
        raise Damaged(f"{what} holds a {type(node).__name__}, not a plain value")
    return node


def unpack_rows(data: Any, what: str, fields: tuple[tuple[str, str], ...]) -> list[tuple[Any, ...]]:
    """The attempt states in one transitions blob, loaded without running any code: a list of
    tuples, each value of the kind its field in ``fields`` ((name, kind), ...) names: one of
    :data:`KINDS`. Checked a column at a time (fast); a damaged value is then found row by row
    to name it."""
    if not isinstance(data, bytes):
        raise Damaged(f"{what} is {type(data).__name__}, not a pickled list")
    try:
        rows = _PlainUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, OverflowError, MemoryError, RecursionError) as exc:
        raise Damaged(f"{what} does not load ({type(exc).__name__}: {exc})") from None
    if type(rows) is not list:
        raise Damaged(f"{what} is {_short(rows)}, not a list of attempt states")
    width = len(fields)
    if rows and not (set(map(type, rows)) == {tuple} and set(map(len, rows)) == {width}):
        bad = next(r for r in rows if type(r) is not tuple or len(r) != width)
        raise Damaged(f"{what} holds {_short(bad)}, not an attempt state of {width} values")
    if rows and not all(
        _COLUMN_OK[kind](column)
        for (_, kind), column in zip(fields, zip(*rows, strict=True), strict=True)
    ):
        for row in rows:  # find the value to name
            try:
                for (name, kind), value in zip(fields, row, strict=True):
                    KINDS[kind](value, name)
            except Damaged as exc:
                raise Damaged(f"{what}: an attempt's {exc}") from None
        raise Damaged(f"{what} holds a value of the wrong kind")  # pragma: no cover
    return rows


def check_json_value(value: Any, what: str) -> None:
    """Raise Damaged unless ``value`` is what codec.json_exact accepts, within the bounds."""
    measure(value, what)


def _short(value: Any) -> str:
    text = repr(value) if type(value) in _SCALARS else f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


# -- checks of single values ----------------------------------------------------------------


def text(value: Any, what: str) -> str:
    if type(value) is not str:
        raise Damaged(f"{what} is {_short(value)}, not text")
    return value


def optional_text(value: Any, what: str) -> str | None:
    return None if value is None else text(value, what)


def count(value: Any, what: str, *, top: int = 2**62) -> int:
    if type(value) is not int or not 0 <= value <= top:
        raise Damaged(f"{what} is {_short(value)}, not a whole number from 0 to {top}")
    return value


def flag(value: Any, what: str) -> int | None:
    if value is None or (type(value) in (int, bool) and value in (0, 1)):
        return value
    raise Damaged(f"{what} is {_short(value)}, not 0, 1 or nothing")


def timestamp(value: Any, what: str) -> float | None:
    """UNIX seconds, or None; text such as '2024-01-01' is damage, not a time."""
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or (
        abs(value) >= MAX_SECONDS
    ):
        raise Damaged(f"{what} is {_short(value)}, not a time in UNIX seconds")
    return float(value)


def json_column(value: Any, what: str, check: Callable[[Any, str], Any]) -> Any:
    """Parse a JSON text column and check its shape with ``check(data, what)``."""
    text(value, what)
    try:
        data = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise Damaged(f"{what} is not valid JSON ({type(exc).__name__}: {exc})") from None
    measure(data, what, strict=False)  # JSON text holds NaN and Infinity too
    check(data, what)
    return data


def names(data: Any, what: str) -> list[str]:
    if type(data) is not list or any(type(v) is not str for v in data):
        raise Damaged(f"{what} is not a list of names")
    return data


def agents(data: Any, what: str) -> list[Any]:
    """[[agent_id, capacity], ...]"""
    if type(data) is not list or any(
        type(a) is not list or len(a) != 2 or type(a[0]) is not str or type(a[1]) is not int
        or a[1] < 0
        for a in data
    ):
        raise Damaged(f"{what} is not a list of [agent id, capacity] pairs")
    return data


def mapping(data: Any, what: str) -> dict[str, Any]:
    if type(data) is not dict:
        raise Damaged(f"{what} is not a mapping")
    return data


def graph(data: Any, what: str) -> dict[str, Any]:
    """{task_id: [dependency, ...] or null}"""
    if type(data) is not dict or any(
        deps is not None and (type(deps) is not list or any(type(d) is not str for d in deps))
        for deps in data.values()
    ):
        raise Damaged(f"{what} is not a mapping of task ids to their dependencies")
    return data


# Each column of the runs table, as wfkit writes it.
RUN_COLUMNS: dict[str, Callable[[Any, str], Any]] = {
    "run_id": text,
    "workflow_id": text,
    "status": text,
    "started_at": lambda v, w: _required(timestamp(v, w), w),
    "finished_at": timestamp,
    "total_tasks": count,
    "successful_tasks": count,
    "failed_tasks": count,
    "skipped_tasks": count,
    "cancelled_tasks": count,
    "resumed_tasks": count,
    "executions": count,
    "participants": lambda v, w: json_column(v, w, names),
    "agents": lambda v, w: json_column(v, w, agents),
    "policy": text,
    "graph": lambda v, w: json_column(v, w, graph),
    "host": text,
    "pid": lambda v, w: count(v, w, top=2**31 - 1),
    "params": lambda v, w: None if v is None else json_column(v, w, mapping),
    "parent_run_id": optional_text,
    "parent_task_id": optional_text,
}


def _required(value: Any, what: str) -> Any:
    if value is None:
        raise Damaged(f"{what} is missing")
    return value


def check_run_row(columns: tuple[str, ...], row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row of the runs table with each named column checked (JSON columns parsed)."""
    run = row[columns.index("run_id")] if "run_id" in columns else None
    label = f"run {run!r}" if type(run) is str else "a run"
    return tuple(
        RUN_COLUMNS[name](value, f"{name} of {label}") if name in RUN_COLUMNS else value
        for name, value in zip(columns, row, strict=True)
    )


# The kinds of value an attempt state's fields hold: the check of one value (raising Damaged
# with a message), and a check of a whole column at once (True when every value passes).
KINDS: dict[str, Callable[[Any, str], Any]] = {
    "text": text,
    "optional_text": optional_text,
    "count": count,
    "timestamp": timestamp,
    "flag": flag,
    "json": lambda v, w: check_json_value(v, w),
    "unread": lambda v, w: None,  # a field this reader does not look at
}
_NONE = type(None)


def _timestamps_ok(column: tuple[Any, ...]) -> bool:
    if not set(map(type, column)) <= {float, int, _NONE}:
        return False
    values = [v for v in column if v is not None]
    return not values or (
        all(map(math.isfinite, values)) and -MAX_SECONDS < min(values)
        and max(values) < MAX_SECONDS
    )


def _json_ok(column: tuple[Any, ...]) -> bool:
    for value in column:
        if type(value) not in (_NONE, str, bool) and not json_exact(value):  # fast, bounded
            try:
                check_json_value(value, "result")
            except Damaged:
                return False
    return True


_COLUMN_OK: dict[str, Callable[[tuple[Any, ...]], bool]] = {
    "text": lambda c: set(map(type, c)) <= {str},
    "optional_text": lambda c: set(map(type, c)) <= {str, _NONE},
    "count": lambda c: set(map(type, c)) <= {int} and 0 <= min(c) and max(c) <= 2**62,
    "timestamp": _timestamps_ok,
    "flag": lambda c: set(map(type, c)) <= {int, bool, _NONE} and set(c) <= {0, 1, None},
    "json": _json_ok,
    "unread": lambda c: True,
}
