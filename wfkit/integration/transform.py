"""Transformations with JSON Schema checks before and after (jsonschema).

Schemas are checked once, when the flow is created (an invalid schema is a configuration
error); each message is then validated against the compiled validator. An invalid message
fails with the JSON path of the offending part and its value.
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from wfkit.callables import is_async_callable
from wfkit.errors import IntegrationConfigError, SchemaValidationError
from wfkit.integration.model import DataTransformation

__all__ = ["CompiledTransformation", "json_path"]

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80


def json_path(parts: Iterable[Any]) -> str:
    """``["items", 0, "sku"]`` -> ``"$.items[0].sku"``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _compile_schema(schema: Any, *, transformation_id: str, which: str) -> Any:
    if schema is None or schema == {} or schema is True:
        return None
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, Mapping):
        raise IntegrationConfigError(
            f"transformation {transformation_id!r}: {which} must be a JSON Schema dict "
            f"(or None), got {type(schema).__name__}",
            field=which,
        )
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise IntegrationConfigError(
            f"transformation {transformation_id!r}: {which} is not a valid JSON Schema: "
            f"{exc.message} (at {json_path(exc.absolute_path)} of the schema)",
            field=which,
        ) from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class CompiledTransformation:
    """A checked :class:`DataTransformation`, ready to apply to messages."""

    __slots__ = ("transformation_id", "name", "fn", "is_async", "input_validator", "output_validator")

    def __init__(self, spec: DataTransformation) -> None:
        tid = spec.transformation_id
        if not isinstance(tid, str) or not tid:
            raise IntegrationConfigError(
                f"transformation_id must be a non-empty string, got {tid!r}", field="transformation_id"
            )
        fn = spec.transformation_function
        if not callable(fn):
            raise IntegrationConfigError(
                f"transformation {tid!r}: transformation_function must be callable "
                f"fn(data) -> dict, got {type(fn).__name__}",
                field="transformation_function",
            )
        self.transformation_id = tid
        self.name = spec.name
        self.fn = fn
        self.is_async = is_async_callable(fn)
        self.input_validator = _compile_schema(
            spec.input_schema, transformation_id=tid, which="input_schema"
        )
        self.output_validator = _compile_schema(
            spec.output_schema, transformation_id=tid, which="output_schema"
        )

    def _check(self, validator: Any, data: Any, which: str) -> None:
        error = next(validator.iter_errors(data), None)
        if error is None:
            return
        from jsonschema.exceptions import best_match

        error = best_match(validator.iter_errors(data))
        path = json_path(error.absolute_path)
        raise SchemaValidationError(
            f"transformation {self.transformation_id!r}: the {which} message is invalid at "
            f"{path}: {error.message} (value: {_short.repr(error.instance)})",
            path=path,
            value=error.instance,
        )

    async def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate, transform, validate; raises :class:`SchemaValidationError` or the fn's error."""
        if self.input_validator is not None:
            self._check(self.input_validator, data, "input")
        result = self.fn(data)
        if self.is_async or inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Mapping):
            raise SchemaValidationError(
                f"transformation {self.transformation_id!r} returned "
                f"{type(result).__name__}, not a message: return the new message as a dict",
                path="$",
                value=result,
            )
        if not isinstance(result, dict):
            result = dict(result)
        if self.output_validator is not None:
            self._check(self.output_validator, result, "output")
        return result
