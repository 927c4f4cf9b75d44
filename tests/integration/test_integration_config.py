"""Bad configuration fails at registration or create_flow, before any message moves."""

from __future__ import annotations

import pytest

import wfkit
from wfkit import (
    DataTransformation,
    IntegrationConfigError,
    IntegrationEndpoint,
    IntegrationFlow,
    IntegrationOrchestrator,
    UnknownEndpointError,
    UnknownFlowError,
    ValidationError,
)


def fn_endpoint(endpoint_id, calls=None):
    return IntegrationEndpoint(
        endpoint_id, endpoint_id, "function",
        {"callable": (calls.append if calls is not None else (lambda d: None))}, ["write"],
    )


@pytest.fixture
def base(orch, http_server, tmp_path):
    calls: list = []
    orch.register_endpoint(fn_endpoint("sink", calls))
    orch.register_endpoint(
        IntegrationEndpoint("api", "API", "api", {"url": http_server.url("/orders")}, ["write"])
    )
    orch.register_endpoint(
        IntegrationEndpoint(
            "db", "DB", "database",
            {"url": f"sqlite:///{tmp_path / 'out.sqlite'}", "table": "orders", "create_table": True},
            ["write"],
        )
    )
    orch.calls = calls
    return orch


def flow(**kw):
    args = dict(
        flow_id="f", name="F", source_endpoints=[], target_endpoints=["sink"], transformations=[],
        routing_rules={}, error_handling={},
    )
    args.update(kw)
    return IntegrationFlow(**args)


def test_public_names_resolve():
    assert wfkit.IntegrationOrchestrator is IntegrationOrchestrator
    assert issubclass(UnknownEndpointError, ValidationError)
    assert issubclass(IntegrationConfigError, wfkit.IntegrationError)


def test_unknown_endpoint_ids_are_named(base, http_server, tmp_path):
    with pytest.raises(UnknownEndpointError, match=r"flow 'f' refers to unknown endpoint\(s\) 'ghost', 'nope'") as info:
        base.create_flow(flow(source_endpoints=["nope"], target_endpoints=["sink", "ghost"]))
    assert info.value.missing == ["ghost", "nope"]
    assert info.value.flow_id == "f"
    for bad in (
        {"routing_rules": {"rules": [{"when": {"field": "a", "op": "exists"}, "to": ["r1"]}]}},
        {"routing_rules": {"default": "r1"}},
        {"error_handling": {"fallback": "r1"}},
        {"error_handling": {"dead_letter": "r1"}},
        {"error_handling": {"notification": "r1"}},
    ):
        with pytest.raises(UnknownEndpointError, match="'r1'"):
            base.create_flow(flow(**bad))
    assert "f" not in base.flows
    assert http_server.requests == [] and base.calls == []
    assert not (tmp_path / "out.sqlite").exists()  # nothing was opened, let alone written


def test_unknown_endpoint_type(orch):
    with pytest.raises(IntegrationConfigError, match=r"unknown endpoint_type 'ftp': use one of 'api', 'database', 'message_queue', 'function'"):
        orch.register_endpoint(IntegrationEndpoint("x", "X", "ftp", {"url": "ftp://h"}, []))
    assert "x" not in orch.endpoints


