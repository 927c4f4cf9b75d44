"""``api`` endpoints against a real HTTP server on 127.0.0.1: sources, targets, retries,
Retry-After, timeouts, fallbacks and secrets."""

from __future__ import annotations

import base64
import email.utils
import logging
import socket
import time

import httpx
import pytest
from scripted_http import Reply

from wfkit import IntegrationEndpoint, IntegrationFlow, IntegrationOrchestrator
from wfkit.events import FlowMessageDelivered, FlowStepFinished


def api(endpoint_id, url, **config):
    return IntegrationEndpoint(endpoint_id, endpoint_id, "api", {"url": url, **config}, ["http"])


def flow(sources=(), targets=(), flow_id="f", **handling):
    return IntegrationFlow(flow_id, flow_id, list(sources), list(targets), [], {}, handling)


class RecordingSleep:
    """Waits nothing, remembers how long it was asked to wait."""

    def __init__(self):
        self.delays = []

    async def __call__(self, seconds):
        self.delays.append(seconds)


@pytest.fixture
async def fast(tmp_path):
    sleep = RecordingSleep()
    orchestrator = IntegrationOrchestrator(dead_letter_store=tmp_path / "dl.sqlite", sleep=sleep)
    orchestrator.sleep = sleep
    yield orchestrator
    await orchestrator.aclose()


async def test_source_merges_json_and_target_posts_it(orch, http_server):
    http_server.on("/customers/c%2F7", then=Reply(200, {"name": "Ada", "tier": "gold"}))
    http_server.on("/rates", then=Reply(200, [{"cur": "EUR", "rate": 1.1}]))
    http_server.on("/orders", then=Reply(201, {"id": 99}))
    orch.register_endpoint(api("customer", http_server.url("/customers/{customer.id}")))
    orch.register_endpoint(api("rates", http_server.url("/rates"), into="rates", params={"day": "mon"}))
    orch.register_endpoint(api("orders", http_server.url("/orders"), headers={"X-Team": "ops"}))
    orch.create_flow(flow(["customer", "rates"], ["orders"]))

    result = await orch.execute_flow("f", {"customer": {"id": "c/7"}, "amount": 5}, message_id="m-1")

    assert result["status"] == "completed", result["error"]
    assert result["delivered_to"] == ["orders"]
    expected = {
        "customer": {"id": "c/7"}, "amount": 5, "name": "Ada", "tier": "gold",
        "rates": [{"cur": "EUR", "rate": 1.1}],
    }
    assert result["processed_data"] == expected
    (get_customer,) = http_server.to("/customers/c%2F7")
    assert get_customer.method == "GET" and get_customer.body == b""
    (get_rates,) = http_server.to("/rates")
    assert get_rates.query == "day=mon"
    (post,) = http_server.to("/orders")
    assert post.method == "POST"
    assert post.json() == expected
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["X-Team"] == "ops"
    assert post.headers["Idempotency-Key"] == "f:m-1"
    assert [(s["step"], s["kind"], s["status"], s["attempts"], s.get("status_code")) for s in result["trace"]] == [
        ("customer", "source", "ok", 1, 200),
        ("rates", "source", "ok", 1, 200),
        ("orders", "target", "ok", 1, 201),
    ]
    assert all(s["duration"] >= 0 for s in result["trace"])


