"""A small declarative condition language, shared by integration routing and coordination.

A condition is one of:

- a leaf ``{"field": "order.amount", "op": ">", "value": 1000}``; ``field`` is a dotted path
  into the data (mapping keys, or integer indexes into lists), ``op`` is one of
  ``== != > >= < <= in not_in exists contains``. ``exists`` takes an optional boolean
  ``value`` (default ``True``); every other op needs ``value``;
- a combinator ``{"all": [cond, ...]}``, ``{"any": [cond, ...]}`` or ``{"not": cond}``;
- a callable ``cond(data) -> bool``.

No string is ever evaluated as code: a field path is only ever split on dots and looked up.
Validate a condition once with :func:`validate_condition` (cheap errors before any message
moves); :func:`evaluate` then never raises on well-formed conditions. A missing field equals
nothing and is in nothing (so only ``!=``, ``not_in`` and ``exists: false`` hold for it), and a
comparison between values that cannot be ordered (``"abc" > 3``) is false.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wfkit.errors import ConditionError

__all__ = [
    "OPS",
    "ConditionError",
    "Condition",
    "validate_condition",
    "evaluate",
    "get_path",
    "describe_condition",
]

Condition = Mapping[str, Any] | Callable[[Mapping[str, Any]], Any]

_MISSING = object()


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, Mapping | Sequence | set | frozenset):
        return item in container
    return False


def _in(item: Any, container: Any) -> bool:
    return _contains(container, item)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "in": _in,
    "not_in": lambda a, b: not _in(a, b),
    "contains": _contains,
}

OPS: tuple[str, ...] = (*_COMPARE, "exists")
_COMBINATORS = ("all", "any", "not")
_LEAF_KEYS = frozenset({"field", "op", "value"})


def get_path(data: Any, path: str, default: Any = _MISSING) -> Any:
    """Look up a dotted path (``"order.items.0.sku"``) in nested mappings and sequences."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, Sequence) and not isinstance(current, str | bytes):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return default
        else:
            return default
    return current


def validate_condition(cond: Any, _path: str = "$") -> None:
    """Raise :class:`ConditionError` naming what is malformed; return None when ``cond`` is fine."""
    if callable(cond) and not isinstance(cond, Mapping):
        return
    if not isinstance(cond, Mapping):
        raise ConditionError(
            f"expected a mapping such as {{'field': 'a.b', 'op': '==', 'value': 1}}, "
            f"a combinator ('all', 'any', 'not') or a callable, got {type(cond).__name__} "
            f"{cond!r}",
            path=_path,
            condition=cond,
        )
    combinators = [key for key in _COMBINATORS if key in cond]
    if combinators:
        if len(cond) != 1:
            raise ConditionError(
                f"a combinator stands alone: {sorted(map(str, cond))} mixes "
                f"{combinators[0]!r} with other keys; nest them inside it instead",
                path=_path,
                condition=cond,
            )
        key = combinators[0]
        inner = cond[key]
        if key == "not":
            validate_condition(inner, f"{_path}.not")
            return
        if isinstance(inner, str | bytes | Mapping) or not isinstance(inner, Sequence):
            raise ConditionError(
                f"{key!r} needs a list of conditions, got {type(inner).__name__}",
                path=f"{_path}.{key}",
                condition=cond,
            )
        if not inner:
            raise ConditionError(
                f"{key!r} needs at least one condition, got an empty list",
                path=f"{_path}.{key}",
                condition=cond,
            )
        for i, sub in enumerate(inner):
            validate_condition(sub, f"{_path}.{key}[{i}]")
        return
    unknown = set(cond) - _LEAF_KEYS
    if unknown:
        raise ConditionError(
            f"unknown key(s) {', '.join(map(repr, sorted(map(str, unknown))))}; a leaf has "
            f"'field', 'op' and 'value', a combinator is one of 'all', 'any', 'not'",
            path=_path,
            condition=cond,
        )
    field = cond.get("field")
    if not isinstance(field, str) or not field or any(not p for p in field.split(".")):
        raise ConditionError(
            f"'field' must be a non-empty dotted path such as 'order.amount', got {field!r}",
            path=_path,
            condition=cond,
        )
    op = cond.get("op")
    if op not in OPS:
        raise ConditionError(
            f"unknown op {op!r}: use one of {', '.join(OPS)}", path=_path, condition=cond
        )
    if op == "exists":
        if "value" in cond and not isinstance(cond["value"], bool):
            raise ConditionError(
                f"'exists' takes an optional boolean value, got {cond['value']!r}",
                path=_path,
                condition=cond,
            )
        return
    if "value" not in cond:
        raise ConditionError(f"op {op!r} needs a 'value'", path=_path, condition=cond)
    if op in ("in", "not_in"):
        value = cond["value"]
        if isinstance(value, bytes) or not isinstance(
            value, str | Sequence | set | frozenset | Mapping
        ):
            raise ConditionError(
                f"op {op!r} needs a list (or string) value, got {type(value).__name__} {value!r}",
                path=_path,
                condition=cond,
            )


def evaluate(cond: Condition, data: Mapping[str, Any]) -> bool:
    """Whether ``data`` satisfies ``cond``. Validate first; malformed conditions raise."""
    if isinstance(cond, Mapping):
        if "all" in cond:
            return all(evaluate(sub, data) for sub in cond["all"])
        if "any" in cond:
            return any(evaluate(sub, data) for sub in cond["any"])
        if "not" in cond:
            return not evaluate(cond["not"], data)
        op = cond.get("op")
        field = cond.get("field")
        if not isinstance(field, str) or op not in OPS:
            validate_condition(cond)  # raises with a precise message
        actual = get_path(data, field)  # type: ignore[arg-type]
        op = str(op)
        if op == "exists":
            return (actual is not _MISSING) == bool(cond.get("value", True))
        if actual is _MISSING:  # absent equals nothing and is in nothing
            return op in ("!=", "not_in")
        try:
            return bool(_COMPARE[op](actual, cond["value"]))
        except TypeError:  # e.g. "abc" > 3: cannot be ordered, so the condition does not hold
            return False
    if callable(cond):
        return bool(cond(data))
    validate_condition(cond)
    raise AssertionError("unreachable")  # pragma: no cover


def describe_condition(cond: Any) -> str:
    """A short readable form for messages: ``inputs.route == 'big'``, ``not (...)``,
    ``(... and ...)``, or a callable's name."""
    if isinstance(cond, Mapping):
        if "all" in cond or "any" in cond:
            key = "all" if "all" in cond else "any"
            joiner = " and " if key == "all" else " or "
            return "(" + joiner.join(describe_condition(c) for c in cond[key]) + ")"
        if "not" in cond:
            return f"not {describe_condition(cond['not'])}"
        if cond.get("op") == "exists" and "value" not in cond:
            return f"{cond.get('field')} exists"
        return f"{cond.get('field')} {cond.get('op')} {cond.get('value')!r}"
    name = getattr(cond, "__qualname__", None) or getattr(cond, "__name__", None)
    return f"{name}()" if name else repr(cond)