@pytest.mark.parametrize(
    ("endpoint_type", "config", "match"),
    [
        ("api", {}, r"connection_config needs 'url'"),
        ("api", {"url": "localhost:80/x"}, r"url must start with http:// or https://"),
        ("api", {"url": "http://h/x", "heders": {}}, r"unknown connection_config key\(s\) 'heders'; valid keys: url, method"),
        ("api", {"url": "http://h/x", "method": "FETCH"}, r"method must be one of GET, POST"),
        ("api", {"url": "http://h/x", "timeout": 0}, r"timeout must be a positive number"),
        ("api", {"url": "http://h/{a b}"}, r"placeholder \{a b\} must be a dotted field path"),
        ("api", {"url": "http://h/x", "headers": {"X": 1}}, r"headers must be a dict of str to str"),
        ("database", {"url": "sqlite:///x.db", "table": "orders; DROP TABLE x"}, r"table 'orders; DROP TABLE x' is not a valid SQL identifier"),
        ("database", {"url": "nosuchdialect+x://"}, r"cannot be used: Can.t load plugin"),
        ("database", {"url": "sqlite:///x.db", "query": "select 1", "params": {"a": "b"}}, r"params names 'a' that the query does not use"),
        ("database", {"url": "sqlite:///x.db", "query": "select :a", "many": True}, r"many: true needs into"),
        ("database", {"url": "sqlite:///x.db", "table": "t", "columns": {"a": "varchar"}}, r"column 'a' has unknown type 'varchar'"),
        ("database", {"url": "sqlite:///x.db", "table": "t", "idempotency_column": "1x"}, r"idempotency_column '1x' is not a valid SQL identifier"),
        ("message_queue", {"url": "sqlite:///q.db"}, r"connection_config needs 'topic'"),
        ("message_queue", {"url": "sqlite:///q.db", "topic": "t", "visibility_timeout": -1}, r"visibility_timeout must be a positive number"),
        ("message_queue", {"url": "sqlite:///q.db", "topic": "t", "max_deliveries": 0}, r"max_deliveries must be an int >= 1"),
        ("function", {"callable": "print"}, r"callable must be a function fn\(message\), got str"),
    ],
)
def test_bad_connection_config(orch, endpoint_type, config, match):
    with pytest.raises(IntegrationConfigError, match=match) as info:
        orch.register_endpoint(IntegrationEndpoint("e1", "E", endpoint_type, config, []))
    assert info.value.endpoint_id == "e1"
    assert str(info.value).startswith(f"endpoint 'e1' ({endpoint_type}): ")


