"""How task results are written to a run store: JSON when the value survives it, else pickle.

JSON is used only when decoding gives back an equal value of the same types (``None``,
``bool``, ``int``, finite ``float``, ``str``, lists and dicts with string keys, nested), so a
stored tuple never comes back as a list. Everything else is pickled; unpickling runs code
chosen by whoever wrote the file, so only resume from stores you trust.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

__all__ = ["json_exact", "to_pickle", "from_pickle", "NotStorable"]

_SCALARS = (type(None), bool, int, str)


class NotStorable(Exception):
    """The value can be written neither as JSON nor with pickle (the message says why)."""


def _exact(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_exact(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _exact(v) for k, v in value.items())
    return False


def json_exact(value: Any) -> bool:
    """True when ``json.loads(json.dumps(value))`` gives back an equal value of equal types."""
    try:
        return _exact(value)
    except RecursionError:  # too deep for JSON too; pickle may still manage
        return False


def to_pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # PicklingError, TypeError, AttributeError, RecursionError...
        raise NotStorable(f"{type(exc).__name__}: {exc}") from exc


def from_pickle(data: bytes) -> Any:
    return pickle.loads(data)
