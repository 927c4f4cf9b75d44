"""Integration flows between real systems: HTTP APIs, SQL databases, durable queues, functions.

``IntegrationEndpoint``, ``DataTransformation`` and ``IntegrationFlow`` describe a flow;
``IntegrationOrchestrator`` checks and runs it (one message with ``execute_flow``, a whole queue
with ``run_flow``) with content-based routing, redelivery with backoff, a fallback endpoint, a
dead-letter channel and notifications. Heavy libraries (httpx, SQLAlchemy, jsonschema, pandas)
load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wfkit._lazy import lazy_exports

if TYPE_CHECKING:  # what the lazy exports below are, for type checkers and editors
    from wfkit.integration.durable_queue import DurableQueue as DurableQueue
    from wfkit.integration.model import (
        DataTransformation as DataTransformation,
    )
    from wfkit.integration.model import (
        IntegrationEndpoint as IntegrationEndpoint,
    )
    from wfkit.integration.model import (
        IntegrationFlow as IntegrationFlow,
    )
    from wfkit.integration.orchestrator import IntegrationOrchestrator as IntegrationOrchestrator
    from wfkit.integration.processing import FlowResult as FlowResult


__all__ = [
    "IntegrationEndpoint",
    "DataTransformation",
    "IntegrationFlow",
    "IntegrationOrchestrator",
    "DurableQueue",
    "FlowResult",
]

_LAZY = {
    "IntegrationEndpoint": "wfkit.integration.model",
    "DataTransformation": "wfkit.integration.model",
    "IntegrationFlow": "wfkit.integration.model",
    "IntegrationOrchestrator": "wfkit.integration.orchestrator",
    "DurableQueue": "wfkit.integration.durable_queue",
    "FlowResult": "wfkit.integration.processing",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
