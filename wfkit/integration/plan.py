"""Checking a flow once, at ``create_flow``: the compiled :class:`FlowPlan`.

Everything that can be wrong with a flow without moving a message is found here: unknown
endpoint or transformation ids, endpoints that cannot play their role (a database source
without a query), malformed routing rules, invalid schemas (checked when the transformation
is compiled), bad ``error_handling`` (unknown keys, a dead-letter endpoint that is not a
queue, a notification that is neither a callable nor an endpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wfkit.errors import IntegrationConfigError, UnknownEndpointError
from wfkit.integration.config import config_dict
from wfkit.integration.endpoints import Endpoint
from wfkit.integration.model import IntegrationFlow
from wfkit.integration.retry import RetryPolicy
from wfkit.integration.routing import Router
from wfkit.integration.transform import CompiledTransformation

__all__ = ["FlowPlan", "compile_flow", "STORE", "ERROR_HANDLING_KEYS"]

STORE = "dead_letter_store"  # the orchestrator's built-in dead-letter channel
ERROR_HANDLING_KEYS = ("retry", "fallback", "dead_letter", "notification")


@dataclass(frozen=True, slots=True)
class FlowPlan:
    flow_id: str
    flow: IntegrationFlow
    sources: tuple[str, ...]  # sources that fetch (api, database, function), in order
    queue_source: str | None  # the message_queue source that run_flow drains
    transformations: tuple[CompiledTransformation, ...]
    router: Router
    retry: RetryPolicy
    fallback: str | None
    dead_letter: str | None  # STORE, a message_queue endpoint id, or None
    notification: Callable[..., Any] | str | None


def _id_list(value: Any, what: str, flow_id: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise IntegrationConfigError(
            f"flow {flow_id!r}: {what} must be a list of ids, got {value!r}",
            flow_id=flow_id,
            field=what,
        )
    return tuple(dict.fromkeys(value))


def compile_flow(
    flow: Any,
    endpoints: Mapping[str, Endpoint],
    transformations: Mapping[str, CompiledTransformation],
) -> FlowPlan:
    """Check ``flow`` against what is registered; raises a ValidationError naming the fault."""
    if not isinstance(flow, IntegrationFlow):
        raise IntegrationConfigError(
            f"create_flow() needs an IntegrationFlow, got {type(flow).__name__}"
        )
    fid = flow.flow_id
    if not isinstance(fid, str) or not fid:
        raise IntegrationConfigError(f"flow_id must be a non-empty string, got {fid!r}", field="flow_id")
    sources = _id_list(flow.source_endpoints, "source_endpoints", fid)
    targets = _id_list(flow.target_endpoints, "target_endpoints", fid)
    steps = _id_list(flow.transformations, "transformations", fid)
    router = Router.compile(flow.routing_rules, flow_id=fid, targets=targets)

    handling = config_dict(
        flow.error_handling or {},
        ERROR_HANDLING_KEYS,
        where=f"flow {fid!r}: error_handling",
        expected=f"a dict with keys {', '.join(ERROR_HANDLING_KEYS)}",
        flow_id=fid,
        field="error_handling",
    )
    retry = RetryPolicy.from_config(handling.get("retry"), flow_id=fid)
    fallback = handling.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback):
        raise IntegrationConfigError(
            f"flow {fid!r}: error_handling['fallback'] must be an endpoint id, got {fallback!r}",
            flow_id=fid,
            field="fallback",
        )
    dead = handling.get("dead_letter")
    dead_letter: str | None
    if dead is True:
        dead_letter = STORE
    elif dead is None or dead is False:
        dead_letter = None
    elif isinstance(dead, str) and dead:
        dead_letter = dead
    else:
        raise IntegrationConfigError(
            f"flow {fid!r}: error_handling['dead_letter'] must be a message_queue endpoint id "
            f"or True (the orchestrator's dead-letter store), got {dead!r}",
            flow_id=fid,
            field="dead_letter",
        )
    notification = handling.get("notification")
    if notification is not None and not callable(notification) and not (
        isinstance(notification, str) and notification
    ):
        raise IntegrationConfigError(
            f"flow {fid!r}: error_handling['notification'] must be a callable fn(failure) or "
            f"an endpoint id, got {notification!r}",
            flow_id=fid,
            field="notification",
        )

    referenced = [*sources, *targets, *router.endpoint_ids()]
    if fallback:
        referenced.append(fallback)
    if dead_letter and dead_letter != STORE:
        referenced.append(dead_letter)
    if isinstance(notification, str):
        referenced.append(notification)
    missing = [e for e in referenced if e not in endpoints]
    if missing:
        raise UnknownEndpointError(fid, missing, endpoints)
    unknown_steps = [t for t in steps if t not in transformations]
    if unknown_steps:
        known = ", ".join(map(repr, sorted(transformations))) or "none registered"
        raise IntegrationConfigError(
            f"flow {fid!r} refers to unknown transformation(s) "
            f"{', '.join(map(repr, unknown_steps))} (registered: {known}): "
            f"register_transformation(DataTransformation(...)) first or fix the id",
            flow_id=fid,
            field="transformations",
        )

    queue_sources = [s for s in sources if endpoints[s].TYPE == "message_queue"]
    if len(queue_sources) > 1:
        raise IntegrationConfigError(
            f"flow {fid!r} has several message_queue sources ({', '.join(map(repr, queue_sources))}); "
            f"a flow drains one queue: make one flow per queue",
            flow_id=fid,
            field="source_endpoints",
        )
    for sid in sources:
        endpoints[sid].check_role("source", fid)
    for tid in dict.fromkeys([*targets, *router.endpoint_ids(), *([fallback] if fallback else [])]):
        endpoints[tid].check_role("target", fid)
    if isinstance(notification, str):
        endpoints[notification].check_role("target", fid)
    if dead_letter and dead_letter != STORE and endpoints[dead_letter].TYPE != "message_queue":
        raise IntegrationConfigError(
            f"flow {fid!r}: the dead-letter channel {dead_letter!r} is a "
            f"{endpoints[dead_letter].TYPE} endpoint; use a message_queue endpoint, or "
            f"dead_letter: True for the orchestrator's store",
            flow_id=fid,
            field="dead_letter",
        )
    return FlowPlan(
        flow_id=fid,
        flow=flow,
        sources=tuple(s for s in sources if s not in queue_sources),
        queue_source=queue_sources[0] if queue_sources else None,
        transformations=tuple(transformations[t] for t in steps),
        router=router,
        retry=retry,
        fallback=fallback,
        dead_letter=dead_letter,
        notification=notification,
    )
