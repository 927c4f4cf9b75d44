"""How wfkit looks at the user's code it calls: is it async, and how a failure reads."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["is_async_callable", "describe_error"]

_async_cache: dict[Any, bool] = {}
_CACHE_LIMIT = 4096  # handlers repeat; per-task lambdas must not pile up here for ever


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for coroutine functions and objects whose ``__call__`` is one (cached: the engine
    asks once per attempt)."""
    try:
        return _async_cache[fn]
    except (KeyError, TypeError):
        pass
    result = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - we want the bound __call__
    )
    if len(_async_cache) >= _CACHE_LIMIT:
        _async_cache.clear()
    try:
        _async_cache[fn] = result
    except TypeError:
        pass
    return result


def describe_error(exc: BaseException) -> str:
    """``"ValueError: bad input"``: the type says what went wrong as much as the text does."""
    return f"{type(exc).__name__}: {exc}"
