"""What every endpoint adapter is, and what it may ask the orchestrator for.

An adapter wraps one registered :class:`~wfkit.integration.model.IntegrationEndpoint`. Its
class checks the ``connection_config`` (``KEYS``, :meth:`Endpoint.check`) when the endpoint is
registered, and the role a flow gives it (:meth:`Endpoint.check_role`) when the flow is
created, so configuration errors surface before any message moves. At run time a source
``fetch``\\es data into the message and a target ``send``\\s the message; both raise
:class:`~wfkit.errors.EndpointError` with ``transient`` set when trying again may help.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from wfkit.errors import EndpointError, IntegrationConfigError
from wfkit.integration.config import unknown_keys
from wfkit.integration.model import IntegrationEndpoint

if TYPE_CHECKING:
    import httpx

    from wfkit.integration.database import Database
    from wfkit.integration.durable_queue import DurableQueue
    from wfkit.redaction import Redactor

__all__ = ["Endpoint", "MessageContext", "Resources", "check_identifier", "merge_into"]

# Matched whole (fullmatch): "$" would also accept a name followed by a newline.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: Any, what: str, *, endpoint_id: str | None = None) -> str:
    """A SQL identifier (letters, digits, underscore; not starting with a digit; <= 63 chars)."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise IntegrationConfigError(
            f"{what} {name!r} is not a valid SQL identifier: use letters, digits and "
            f"underscores, starting with a letter or underscore (at most 63 characters)",
            endpoint_id=endpoint_id,
            field=what,
        )
    return name


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Who is asking: the flow, the message (stable across redeliveries) and the execution."""

    flow_id: str
    message_id: str
    run_id: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.flow_id}:{self.message_id}"


class Resources(Protocol):
    """What the orchestrator shares with adapters (one pooled client, one engine per URL)."""

    redactor: Redactor

    def http_client(self) -> httpx.AsyncClient: ...

    def database(self, url: str) -> Database: ...

    def queue(self, url: str, table: str) -> DurableQueue: ...


def merge_into(data: dict[str, Any], value: Any, into: str | None, *, endpoint_id: str) -> None:
    """Merge a source's result into the message: under ``into``, or key by key for a mapping."""
    if into:
        data[into] = value
    elif isinstance(value, Mapping):
        data.update(value)
    elif value is not None:
        raise EndpointError(
            f"source {endpoint_id!r} returned {type(value).__name__}, which cannot be merged "
            f"into the message: set connection_config['into'] to store it under a key",
            endpoint_id=endpoint_id,
        )


class Endpoint:
    """Base of the adapters; subclasses set ``TYPE``, ``KEYS``, ``REQUIRED`` and the I/O."""

    TYPE: ClassVar[str] = ""
    KEYS: ClassVar[tuple[str, ...]] = ()
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    ROLES: ClassVar[tuple[str, ...]] = ("source", "target")

    def __init__(self, spec: IntegrationEndpoint, resources: Resources) -> None:
        self.spec = spec
        self.endpoint_id = spec.endpoint_id
        self.config: Mapping[str, Any] = spec.connection_config or {}
        self.resources = resources
        self.check()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint_id!r}>"

    # -- configuration checks ------------------------------------------------------------------

    def fail_config(self, message: str, field: str | None = None) -> IntegrationConfigError:
        return IntegrationConfigError(
            f"endpoint {self.endpoint_id!r} ({self.TYPE}): {message}",
            endpoint_id=self.endpoint_id,
            field=field,
        )

    def identifier(self, name: Any, what: str) -> str:
        """``name`` if it is a plain SQL identifier, else a configuration error naming it."""
        try:
            return check_identifier(name, what, endpoint_id=self.endpoint_id)
        except IntegrationConfigError as exc:
            raise self.fail_config(str(exc), what) from None

    def check(self) -> None:
        """Check ``connection_config``; subclasses extend (and call super)."""
        if not isinstance(self.config, Mapping):
            raise self.fail_config(
                f"connection_config must be a dict, got {type(self.config).__name__}"
            )
        unknown = unknown_keys(self.config, self.KEYS)
        if unknown:
            raise self.fail_config(
                f"unknown connection_config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(self.KEYS)}"
            )
        missing = [k for k in self.REQUIRED if self.config.get(k) in (None, "")]
        if missing:
            raise self.fail_config(
                f"connection_config needs {', '.join(map(repr, missing))}", field=missing[0]
            )

    def into_key(self) -> str | None:
        """``connection_config['into']``: the key a source stores its result under, or None
        to merge a returned mapping into the message."""
        into = self.config.get("into")
        if into is not None and (not isinstance(into, str) or not into):
            raise self.fail_config(f"into must be a non-empty key, got {into!r}", "into")
        return into

    def seconds(self, key: str, default: float) -> float:
        """``connection_config[key]`` (or ``default``) as a positive number of seconds."""
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail_config(f"{key} must be a positive number of seconds, got {value!r}")
        return float(value)

    def check_role(self, role: str, flow_id: str) -> None:
        """Raise when this endpoint cannot play ``role`` (``"source"`` or ``"target"``)."""
        if role not in self.ROLES:
            raise IntegrationConfigError(
                f"flow {flow_id!r}: endpoint {self.endpoint_id!r} ({self.TYPE}) cannot be a "
                f"{role}",
                endpoint_id=self.endpoint_id,
                flow_id=flow_id,
            )

    def active(self) -> None:
        """Refuse messages while the endpoint is not active."""
        if self.spec.status != "active":
            raise EndpointError(
                f"endpoint {self.endpoint_id!r} is {self.spec.status!r}, not 'active': "
                f"set its status to 'active' to use it",
                endpoint_id=self.endpoint_id,
            )

    # -- I/O -------------------------------------------------------------------------------------

    async def fetch(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any] | None:
        """Read from the source and merge into ``data``; returns trace details (or None)."""
        raise NotImplementedError

    async def send(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any] | None:
        """Deliver ``data``; returns trace details (or None)."""
        raise NotImplementedError
