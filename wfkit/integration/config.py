"""The check every dict-shaped part of a flow's configuration starts with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wfkit.errors import IntegrationConfigError


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
    unknown = sorted(set(map(str, value)) - set(valid))
    if unknown:
        raise IntegrationConfigError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {shown if shown is not None else ', '.join(valid)}",
            flow_id=flow_id,
            field=field,
        )
    return value
