"""Run parameters: declared with defaults on a workflow, overridden per run, read by tasks.

``Workflow("sales", params={"year": 2007})`` declares the names a run may set and their
defaults; ``execute_workflow(..., params={"year": 2010})`` overrides some of them. A name the
workflow does not declare is a typo until proven otherwise, so it is refused (with the closest
declared name) before anything runs. Tasks read the values as ``ctx.params``, a read-only
mapping that remembers which names the task looked at, so a result cache can key a task on
the parameters it actually read and not on every parameter of the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from wfkit.errors import UnknownParameterError, ValidationError

__all__ = ["RunParams", "check_declared", "resolve_params", "NO_PARAMS"]

NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


def check_declared(params: Any, owner: str) -> dict[str, Any]:
    """A workflow's declared parameters as a plain dict of name -> default."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValidationError(
            f"{owner}: params must be a dict of parameter name -> default value, "
            f"got {type(params).__name__}"
        )
    for name in params:
        if not isinstance(name, str) or not name:
            raise ValidationError(
                f"{owner}: parameter names must be non-empty strings, got {name!r}"
            )
    return dict(params)


def resolve_params(
    workflow_id: str, declared: Mapping[str, Any], overrides: Any
) -> Mapping[str, Any]:
    """The values a run sees: the declared defaults, with ``overrides`` applied.

    Raises :class:`~wfkit.UnknownParameterError` for a name the workflow does not declare.
    """
    if overrides is None:
        values = dict(declared)
    else:
        if not isinstance(overrides, Mapping):
            raise ValidationError(
                f"params= takes a dict of parameter name -> value, got {type(overrides).__name__}"
            )
        for name in overrides:
            if name not in declared:
                raise UnknownParameterError(workflow_id, name, declared)
        values = {**declared, **overrides}
    return MappingProxyType(values) if values else NO_PARAMS


class RunParams(Mapping[str, Any]):
    """``ctx.params``: a run's parameters, read-only; ``.read`` holds the names looked up.

    Every way of reaching a value (``[]``, ``get``, ``in``, iteration, ``items()``...) goes
    through ``__getitem__``, ``__contains__`` or ``__iter__``, which record what they touch:
    iterating records every name, since the task may depend on all of them.
    """

    __slots__ = ("_values", "read")

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)  # a missing name is read too: declaring it later changes the answer
        try:
            return self._values[name]
        except KeyError:
            raise UnknownParameterError(None, name, self._values) from None

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)  # the answer depends on whether it was set
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        self.read.update(self._values)
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getstate__(self) -> dict[str, Any]:  # shipped to a worker process as plain values
        return {"values": dict(self._values)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._values = MappingProxyType(state["values"])
        self.read = set()

    def __repr__(self) -> str:
        return f"RunParams({dict(self._values)!r})"