async def test_fails_twice_then_succeeds(fast, http_server):
    url = http_server.on("/orders", Reply(503, "busy"), Reply(502), then=Reply(201))
    fast.register_endpoint(api("orders", url))
    fast.create_flow(flow(targets=["orders"], retry={"max_attempts": 3, "backoff": 0.1}))

    result = await fast.execute_flow("f", {"n": 1})

    assert result["status"] == "completed"
    assert result["retries"] == 2
    (step,) = result["trace"]
    assert step["attempts"] == 3 and step["status"] == "ok"
    assert step["delays"] == fast.sleep.delays == [0.1, 0.2]
    requests = http_server.to("/orders")
    assert len(requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1  # one message, three tries


async def test_backoff_is_exponential_and_capped(fast, http_server):
    url = http_server.on("/x", then=Reply(500))
    fast.register_endpoint(api("x", url))
    fast.create_flow(flow(targets=["x"], retry={"max_attempts": 5, "backoff": 1, "max_backoff": 3}))
    result = await fast.execute_flow("f", {})
    assert result["status"] == "failed"
    assert fast.sleep.delays == [1, 2, 3, 3]
    assert len(http_server.to("/x")) == 5
    assert "answered 500 Internal Server Error" in result["error"]
    assert result["trace"][0]["status_code"] == 500


async def test_jitter_adds_at_most_its_amount(fast, http_server):
    fast.register_endpoint(api("x", http_server.on("/x", then=Reply(500))))
    fast.create_flow(flow(targets=["x"], retry={"max_attempts": 4, "backoff": 0.5, "jitter": 0.25}))
    await fast.execute_flow("f", {})
    for delay, base in zip(fast.sleep.delays, [0.5, 1.0, 2.0], strict=True):
        assert base <= delay <= base + 0.25


async def test_client_errors_are_not_retried(fast, http_server):
    url = http_server.on("/orders", then=Reply(422, {"detail": "amount missing"}))
    fast.register_endpoint(api("orders", url))
    fast.create_flow(flow(targets=["orders"], retry={"max_attempts": 5}))
    result = await fast.execute_flow("f", {"n": 1})
    assert result["status"] == "failed"
    assert result["trace"][0]["attempts"] == 1
    assert len(http_server.to("/orders")) == 1
    assert result["error"].startswith("orders: EndpointError: POST http://127.0.0.1:")
    assert "answered 422 Unprocessable" in result["error"] and "amount missing" in result["error"]
    assert result["reason"] == "delivery to 'orders' failed"


async def test_429_retry_after_is_honoured(orch, http_server):
    url = http_server.on("/orders", Reply(429, headers={"Retry-After": "1"}), then=Reply(201))
    orch.register_endpoint(api("orders", url))
    orch.create_flow(flow(targets=["orders"], retry={"max_attempts": 2, "backoff": 0.01}))

    result = await orch.execute_flow("f", {"n": 1})

    assert result["status"] == "completed"
    assert result["trace"][0]["delays"] == [1.0]  # the server's wait, not the 0.01 s backoff
    first, second = http_server.to("/orders")
    assert second.at - first.at >= 1.0  # recorded by the server


async def test_503_retry_after_http_date_and_cap(fast, http_server):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    url = http_server.on("/a", Reply(503, headers={"Retry-After": when}), then=Reply(200))
    fast.register_endpoint(api("a", url))
    fast.register_endpoint(api("b", http_server.on("/b", Reply(429, headers={"Retry-After": "3600"}), then=Reply(200))))
    fast.create_flow(flow(targets=["a"], retry={"max_attempts": 2}))
    fast.create_flow(flow(targets=["b"], flow_id="g", retry={"max_attempts": 2, "max_retry_after": 0.5}))

    assert (await fast.execute_flow("f", {}))["status"] == "completed"
    assert (await fast.execute_flow("g", {}))["status"] == "completed"
    date_wait, capped = fast.sleep.delays
    assert 0.5 < date_wait <= 2.0
    assert capped == 0.5


async def test_hanging_server_times_out_then_fallback_takes_it(orch, http_server):
    url = http_server.on("/slow", then=Reply(hang=True))
    got = []
    orch.register_endpoint(api("slow", url, timeout=0.2))
    orch.register_endpoint(IntegrationEndpoint("backup", "B", "function", {"callable": got.append}, []))
    orch.create_flow(flow(targets=["slow"], retry={"max_attempts": 2, "backoff": 0.01}, fallback="backup"))

    result = await orch.execute_flow("f", {"n": 1})

    assert result["status"] == "completed"
    assert result["delivered_to"] == ["backup"] and result["fallback_for"] == ["slow"]
    assert got == [{"n": 1}]
    target, fallback = result["trace"]
    assert target["status"] == "failed" and target["attempts"] == 2
    assert "timed out after 0.2 s (ReadTimeout)" in target["error"]
    assert fallback["kind"] == "fallback" and fallback["status"] == "ok"
    assert len(http_server.to("/slow")) == 2


async def test_connection_refused_is_transient(fast):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fast.register_endpoint(api("down", f"http://127.0.0.1:{port}/x"))
    fast.create_flow(flow(targets=["down"], retry={"max_attempts": 3}, dead_letter=True))
    result = await fast.execute_flow("f", {"n": 1})
    assert result["status"] == "failed" and result["dead_lettered"]
    assert result["trace"][0]["attempts"] == 3
    assert "ConnectError" in result["error"]


async def test_source_failure_stops_the_message(orch, http_server):
    http_server.on("/text", then=Reply(200, "not json"))
    calls = []
    orch.register_endpoint(api("text", http_server.url("/text")))
    orch.register_endpoint(IntegrationEndpoint("sink", "S", "function", {"callable": calls.append}, []))
    orch.create_flow(flow(["text"], ["sink"]))
    result = await orch.execute_flow("f", {"a": 1})
    assert result["status"] == "failed"
    assert result["reason"] == "source 'text' failed"
    assert "is not JSON (content-type 'text/plain')" in result["error"]
    assert result["processed_data"] is None and calls == []


async def test_inactive_endpoint_refuses(orch, http_server):
    orch.register_endpoint(
        IntegrationEndpoint("o", "O", "api", {"url": http_server.url("/o")}, [], status="maintenance")
    )
    orch.create_flow(flow(targets=["o"]))
    result = await orch.execute_flow("f", {})
    assert "endpoint 'o' is 'maintenance', not 'active'" in result["error"]
    assert http_server.requests == []


async def test_secrets_never_leak(orch, http_server, caplog):
    token = "s3cr3t-T0KEN-value"
    password = "hunter2-pw"
    tenant = "tenant-key-42"
    url = http_server.on("/echo", then=Reply(500, echo_headers=True))
    endpoint = IntegrationEndpoint(
        "echo", "Echo", "api",
        {
            "url": url,
            "headers": {"Authorization": f"Bearer {token}", "X-Tenant": tenant, "Accept": "application/json"},
            "secret_headers": ["X-Tenant"],
        },
        [],
    )
    basic_url = http_server.on("/basic", then=Reply(500, echo_headers=True))
    basic_endpoint = api("basic", basic_url.replace("http://", f"http://svc:{password}@"), params={"api_key": "k3y-abcdef"})
    orch.register_endpoint(endpoint)
    orch.register_endpoint(basic_endpoint)
    orch.create_flow(flow(targets=["echo", "basic"], dead_letter=True))
    events = []
    orch.subscribe(events.append)
    caplog.set_level(logging.DEBUG)

    result = await orch.execute_flow("f", {"n": 1})

    (request,) = http_server.to("/echo")  # the secrets were really sent ...
    assert request.headers["X-Tenant"] == tenant
    assert request.headers["Authorization"] == f"Bearer {token}"
    (basic_request,) = http_server.to("/basic")
    basic = base64.b64encode(f"svc:{password}".encode()).decode()
    assert basic_request.headers["Authorization"] == f"Basic {basic}"
    assert basic_request.query == "api_key=k3y-abcdef"
    assert '"Authorization": "***"' in result["error"]  # ... and masked in the echo
    assert result["dead_lettered"]
    frame = orch.dead_letters("f")
    texts = {
        "result": repr(result),
        "events": repr(events),
        "logs": caplog.text,
        "endpoint repr": repr(endpoint) + repr(basic_endpoint),
        "endpoints": repr(orch.endpoints),
        "dead letters": frame.to_string() + repr(frame.to_dict("records")),
    }
    assert "HTTP Request: POST http://127.0.0.1" in caplog.text  # httpx's own log, masked
    for where, text in texts.items():
        for secret in (token, password, tenant, basic, "k3y-abcdef"):
            assert secret not in text, f"{secret!r} leaked into {where}"
    assert "'Accept': 'application/json'" in repr(endpoint)  # harmless headers stay readable
    assert "http://svc:***@127.0.0.1" in repr(basic_endpoint)
    assert "'params': {'api_key': '***'}" in repr(basic_endpoint)


async def test_events_for_each_step_and_message(orch, http_server):
    orch.register_endpoint(api("orders", http_server.on("/orders", then=Reply(201))))
    orch.create_flow(flow(targets=["orders"]))
    events = []
    unsubscribe = orch.subscribe(events.append)
    result = await orch.execute_flow("f", {"n": 1})
    step, delivered = events
    assert isinstance(step, FlowStepFinished) and isinstance(delivered, FlowMessageDelivered)
    assert step.run_id == delivered.run_id == result["run_id"]
    assert step.message_id == result["message_id"] and step.step == "orders" and step.kind == "target"
    assert delivered.delivered_to == ("orders",)
    assert step.timestamp <= delivered.timestamp
    unsubscribe()
    await orch.execute_flow("f", {"n": 2})
    assert len(events) == 2


async def test_pooled_client_is_closed_with_the_orchestrator(tmp_path, http_server):
    async with IntegrationOrchestrator(dead_letter_store=tmp_path / "dl.sqlite") as orch:
        orch.register_endpoint(api("o", http_server.url("/o")))
        orch.create_flow(flow(targets=["o"]))
        await orch.execute_flow("f", {"n": 1})
        await orch.execute_flow("f", {"n": 2})
        client = orch.http_client()
        assert client is orch.http_client()  # one pooled client
    assert client.is_closed

    own = httpx.AsyncClient()
    orch = IntegrationOrchestrator(dead_letter_store=tmp_path / "dl.sqlite", http_client=own)
    orch.register_endpoint(api("o", http_server.url("/o")))
    orch.create_flow(flow(targets=["o"]))
    assert (await orch.execute_flow("f", {}))["status"] == "completed"
    await orch.aclose()
    assert not own.is_closed  # the caller's client is the caller's to close
    await own.aclose()
