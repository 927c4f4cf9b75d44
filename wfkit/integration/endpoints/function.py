"""``"function"`` endpoints: a Python callable, sync or async.

Config: ``callable`` (called with the message), ``into`` (a source stores the return value
under this key instead of merging a returned mapping) and ``in_thread`` (default true: a sync
callable runs in a worker thread so it never blocks the event loop; false calls it inline,
which is faster for trivial functions). Raise :class:`ConnectionError`, :class:`TimeoutError`
or ``EndpointError(..., transient=True)`` for failures worth retrying.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from wfkit.callables import is_async_callable
from wfkit.integration.endpoints.base import Endpoint, MessageContext, merge_into

__all__ = ["FunctionEndpoint"]


class FunctionEndpoint(Endpoint):
    TYPE = "function"
    KEYS = ("callable", "into", "in_thread")
    REQUIRED = ("callable",)

    def check(self) -> None:
        super().check()
        fn = self.config["callable"]
        if not callable(fn):
            raise self.fail_config(
                f"callable must be a function fn(message), got {type(fn).__name__}", "callable"
            )
        self.fn = fn
        self.is_async = is_async_callable(fn)
        self.into = self.into_key()
        self.in_thread = bool(self.config.get("in_thread", True))

    async def _call(self, data: dict[str, Any]) -> Any:
        self.active()
        if self.is_async:
            return await self.fn(data)
        if self.in_thread:
            result = await asyncio.to_thread(self.fn, data)
        else:
            result = self.fn(data)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def fetch(self, data: dict[str, Any], ctx: MessageContext) -> None:
        merge_into(data, await self._call(data), self.into, endpoint_id=self.endpoint_id)
        return None

    async def send(self, data: dict[str, Any], ctx: MessageContext) -> None:
        await self._call(data)
        return None
