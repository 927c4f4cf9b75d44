"""The declarative condition language shared by routing and coordination."""

from __future__ import annotations

import pytest

from wfkit.conditions import OPS, ConditionError, evaluate, get_path, validate_condition
from wfkit.errors import ValidationError

ORDER = {
    "order": {"amount": 1500, "country": "DE", "tags": ["vip", "b2b"], "note": "rush order"},
    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
    "flag": None,
}


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ({"field": "order.amount", "op": ">", "value": 1000}, True),
        ({"field": "order.amount", "op": ">", "value": 1500}, False),
        ({"field": "order.amount", "op": ">=", "value": 1500}, True),
        ({"field": "order.amount", "op": "<", "value": 1500}, False),
        ({"field": "order.amount", "op": "<=", "value": 1500}, True),
        ({"field": "order.amount", "op": "==", "value": 1500}, True),
        ({"field": "order.amount", "op": "!=", "value": 1500}, False),
        ({"field": "order.country", "op": "in", "value": ["DE", "FR"]}, True),
        ({"field": "order.country", "op": "in", "value": ["US"]}, False),
        ({"field": "order.country", "op": "not_in", "value": ["US"]}, True),
        ({"field": "order.country", "op": "not_in", "value": ["DE"]}, False),
        ({"field": "order.tags", "op": "contains", "value": "vip"}, True),
        ({"field": "order.tags", "op": "contains", "value": "retail"}, False),
        ({"field": "order.note", "op": "contains", "value": "rush"}, True),
        ({"field": "order.note", "op": "contains", "value": 3}, False),
        ({"field": "order.amount", "op": "exists"}, True),
        ({"field": "order.missing", "op": "exists"}, False),
        ({"field": "order.missing", "op": "exists", "value": False}, True),
        ({"field": "flag", "op": "exists"}, True),  # present, even though None
        ({"field": "items.1.sku", "op": "==", "value": "B-7"}, True),
        ({"field": "items.9.sku", "op": "exists"}, False),
        ({"field": "items.x.sku", "op": "exists"}, False),
        ({"field": "order.amount.deeper", "op": "exists"}, False),
    ],
)
def test_leaf_ops(cond, expected):
    validate_condition(cond)
    assert evaluate(cond, ORDER) is expected


def test_missing_field_equals_nothing_and_is_in_nothing():
    results = {
        op: evaluate({"field": "nope", "op": op, "value": [1]}, ORDER)
        for op in OPS
        if op != "exists"
    }
    assert results == {
        "==": False,
        "!=": True,
        ">": False,
        ">=": False,
        "<": False,
        "<=": False,
        "in": False,
        "not_in": True,
        "contains": False,
    }


def test_values_that_cannot_be_ordered_are_false_not_an_error():
    assert evaluate({"field": "order.country", "op": ">", "value": 3}, ORDER) is False


def test_combinators_nest():
    big_vip = {
        "all": [
            {"field": "order.amount", "op": ">", "value": 1000},
            {"any": [
                {"field": "order.tags", "op": "contains", "value": "vip"},
                {"field": "order.country", "op": "==", "value": "US"},
            ]},
            {"not": {"field": "order.country", "op": "in", "value": ["FR"]}},
        ]
    }
    validate_condition(big_vip)
    assert evaluate(big_vip, ORDER) is True
    assert evaluate(big_vip, {**ORDER, "order": {**ORDER["order"], "amount": 10}}) is False
    assert evaluate({"not": big_vip}, ORDER) is False


def test_callable_condition_gets_the_data():
    seen = []

    def cond(data):
        seen.append(data)
        return data["order"]["amount"] > 1000

    validate_condition(cond)
    assert evaluate(cond, ORDER) is True
    assert seen == [ORDER]
    assert evaluate({"any": [lambda d: False, {"field": "flag", "op": "exists"}]}, ORDER)


def test_strings_are_never_evaluated_as_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    for cond in (
        {"field": payload, "op": "==", "value": 1},
        {"field": "order.amount", "op": "==", "value": payload},
    ):
        validate_condition(cond)
        assert evaluate(cond, ORDER) is False
    with pytest.raises(ConditionError):
        validate_condition(payload)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("cond", "match"),
    [
        ("order.amount > 1000", r"at \$: expected a mapping .* got str"),
        (42, r"got int 42"),
        ({"field": "a", "op": "~=", "value": 1}, r"unknown op '~=': use one of ==, !=, "),
        ({"field": "a", "op": ">"}, r"op '>' needs a 'value'"),
        ({"field": "", "op": "==", "value": 1}, r"'field' must be a non-empty dotted path"),
        ({"field": "a..b", "op": "==", "value": 1}, r"non-empty dotted path .* 'a\.\.b'"),
        ({"op": "==", "value": 1}, r"'field' must be"),
        ({"field": "a", "op": "==", "value": 1, "vaule": 2}, r"unknown key\(s\) 'vaule'"),
        ({"field": "a", "op": "in", "value": 5}, r"op 'in' needs a list .* got int 5"),
        ({"field": "a", "op": "exists", "value": "yes"}, r"optional boolean value"),
        ({"all": {"field": "a", "op": "exists"}}, r"at \$\.all: 'all' needs a list"),
        ({"any": []}, r"'any' needs at least one condition"),
        ({"all": [{"field": "a", "op": "exists"}], "any": []}, r"combinator stands alone"),
        (
            {"all": [{"field": "a", "op": "exists"}, {"not": {"field": "b", "op": "=>"}}]},
            r"at \$\.all\[1\]\.not: unknown op '=>'",
        ),
    ],
)
def test_malformed_conditions_name_the_problem(cond, match):
    with pytest.raises(ConditionError, match=match) as info:
        validate_condition(cond)
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, ValueError)


def test_evaluate_refuses_malformed_leaf():
    with pytest.raises(ConditionError, match="unknown op"):
        evaluate({"field": "a", "op": "like", "value": 1}, {"a": 1})


def test_get_path_default():
    assert get_path(ORDER, "order.country") == "DE"
    assert get_path(ORDER, "order.zip", None) is None