def test_roles_are_checked_at_create_flow(orch, tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    orch.register_endpoint(IntegrationEndpoint("table_only", "T", "database", {"url": url, "table": "t"}, []))
    orch.register_endpoint(IntegrationEndpoint("both", "B", "database", {"url": url, "table": "t", "query": "select 1"}, []))
    orch.register_endpoint(fn_endpoint("sink"))
    with pytest.raises(IntegrationConfigError, match=r"'table_only' is a source, so its connection_config needs a 'query'"):
        orch.create_flow(flow(source_endpoints=["table_only"]))
    with pytest.raises(IntegrationConfigError, match=r"needs either 'table' .* or 'query' .*, not both"):
        orch.create_flow(flow(target_endpoints=["both"]))
    orch.register_endpoint(IntegrationEndpoint("q1", "Q", "message_queue", {"url": url, "topic": "a"}, []))
    orch.register_endpoint(IntegrationEndpoint("q2", "Q", "message_queue", {"url": url, "topic": "b"}, []))
    with pytest.raises(IntegrationConfigError, match=r"several message_queue sources \('q1', 'q2'\)"):
        orch.create_flow(flow(source_endpoints=["q1", "q2"]))
    with pytest.raises(IntegrationConfigError, match=r"dead-letter channel 'sink' is a function endpoint; use a message_queue"):
        orch.create_flow(flow(error_handling={"dead_letter": "sink"}))


@pytest.mark.parametrize(
    ("rules", "match"),
    [
        ("amount > 5", r"routing_rules must be a dict"),
        ({"rule": []}, r"routing_rules has unknown key\(s\) 'rule'; valid keys: 'rules', 'default'"),
        ({"rules": [{"to": ["sink"]}]}, r"routing_rules\['rules'\]\[0\] lacks 'when'"),
        ({"rules": [{"when": {"field": "a", "op": "exists"}, "to": []}]}, r"\['to'\] must be an endpoint id or a non-empty list"),
        ({"rules": [{"when": {"field": "a", "op": "between", "value": 1}, "to": ["sink"]}]}, r"\['when'\] is invalid: malformed condition at \$: unknown op 'between'"),
        ({"rules": [{"when": "order.amount > 1000", "to": ["sink"]}]}, r"malformed condition at \$: expected a mapping"),
        ({"rules": [{"when": {"field": "a", "op": "exists"}, "to": ["sink"], "priority": 1}]}, r"has unknown key\(s\) 'priority'"),
    ],
)
def test_malformed_rules(base, rules, match):
    with pytest.raises(IntegrationConfigError, match=match) as info:
        base.create_flow(flow(routing_rules=rules))
    assert info.value.flow_id == "f"
    assert info.value.field == "routing_rules"


@pytest.mark.parametrize(
    ("handling", "match"),
    [
        ({"retries": 3}, r"error_handling has unknown key\(s\) 'retries'; valid keys: retry, fallback, dead_letter, notification"),
        ({"retry": {"max_attempts": 0}}, r"error_handling\['retry'\]\['max_attempts'\] must be an int >= 1, got 0"),
        ({"retry": {"backoff": "fast"}}, r"\['backoff'\] must be a number >= 0"),
        ({"retry": {"tries": 2}}, r"unknown key\(s\) 'tries'; valid keys: max_attempts, backoff"),
        ({"retry": "always"}, r"error_handling\['retry'\] must be a dict"),
        ({"dead_letter": 3}, r"must be a message_queue endpoint id or True"),
        ({"notification": 42}, r"must be a callable fn\(failure\) or an endpoint id"),
        ("retry", r"error_handling must be a dict"),
    ],
)
def test_bad_error_handling(base, handling, match):
    with pytest.raises(IntegrationConfigError, match=match):
        base.create_flow(flow(error_handling=handling))


def test_invalid_schema_and_unknown_transformation(orch):
    orch.register_endpoint(fn_endpoint("sink"))
    with pytest.raises(IntegrationConfigError, match=r"transformation 'bad': input_schema is not a valid JSON Schema: 'integr' is not valid under any of the given schemas \(at \$\.properties\.n\.type of the schema\)"):
        orch.register_transformation(
            DataTransformation("bad", "Bad", {"type": "object", "properties": {"n": {"type": "integr"}}}, None, dict)
        )
    with pytest.raises(IntegrationConfigError, match=r"output_schema must be a JSON Schema dict \(or None\), got str"):
        orch.register_transformation(DataTransformation("bad", "Bad", None, "object", dict))
    with pytest.raises(IntegrationConfigError, match=r"transformation_function must be callable"):
        orch.register_transformation(DataTransformation("bad", "Bad", None, None, "upper"))
    with pytest.raises(IntegrationConfigError, match=r"unknown transformation\(s\) 'enrich' \(registered: none registered\)"):
        orch.create_flow(flow(transformations=["enrich"]))


def test_unknown_flow(orch):
    with pytest.raises(UnknownFlowError, match=r"no flow 'nope': call create_flow"):
        orch.dead_letters("nope")


async def test_unknown_flow_at_execute(orch):
    with pytest.raises(UnknownFlowError, match=r"no flow 'nope'") as info:
        await orch.execute_flow("nope", {})
    assert isinstance(info.value, KeyError)
    orch.register_endpoint(fn_endpoint("sink"))
    orch.create_flow(flow())
    with pytest.raises(IntegrationConfigError, match=r"input_data must be a dict, got list"):
        await orch.execute_flow("f", [1, 2])


async def test_registration_ids_can_be_awaited(orch):
    """Code written for an async registration API runs unchanged."""
    assert await orch.register_endpoint(fn_endpoint("sink")) == "sink"
    assert orch.register_transformation(DataTransformation("t", "T", None, None, dict)) == "t"
    flow_id = await orch.create_flow(flow(transformations=["t"]))
    assert flow_id == "f" and type(str(flow_id)) is str
    assert (await orch.execute_flow(flow_id, {"a": 1}))["status"] == "completed"


async def test_reregistering_an_endpoint_rechecks_flows(orch, tmp_path):
    orch.register_endpoint(fn_endpoint("sink"))
    orch.create_flow(flow())
    orch.register_endpoint(
        IntegrationEndpoint("sink", "S", "database", {"url": f"sqlite:///{tmp_path / 'x.db'}", "query": "select 1", "table": "t"}, [])
    )
    with pytest.raises(IntegrationConfigError, match=r"needs either 'table' .* not both"):
        await orch.execute_flow("f", {"a": 1})
