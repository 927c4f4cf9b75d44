"""The integration model: endpoints, transformations and flows, as in the pattern document.

These are plain dataclasses; the orchestrator checks them (``register_endpoint``,
``register_transformation``, ``create_flow``) so that a bad configuration fails before any
message moves. Their reprs never show secrets: header values, passwords in URLs and
password-like config keys are masked.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfkit.redaction import redact_config

__all__ = [
    "ENDPOINT_TYPES",
    "IntegrationEndpoint",
    "DataTransformation",
    "IntegrationFlow",
    "RegisteredId",
]

ENDPOINT_TYPES: tuple[str, ...] = ("api", "database", "message_queue", "function")


class RegisteredId(str):
    """The id a registration call returns.

    Awaiting it gives the same string, so code written against an async registration API
    (``await orch.create_flow(flow)``) runs unchanged next to plain calls.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, str]:
        return str(self)
        yield  # pragma: no cover - makes this a generator, so the object is awaitable


@dataclass(repr=False)
class IntegrationEndpoint:
    """A system a flow reads from or writes to.

    ``endpoint_type`` is ``"api"`` (HTTP), ``"database"`` (a SQLAlchemy URL), ``"message_queue"``
    (a durable queue; SQLite-backed by default) or ``"function"`` (a Python callable).
    ``connection_config`` holds the type's settings; see :mod:`wfkit.integration.endpoints`.
    An endpoint whose ``status`` is not ``"active"`` refuses messages (they fail, and go to the
    flow's fallback or dead-letter channel).
    """

    endpoint_id: str
    name: str
    endpoint_type: str
    connection_config: dict[str, Any] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    status: str = "active"

    def __repr__(self) -> str:
        return (
            f"IntegrationEndpoint(endpoint_id={self.endpoint_id!r}, name={self.name!r}, "
            f"endpoint_type={self.endpoint_type!r}, "
            f"connection_config={redact_config(self.connection_config)!r}, "
            f"capabilities={self.capabilities!r}, status={self.status!r})"
        )


@dataclass
class DataTransformation:
    """A step that turns one message into another.

    ``input_schema`` and ``output_schema`` are JSON Schema dicts (``None`` or ``{}`` accept
    anything); the message is validated against them before and after
    ``transformation_function(data)``, which may be sync or async and returns the new message
    (a mapping). Sync functions run on the event loop: keep them quick, or make them async.
    """

    transformation_id: str
    name: str
    input_schema: Mapping[str, Any] | None
    output_schema: Mapping[str, Any] | None
    transformation_function: Callable[[dict[str, Any]], Any]


@dataclass
class IntegrationFlow:
    """Sources → transformations → routing → targets, with error handling.

    ``routing_rules``: ``{"rules": [{"when": CONDITION, "to": [endpoint ids]}], "default":
    [...]}`` (see :mod:`wfkit.conditions`); empty means every target receives every message.
    ``error_handling``: ``retry`` (``max_attempts``, ``backoff``, ``max_backoff``, ``jitter``),
    ``fallback`` (an endpoint id), ``dead_letter`` (a queue endpoint id, or ``True`` for the
    orchestrator's durable store) and ``notification`` (a callable or an endpoint id).
    """

    flow_id: str
    name: str
    source_endpoints: list[str] = field(default_factory=list)
    target_endpoints: list[str] = field(default_factory=list)
    transformations: list[str] = field(default_factory=list)
    routing_rules: dict[str, Any] | None = field(default_factory=dict)
    error_handling: dict[str, Any] | None = field(default_factory=dict)
