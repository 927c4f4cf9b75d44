"""Integration flows between real systems: HTTP APIs, SQL databases, durable queues, functions.

``IntegrationEndpoint``, ``DataTransformation`` and ``IntegrationFlow`` describe a flow;
``IntegrationOrchestrator`` checks and runs it (one message with ``execute_flow``, a whole queue
with ``run_flow``) with content-based routing, redelivery with backoff, a fallback endpoint, a
dead-letter channel and notifications. Heavy libraries (httpx, SQLAlchemy, jsonschema, pandas)
load on first use.
"""

from __future__ import annotations

from wfkit._lazy import lazy_exports

__all__ = [
    "IntegrationEndpoint",
    "DataTransformation",
    "IntegrationFlow",
    "IntegrationOrchestrator",
    "DurableQueue",
]

_LAZY = {
    "IntegrationEndpoint": "wfkit.integration.model",
    "DataTransformation": "wfkit.integration.model",
    "IntegrationFlow": "wfkit.integration.model",
    "IntegrationOrchestrator": "wfkit.integration.orchestrator",
    "DurableQueue": "wfkit.integration.durable_queue",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
