"""Flows: transformations with schemas, content-based routing with multicast, fallback,
notification, dead-letter channels, replay, events and metrics."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest
from scripted_http import Reply

from wfkit import (
    DataTransformation,
    IntegrationEndpoint,
    IntegrationFlow,
    IntegrationOrchestrator,
)
from wfkit.events import (
    FlowMessageDeadLettered,
    FlowMessageDelivered,
    FlowMessageFailed,
    FlowStepFinished,
)

ORDER_IN = {
    "type": "object",
    "required": ["order"],
    "properties": {
        "order": {
            "type": "object",
            "required": ["amount", "country"],
            "properties": {"amount": {"type": "number", "minimum": 0}, "country": {"type": "string"}},
        }
    },
}
ORDER_OUT = {
    "type": "object",
    "required": ["amount", "country", "vat"],
    "properties": {"vat": {"type": "number"}},
}


def flatten(data):
    order = data["order"]
    return {"amount": order["amount"], "country": order["country"], "vat": round(order["amount"] * 0.2, 2)}


async def async_flatten(data):
    await asyncio.sleep(0)
    return flatten(data)


class Sink:
    """A function endpoint that records what it receives (and can fail on demand)."""

    def __init__(self, fail=0, exc=ConnectionError):
        self.got, self.fail, self.exc = [], fail, exc

    def __call__(self, data):
        if self.fail:
            self.fail -= 1
            raise self.exc("sink unavailable")
        self.got.append(data)


def register_sinks(orch, *names, **failing):
    sinks = {}
    for name in names:
        sinks[name] = Sink(**failing.get(name, {}))
        orch.register_endpoint(IntegrationEndpoint(name, name, "function", {"callable": sinks[name]}, ["write"]))
    return sinks


def make_flow(targets=("a",), transformations=(), rules=None, flow_id="f", sources=(), **handling):
    return IntegrationFlow(flow_id, flow_id, list(sources), list(targets), list(transformations), rules or {}, handling)


@pytest.mark.parametrize("fn", [flatten, async_flatten])
async def test_transformation_validates_before_and_after(orch, fn):
    sinks = register_sinks(orch, "a")
    orch.register_transformation(DataTransformation("flat", "Flatten", ORDER_IN, ORDER_OUT, fn))
    orch.create_flow(make_flow(transformations=["flat"]))
    result = await orch.execute_flow("f", {"order": {"amount": 100, "country": "DE"}})
    assert result["status"] == "completed"
    assert result["processed_data"] == sinks["a"].got[0] == {"amount": 100, "country": "DE", "vat": 20.0}


async def test_invalid_input_names_path_and_value(orch):
    sinks = register_sinks(orch, "a")
    orch.register_transformation(DataTransformation("flat", "Flatten", ORDER_IN, ORDER_OUT, flatten))
    orch.create_flow(make_flow(transformations=["flat"]))
    result = await orch.execute_flow("f", {"order": {"amount": -3, "country": "DE"}})
    assert result["status"] == "failed"
    assert result["reason"] == "transformation 'flat' failed"
    assert result["error"] == (
        "SchemaValidationError: transformation 'flat': the input message is invalid at "
        "$.order.amount: -3 is less than the minimum of 0 (value: -3)"
    )
    assert sinks["a"].got == []
    missing = await orch.execute_flow("f", {"order": {"amount": 3}})
    assert "invalid at $.order: 'country' is a required property" in missing["error"]


async def test_invalid_output_and_non_mapping_result(orch):
    register_sinks(orch, "a")
    orch.register_transformation(DataTransformation("lossy", "L", None, ORDER_OUT, lambda d: {"amount": 1, "country": "FR", "vat": "x"}))
    orch.register_transformation(DataTransformation("none", "N", None, None, lambda d: None))
    orch.create_flow(make_flow(transformations=["lossy"]))
    orch.create_flow(make_flow(transformations=["none"], flow_id="g"))
    lossy = await orch.execute_flow("f", {})
    assert "the output message is invalid at $.vat: 'x' is not of type 'number' (value: 'x')" in lossy["error"]
    none = await orch.execute_flow("g", {})
    assert "transformation 'none' returned NoneType, not a message" in none["error"]


async def test_transformations_chain_and_do_not_touch_the_input(orch):
    sinks = register_sinks(orch, "a")

    def stamp(data):
        data["stamped"] = True  # mutates its input
        return data

    orch.register_transformation(DataTransformation("stamp", "S", None, None, stamp))
    orch.register_transformation(DataTransformation("count", "C", None, {"required": ["n"]}, lambda d: {**d, "n": len(d)}))
    orch.create_flow(make_flow(transformations=["stamp", "count"]))
    message = {"x": {"y": 1}}
    result = await orch.execute_flow("f", message)
    assert sinks["a"].got == [{"x": {"y": 1}, "stamped": True, "n": 2}]
    assert message == {"x": {"y": 1}}  # the caller's dict is untouched
    assert [(s["step"], s["kind"]) for s in result["trace"]] == [
        ("stamp", "transformation"), ("count", "transformation"), ("a", "target"),
    ]


ROUTES = {
    "rules": [
        {"when": {"field": "amount", "op": ">", "value": 1000}, "to": ["review", "ledger"]},
        {"when": {"field": "country", "op": "in", "value": ["US", "CA"]}, "to": ["ledger", "americas"]},
        {"when": lambda d: d.get("rush") is True, "to": "courier"},
    ],
    "default": ["ledger"],
}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"amount": 5000, "country": "DE"}, ["review", "ledger"]),
        ({"amount": 5000, "country": "US"}, ["review", "ledger", "americas"]),  # multicast, once each
        ({"amount": 10, "country": "CA", "rush": True}, ["ledger", "americas", "courier"]),
        ({"amount": 10, "country": "FR"}, ["ledger"]),  # nothing matched: the default
    ],
)
async def test_content_based_routing(orch, message, expected):
    sinks = register_sinks(orch, "review", "ledger", "americas", "courier")
    orch.create_flow(make_flow(targets=[], rules=ROUTES))
    result = await orch.execute_flow("f", message)
    assert result["status"] == "completed"
    assert result["routed_to"] == expected
    assert sorted(result["delivered_to"]) == sorted(expected)
    for name, sink in sinks.items():
        assert sink.got == ([message] if name in expected else [])
    route_step = next(s for s in result["trace"] if s["kind"] == "route")
    assert route_step["to"] == expected


async def test_multicast_targets_get_independent_copies(orch):
    def grab(data):
        data["touched"] = True

    seen = []
    orch.register_endpoint(IntegrationEndpoint("m1", "M", "function", {"callable": grab}, []))
    orch.register_endpoint(IntegrationEndpoint("m2", "M", "function", {"callable": seen.append}, []))
    orch.create_flow(make_flow(targets=["m1", "m2"]))
    await orch.execute_flow("f", {"a": 1})
    assert seen == [{"a": 1}]


async def test_no_route_is_dead_lettered(orch):
    register_sinks(orch, "ledger")
    rules = {"rules": [{"when": {"field": "amount", "op": ">", "value": 1000}, "to": ["ledger"]}]}
    orch.create_flow(make_flow(targets=[], rules=rules, dead_letter=True))
    result = await orch.execute_flow("f", {"amount": 5}, message_id="small")
    assert result["status"] == "failed" and result["dead_lettered"]
    assert result["reason"] == "no route"
    frame = orch.dead_letters("f")
    assert frame.loc[0, "reason"] == "no route"
    assert frame.loc[0, "message"] == {"amount": 5}
    assert frame.loc[0, "message_id"] == "small"


async def test_without_rules_every_target_receives(orch):
    sinks = register_sinks(orch, "a", "b", "c")
    orch.create_flow(make_flow(targets=["a", "b", "c"]))
    result = await orch.execute_flow("f", {"n": 1})
    assert sorted(result["delivered_to"]) == ["a", "b", "c"]
    assert all(s.got == [{"n": 1}] for s in sinks.values())
    assert not any(s["kind"] == "route" for s in result["trace"])


async def test_a_raising_condition_fails_the_message(orch):
    register_sinks(orch, "a")
    rules = {"rules": [{"when": lambda d: d["missing"], "to": ["a"]}]}
    orch.create_flow(make_flow(targets=[], rules=rules, dead_letter=True))
    result = await orch.execute_flow("f", {"n": 1})
    assert result["reason"] == "routing failed"
    assert "routing rule 0 raised KeyError: 'missing'" in result["error"]
    assert result["dead_lettered"]


async def test_retry_only_transient_function_errors(orch):
    sinks = register_sinks(orch, "flaky", "broken", flaky={"fail": 2}, broken={"fail": 5, "exc": ValueError})
    orch.create_flow(make_flow(targets=["flaky"], retry={"max_attempts": 3, "backoff": 0}))
    orch.create_flow(make_flow(targets=["broken"], flow_id="g", retry={"max_attempts": 3, "backoff": 0}))
    ok = await orch.execute_flow("f", {"n": 1})
    assert ok["status"] == "completed" and ok["trace"][0]["attempts"] == 3 and ok["retries"] == 2
    assert sinks["flaky"].got == [{"n": 1}]
    bad = await orch.execute_flow("g", {"n": 1})
    assert bad["status"] == "failed" and bad["trace"][0]["attempts"] == 1
    assert sinks["broken"].fail == 4


async def test_partial_multicast_failure_and_replay_to_the_missing_target(orch):
    sinks = register_sinks(orch, "good", "bad", bad={"fail": 1, "exc": RuntimeError})
    orch.register_transformation(DataTransformation("v", "V", None, None, lambda d: {**d, "v": 2}))
    orch.create_flow(make_flow(targets=["good", "bad"], transformations=["v"], dead_letter=True))

    result = await orch.execute_flow("f", {"n": 1}, message_id="m1")

    assert result["status"] == "failed"
    assert result["delivered_to"] == ["good"] and result["failed_targets"] == ["bad"]
    assert result["reason"] == "delivery to 'bad' failed"
    frame = orch.dead_letters("f")
    assert list(frame["failed_targets"]) == [["bad"]]
    assert frame.loc[0, "processed_data"] == {"n": 1, "v": 2}
    assert frame.loc[0, "message"] == {"n": 1}
    assert frame.loc[0, "stage"] == "delivery"
    assert isinstance(frame.loc[0, "dead_lettered_at"], pd.Timestamp)
    assert str(frame["dead_lettered_at"].dt.tz) == "UTC"

    summary = await orch.replay_dead_letters("f")

    assert {k: summary[k] for k in ("replayed", "delivered", "dead_lettered", "failed")} == {
        "replayed": 1, "delivered": 1, "dead_lettered": 0, "failed": 0,
    }
    assert sinks["good"].got == [{"n": 1, "v": 2}]  # not sent twice
    assert sinks["bad"].got == [{"n": 1, "v": 2}]
    assert summary["results"][0]["message_id"] == "m1"
    assert orch.dead_letters("f").empty
    history = orch.dead_letters("f", include_replayed=True)
    assert list(history["replay_status"]) == ["delivered"]


async def test_replay_that_fails_again_stays_dead_lettered(orch):
    register_sinks(orch, "bad", bad={"fail": 10, "exc": RuntimeError})
    orch.create_flow(make_flow(targets=["bad"], dead_letter=True))
    await orch.execute_flow("f", {"n": 1}, message_id="m1")
    summary = await orch.replay_dead_letters("f")
    assert summary["dead_lettered"] == 1
    pending = orch.dead_letters("f")
    assert list(pending["message_id"]) == ["m1"]
    history = orch.dead_letters("f", include_replayed=True)
    assert history["replay_status"].iloc[0] == "dead_lettered"
    assert history["replay_status"].isna().tolist() == [False, True]  # the new letter is pending


async def test_fallback_and_notifications(orch):
    sinks = register_sinks(orch, "primary", "backup", primary={"fail": 99})
    told = []

    async def notify(failure):
        told.append(failure)

    orch.create_flow(make_flow(targets=["primary"], retry={"max_attempts": 2, "backoff": 0}, fallback="backup", notification=notify))
    result = await orch.execute_flow("f", {"n": 1}, message_id="m")
    assert result["status"] == "completed"
    assert result["delivered_to"] == ["backup"] and result["fallback_for"] == ["primary"]
    assert sinks["backup"].got == [{"n": 1}]
    (failure,) = told
    assert failure["step"] == "primary" and failure["kind"] == "target" and failure["attempts"] == 2
    assert failure["error"] == "ConnectionError: sink unavailable"
    assert failure["message"] == {"n": 1} and failure["message_id"] == "m"
    assert [s["kind"] for s in result["trace"]] == ["target", "notification", "fallback"]


async def test_notification_endpoint_and_a_broken_notifier(orch, http_server):
    register_sinks(orch, "a", a={"fail": 1, "exc": RuntimeError})
    url = http_server.on("/alerts", then=Reply(202))
    orch.register_endpoint(IntegrationEndpoint("alerts", "Alerts", "api", {"url": url}, []))
    orch.create_flow(make_flow(targets=["a"], notification="alerts"))
    await orch.execute_flow("f", {"n": 1}, message_id="m")
    (alert,) = http_server.to("/alerts")
    assert alert.json()["step"] == "a" and alert.json()["error"] == "RuntimeError: sink unavailable"

    def broken(failure):
        raise OSError("pager down")

    register_sinks(orch, "b", b={"fail": 1, "exc": RuntimeError})
    orch.create_flow(make_flow(targets=["b"], flow_id="g", notification=broken))
    result = await orch.execute_flow("g", {"n": 1})
    assert result["status"] == "failed"  # the notifier's failure changes nothing else
    assert result["trace"][-1]["kind"] == "notification" and result["trace"][-1]["status"] == "failed"


async def test_dead_letter_queue_endpoint(orch, tmp_path):
    register_sinks(orch, "bad", bad={"fail": 10, "exc": RuntimeError})
    url = f"sqlite:///{tmp_path / 'dlq.sqlite'}"
    orch.register_endpoint(IntegrationEndpoint("dlq", "DLQ", "message_queue", {"url": url, "topic": "dead"}, []))
    orch.create_flow(make_flow(targets=["bad"], dead_letter="dlq"))
    result = await orch.execute_flow("f", {"n": 1}, message_id="m1")
    assert result["dead_lettered"]
    assert (await orch.queue_stats("dlq"))["total"] == 1
    frame = orch.dead_letters("f")
    assert list(frame["channel"]) == ["dlq"]
    assert frame.loc[0, "reason"] == "delivery to 'bad' failed"
    assert frame.loc[0, "message"] == {"n": 1}
    orch._endpoints["bad"].fn.fail = 0  # the target recovers
    summary = await orch.replay_dead_letters("f")
    assert summary["delivered"] == 1
    assert (await orch.queue_stats("dlq"))["total"] == 0
    assert orch.dead_letters("f").empty


async def test_failure_without_dead_letter_channel(orch):
    register_sinks(orch, "bad", bad={"fail": 1, "exc": RuntimeError})
    orch.create_flow(make_flow(targets=["bad"]))
    result = await orch.execute_flow("f", {"n": 1})
    assert result["status"] == "failed" and not result["dead_lettered"]
    assert orch.dead_letters("f").empty


async def test_events_for_a_dead_lettered_message(orch):
    register_sinks(orch, "bad", bad={"fail": 1, "exc": RuntimeError})
    orch.create_flow(make_flow(targets=["bad"], dead_letter=True))
    events = []
    orch.subscribe(events.append)
    result = await orch.execute_flow("f", {"n": 1})
    kinds = [type(e) for e in events]
    assert kinds == [FlowStepFinished, FlowStepFinished, FlowMessageDeadLettered, FlowMessageFailed]
    target, dead, dead_lettered, failed = events
    assert (target.step, target.kind, target.status) == ("bad", "target", "failed")
    assert (dead.step, dead.kind, dead.status) == ("dead_letter_store", "dead_letter", "ok")
    assert dead_lettered.reason == "delivery to 'bad' failed"
    assert failed.error == result["error"]
    assert {e.run_id for e in events} == {result["run_id"]}


class RecordingMetrics:
    """Implements the metrics side of the contract: the document's call, plus attach()."""

    def __init__(self):
        self.records, self.attached, self.events = [], [], []

    def attach(self, orchestrator):
        self.attached.append(orchestrator)
        orchestrator.subscribe(self.events.append)

    def record_integration_flow(self, flow_id, endpoints, transformations, success):
        self.records.append((flow_id, endpoints, transformations, success))


