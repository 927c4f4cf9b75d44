"""Endpoint adapters by ``endpoint_type``: ``api``, ``database``, ``message_queue``, ``function``.

Each module's docstring lists its ``connection_config`` keys.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from wfkit.errors import IntegrationConfigError
from wfkit.integration.endpoints.base import Endpoint, MessageContext, Resources
from wfkit.integration.model import ENDPOINT_TYPES, IntegrationEndpoint

__all__ = ["Endpoint", "MessageContext", "Resources", "build_endpoint", "ADAPTERS"]

ADAPTERS = {
    "api": ("wfkit.integration.endpoints.http", "HttpEndpoint"),
    "database": ("wfkit.integration.endpoints.sql", "SqlEndpoint"),
    "message_queue": ("wfkit.integration.endpoints.queue", "QueueEndpoint"),
    "function": ("wfkit.integration.endpoints.function", "FunctionEndpoint"),
}


def build_endpoint(spec: Any, resources: Resources) -> Endpoint:
    """The adapter for ``spec``; raises :class:`IntegrationConfigError` for a bad one."""
    if not isinstance(spec, IntegrationEndpoint):
        raise IntegrationConfigError(
            f"register_endpoint() needs an IntegrationEndpoint, got {type(spec).__name__}"
        )
    if not isinstance(spec.endpoint_id, str) or not spec.endpoint_id:
        raise IntegrationConfigError(
            f"endpoint_id must be a non-empty string, got {spec.endpoint_id!r}",
            field="endpoint_id",
        )
    target = ADAPTERS.get(spec.endpoint_type)
    if target is None:
        raise IntegrationConfigError(
            f"endpoint {spec.endpoint_id!r} has unknown endpoint_type {spec.endpoint_type!r}: "
            f"use one of {', '.join(map(repr, ENDPOINT_TYPES))}",
            endpoint_id=spec.endpoint_id,
            field="endpoint_type",
        )
    module, name = target
    cls: type[Endpoint] = getattr(import_module(module), name)
    return cls(spec, resources)
