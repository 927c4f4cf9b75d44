"""The checks every dict-shaped part of a flow's or endpoint's configuration starts with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wfkit.errors import IntegrationConfigError

__all__ = ["config_dict", "unknown_keys"]


def unknown_keys(value: Mapping[Any, Any], valid: Sequence[str]) -> list[str]:
    """The keys of ``value`` not in ``valid``, as sorted strings (any key type can be named)."""
    return sorted(set(map(str, value)) - set(valid))


def config_dict(
    value: Any,
    valid: Sequence[str],
    *,
    where: str,
    expected: str,
    flow_id: str | None,
    field: str,
    shown: str | None = None,
) -> Mapping[str, Any]:
    """``value`` if it is a mapping whose keys are all in ``valid``; otherwise an
    :class:`IntegrationConfigError` that says what ``where`` must be (``expected``) or which
    keys are unknown, listing the valid ones (as ``shown``, or joined)."""
    if not isinstance(value, Mapping):
        raise IntegrationConfigError(
            f"{where} must be {expected}, got {type(value).__name__}",
            flow_id=flow_id,
            field=field,
        )
    unknown = unknown_keys(value, valid)
    if unknown:
        raise IntegrationConfigError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {shown if shown is not None else ', '.join(valid)}",
            flow_id=flow_id,
            field=field,
        )
    return value
