"""Content-based routing (Camel's content-based router, with multicast).

``{"rules": [{"when": CONDITION, "to": [endpoint ids]}], "default": [endpoint ids]}``. Every
rule whose condition holds contributes its targets (in rule order, each endpoint once); when
none holds, the message goes to ``default``; when there is no default either, there is no
route and the message is dead-lettered with the reason ``"no route"``. A flow without rules
sends every message to all of its ``target_endpoints``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wfkit.conditions import evaluate, validate_condition
from wfkit.errors import ConditionError, IntegrationConfigError, IntegrationError
from wfkit.integration.config import config_dict, unknown_keys

__all__ = ["Router", "Rule"]

_KEYS = ("rules", "default")
_RULE_KEYS = ("when", "to")


@dataclass(frozen=True, slots=True)
class Rule:
    when: Any
    to: tuple[str, ...]


def _ids(value: Any, where: str, flow_id: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or isinstance(value, bytes)
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise IntegrationConfigError(
            f"flow {flow_id!r}: {where} must be an endpoint id or a non-empty list of them, "
            f"got {value!r}",
            flow_id=flow_id,
            field="routing_rules",
        )
    return tuple(dict.fromkeys(value))


class Router:
    """Compiled routing rules; :meth:`route` returns the endpoint ids for one message."""

    __slots__ = ("rules", "default", "targets", "has_rules")

    def __init__(self, rules: Sequence[Rule], default: Sequence[str], targets: Sequence[str]):
        self.rules = tuple(rules)
        self.default = tuple(default)
        self.targets = tuple(targets)
        self.has_rules = bool(self.rules) or bool(self.default)

    @classmethod
    def compile(
        cls, config: Mapping[str, Any] | None, *, flow_id: str, targets: Sequence[str]
    ) -> Router:
        """Validate ``routing_rules``; raises :class:`IntegrationConfigError` naming the fault."""
        if not config:
            return cls((), (), targets)
        config = config_dict(
            config,
            _KEYS,
            where=f"flow {flow_id!r}: routing_rules",
            expected="a dict such as "
            "{'rules': [{'when': {...}, 'to': ['endpoint']}], 'default': [...]}",
            flow_id=flow_id,
            field="routing_rules",
            shown="'rules', 'default'",
        )
        raw_rules = config.get("rules") or []
        if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str | bytes | Mapping):
            raise IntegrationConfigError(
                f"flow {flow_id!r}: routing_rules['rules'] must be a list of "
                f"{{'when': condition, 'to': [endpoint ids]}}, got {type(raw_rules).__name__}",
                flow_id=flow_id,
                field="routing_rules",
            )
        rules = []
        for i, raw in enumerate(raw_rules):
            where = f"routing_rules['rules'][{i}]"
            if not isinstance(raw, Mapping):
                raise IntegrationConfigError(
                    f"flow {flow_id!r}: {where} must be a dict with 'when' and 'to', got {raw!r}",
                    flow_id=flow_id,
                    field="routing_rules",
                )
            missing = [k for k in _RULE_KEYS if k not in raw]
            extra = unknown_keys(raw, _RULE_KEYS)
            if missing or extra:
                problem = (
                    f"lacks {', '.join(map(repr, missing))}"
                    if missing
                    else f"has unknown key(s) {', '.join(map(repr, extra))}"
                )
                raise IntegrationConfigError(
                    f"flow {flow_id!r}: {where} {problem}; a rule is "
                    f"{{'when': condition, 'to': [endpoint ids]}}",
                    flow_id=flow_id,
                    field="routing_rules",
                )
            try:
                validate_condition(raw["when"])
            except ConditionError as exc:
                raise IntegrationConfigError(
                    f"flow {flow_id!r}: {where}['when'] is invalid: {exc}",
                    flow_id=flow_id,
                    field="routing_rules",
                ) from exc
            rules.append(Rule(raw["when"], _ids(raw["to"], f"{where}['to']", flow_id)))
        default: tuple[str, ...] = ()
        if config.get("default"):
            default = _ids(config["default"], "routing_rules['default']", flow_id)
        return cls(rules, default, targets)

    def endpoint_ids(self) -> Iterable[str]:
        """Every endpoint id the rules can route to (for validation)."""
        for rule in self.rules:
            yield from rule.to
        yield from self.default

    def route(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The targets for ``data``; ``()`` means no route.

        A callable condition that raises fails the message (an :class:`IntegrationError` that
        names the rule) rather than silently not matching.
        """
        if not self.has_rules:
            return self.targets
        chosen: dict[str, None] = {}
        for i, rule in enumerate(self.rules):
            try:
                matched = evaluate(rule.when, data)
            except Exception as exc:
                raise IntegrationError(
                    f"routing rule {i} raised {type(exc).__name__}: {exc}"
                ) from exc
            if matched:
                chosen.update(dict.fromkeys(rule.to))
        if chosen:
            return tuple(chosen)
        return self.default