async def test_metrics_receive_every_message(tmp_path):
    metrics = RecordingMetrics()
    async with IntegrationOrchestrator(metrics=metrics, dead_letter_store=tmp_path / "dl.sqlite") as orch:
        assert metrics.attached == [orch]
        register_sinks(orch, "a", "b", b={"fail": 1, "exc": RuntimeError})
        orch.register_transformation(DataTransformation("t", "T", None, None, dict))
        orch.create_flow(make_flow(targets=["a", "b"], transformations=["t"]))
        await orch.execute_flow("f", {"n": 1})
        await orch.execute_flow("f", {"n": 2})
    assert metrics.records == [("f", ["a", "b"], ["t"], False), ("f", ["a", "b"], ["t"], True)]
    assert sum(isinstance(e, FlowMessageDelivered) for e in metrics.events) == 1


async def test_with_the_real_metrics_recorder(tmp_path):
    recorder = pytest.importorskip("wfkit.metrics.recorder", reason="the metrics layer is not built yet")
    metrics = recorder.AdvancedWorkflowMetrics()
    async with IntegrationOrchestrator(metrics=metrics, dead_letter_store=tmp_path / "dl.sqlite") as orch:
        register_sinks(orch, "a", "b", b={"fail": 1, "exc": RuntimeError})
        orch.register_transformation(DataTransformation("t", "T", None, None, dict))
        orch.create_flow(make_flow(targets=["a", "b"], transformations=["t"], dead_letter=True))
        results = [await orch.execute_flow("f", {"n": n}) for n in range(3)]
    frame = metrics.integration_frame()
    assert list(frame["message_id"]) == [r["message_id"] for r in results]  # one row per message
    assert list(frame["status"]) == ["dead_lettered", "delivered", "delivered"]
    assert list(frame["transformations"]) == [1, 1, 1]
    steps = metrics.flow_step_frame()
    assert len(steps) == sum(len(r["trace"]) for r in results)
    assert set(steps["kind"]) == {"transformation", "target", "dead_letter"}


