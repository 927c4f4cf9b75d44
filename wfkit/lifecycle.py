"""One way to end a facade's life: ``close()``, ``aclose()``, ``with`` and ``async with``.

Orchestrators, managers, stores and executors hold threads, processes, files and
connections. Each implements ``close()`` (idempotent, releasing only what it created) and
inherits the rest from :class:`Closing`: ``aclose()`` runs ``close()`` in a worker thread, so
that shutting down a pool or flushing a file never blocks a notebook's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Self

__all__ = ["Closing"]


class Closing:
    """``with`` and ``async with`` call :meth:`close` / :meth:`aclose` on the way out."""

    def close(self) -> None:
        """Release what this object created (subclasses say what)."""

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
