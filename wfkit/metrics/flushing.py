"""Writers that buffer rows and flush them at the start of the next loop iteration.

The run store and the stored result cache both do this: a run's events arrive many to a loop
turn, and one commit per turn (rather than per row) keeps the store cheap. Outside a running
loop there is no next turn, so the rows are written at once.
"""

from __future__ import annotations

import asyncio
import logging


class FlushSoon:
    """Mixin: ``_soon()`` schedules one ``flush()``; a failed scheduled flush is logged and
    the rows stay buffered for the next one. Subclasses set ``_flush_pending = False`` in
    ``__init__``, reset it in ``flush()``, and name ``_flush_log`` and ``_flush_failure``."""

    _flush_pending: bool
    _flush_log: logging.Logger
    _flush_failure: str  # "%s: could not ..." formatted with the writer's path
    path: object

    def flush(self) -> None:  # pragma: no cover - every writer defines it
        raise NotImplementedError

    def _soon(self) -> None:
        """Flush at the start of the next loop iteration (now, outside a loop)."""
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_pending = True
        loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # the rows stay buffered; the next flush tries again
            self._flush_log.exception(self._flush_failure, self.path)