async def test_the_recorder_counts_messages_from_events_alone(tmp_path):
    """A recorder on a bus that only forwards the orchestrator's events records the same
    messages, counts included, as the one given as metrics= (no call besides the events)."""
    from wfkit import AdvancedWorkflowMetrics
    from wfkit.events import EventBus

    attached = AdvancedWorkflowMetrics()
    calls = []
    attached.record_integration_flow = lambda *a, **kw: calls.append(a)  # must not be called
    bus = EventBus()
    foreign = AdvancedWorkflowMetrics().attach(bus)
    async with IntegrationOrchestrator(metrics=attached,
                                       dead_letter_store=tmp_path / "dl.sqlite") as orch:
        orch.subscribe(bus.emit)
        register_sinks(orch, "a", "b", b={"fail": 1, "exc": RuntimeError})
        orch.register_transformation(DataTransformation("t", "T", None, None, dict))
        orch.create_flow(make_flow(targets=["a", "b"], transformations=["t"], dead_letter=True))
        for n in range(3):
            await orch.execute_flow("f", {"n": n})
    assert calls == []
    frame = foreign.integration_frame()
    assert frame.equals(attached.integration_frame())
    assert list(frame["endpoints"]) == [2, 2, 2] and list(frame["transformations"]) == [1, 1, 1]
    assert foreign.get_integration_summary() == attached.get_integration_summary()
    assert len(frame) == 3  # one row per message: nothing to remove twice


