"""How task results are written to a run store: JSON when the value survives it, else pickle.

JSON is used only when decoding gives back an equal value of the same types (``None``,
``bool``, ``int``, finite ``float``, ``str``, lists and dicts with string keys, nested), so a
stored tuple never comes back as a list, and only within bounds of depth and size that a
reader of the file accepts. Everything else is pickled; unpickling runs code
chosen by whoever wrote the file, so only resume from stores you trust.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

__all__ = ["json_exact", "to_pickle", "from_pickle", "NotStorable"]

_SCALARS = (type(None), bool, int, str)

# A result goes inline only within these bounds (a reader accepts more, see metrics.decode):
# deeper, larger or more shared values are pickled, and checking a value stops at the bound.
JSON_MAX_DEPTH = 100
JSON_MAX_ITEMS = 1_000_000  # values, a shared list counted each time it appears
JSON_MAX_TEXT = 1 << 28  # characters of text, counted the same way
JSON_MAX_INT_BITS = 13_000  # JSON text of a larger int exceeds Python's 4,300-digit limit


class NotStorable(Exception):
    """The value can be written neither as JSON nor with pickle (the message says why)."""


class _TooBig(Exception):
    pass


def _exact(value: Any, depth: int, budget: list[int]) -> bool:
    budget[0] -= 1
    if budget[0] < 0 or depth > JSON_MAX_DEPTH:
        raise _TooBig
    kind = type(value)
    if kind is int:
        return value.bit_length() <= JSON_MAX_INT_BITS
    if kind is str:
        budget[1] -= len(value)
        if budget[1] < 0:
            raise _TooBig
        return True
    if kind in _SCALARS:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_exact(v, depth + 1, budget) for v in value)
    if kind is dict:
        return all(type(k) is str and _exact(v, depth + 1, budget) for k, v in value.items())
    return False


def json_exact(value: Any) -> bool:
    """True when ``json.loads(json.dumps(value))`` gives back an equal value of equal types,
    and the value is within the inline bounds above (checking it stops at the bounds)."""
    try:
        return _exact(value, 1, [JSON_MAX_ITEMS, JSON_MAX_TEXT])
    except (_TooBig, RecursionError):  # too deep or large for inline JSON; pickle manages
        return False


def to_pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # PicklingError, TypeError, AttributeError, RecursionError...
        raise NotStorable(f"{type(exc).__name__}: {exc}") from exc


def from_pickle(data: bytes) -> Any:
    return pickle.loads(data)