def test_a_hand_recorded_flow_is_its_own_row_after_a_message_ended():
    from wfkit import AdvancedWorkflowMetrics
    from wfkit.events import EventBus

    bus = EventBus()
    m = AdvancedWorkflowMetrics().attach(bus)
    bus.emit(FlowMessageDelivered("r", 1.0, "f", "m1", ("a",), 0.5, ("a",), ()))
    m.record_integration_flow("f", 3, 2, True)
    frame = m.integration_frame()
    assert frame[["source", "endpoints", "transformations"]].values.tolist() == [
        ["events", 1, 0], ["record", 3, 2]]


def test_a_script_with_run_sync(tmp_path, http_server):
    """Plain scripts call run_sync once per step, each on a fresh event loop."""
    import wfkit

    orch = IntegrationOrchestrator(dead_letter_store=tmp_path / "dl.sqlite")
    orch.register_endpoint(IntegrationEndpoint("api", "A", "api", {"url": http_server.on("/o", then=Reply(201))}, []))
    orch.register_endpoint(IntegrationEndpoint("q", "Q", "message_queue", {"url": tmp_path / "q.sqlite", "topic": "t"}, []))
    orch.create_flow(IntegrationFlow("f", "F", ["q"], ["api"], [], {}, {"dead_letter": True}))
    assert wfkit.run_sync(orch.execute_flow("f", {"n": 0}))["status"] == "completed"
    assert wfkit.run_sync(orch.publish("q", [{"n": 1}, {"n": 2}])) == 2
    stats = wfkit.run_sync(orch.run_flow("f"))
    assert stats["delivered"] == 2
    assert wfkit.run_sync(orch.execute_flow("f", {"n": 3}))["status"] == "completed"
    wfkit.run_sync(orch.aclose())
    assert sorted(r.json()["n"] for r in http_server.to("/o")) == [0, 1, 2, 3]


async def test_the_fallback_gets_a_message_once_however_many_targets_fail(orch):
    sinks = register_sinks(orch, "a", "b", "c", "backup", a={"fail": 9}, b={"fail": 9})
    orch.create_flow(make_flow(targets=["a", "b", "c"], fallback="backup"))
    result = await orch.execute_flow("f", {"n": 1})
    assert result["status"] == "completed"
    assert sinks["backup"].got == [{"n": 1}]  # once, not once per failed target
    assert sorted(result["fallback_for"]) == ["a", "b"]
    assert sorted(result["delivered_to"]) == ["backup", "c"]
    assert [s["kind"] for s in result["trace"]].count("fallback") == 1
