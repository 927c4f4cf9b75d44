"""Errors wfkit raises on purpose are in the WfkitError tree, and stay the built-in type that
callers already catch (ValueError, TypeError, RuntimeError, KeyError)."""

from __future__ import annotations

import asyncio

import pytest

import wfkit
from wfkit.agents.handlers import simulated_handler
from wfkit.coordination.shared_state import SharedState
from wfkit.errors import (
    ArgumentError,
    ClosedError,
    UnknownKeyError,
    ValidationError,
    WfkitError,
)
from wfkit.events import EventBus
from wfkit.integration.database import Database
from wfkit.integration.durable_queue import dumps
from wfkit.integration.orchestrator import IntegrationOrchestrator
from wfkit.optimization.schedule import Schedule


def test_a_negative_time_scale_is_a_validation_error():
    with pytest.raises(ValidationError, match=r"time_scale must be >= 0 .*got -1") as info:
        simulated_handler(-1)
    assert isinstance(info.value, ValueError)


def test_a_closed_database_says_so(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.close()
    with pytest.raises(ClosedError, match=r"Database\(.*\) is closed: .*make a new one") as info:
        db.run_sync(lambda conn: None)
    assert isinstance(info.value, RuntimeError) and info.value.what.startswith("Database(")

    async def submit():
        await db.submit(lambda conn: None)

    with pytest.raises(ClosedError, match="is closed"):
        asyncio.run(submit())


async def test_a_closed_integration_orchestrator_says_so(tmp_path):
    orch = IntegrationOrchestrator()
    await orch.aclose()
    with pytest.raises(ClosedError, match="this IntegrationOrchestrator is closed") as info:
        orch.database(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(info.value, RuntimeError)


def test_a_schedule_without_its_timetable_is_an_argument_error():
    with pytest.raises(ArgumentError, match="Schedule needs agent, start and finish") as info:
        Schedule(task_ids=["a"], capacities={"w": 1}, lower_bound=0.0, method="list")
    assert isinstance(info.value, TypeError) and isinstance(info.value, WfkitError)


def test_a_message_with_no_json_form_is_an_argument_error():
    with pytest.raises(ArgumentError, match="object is not JSON serializable: send dicts") as info:
        dumps({"x": object()})
    assert isinstance(info.value, TypeError)


def test_deleting_a_missing_shared_key_names_it():
    state = SharedState("s", {"a": 1})
    with pytest.raises(UnknownKeyError, match=r"no key 'b' to delete \(keys: 'a'\)") as info:
        del state["b"]
    assert isinstance(info.value, KeyError) and info.value.key == "b"
    assert state.version == 0 and dict(state) == {"a": 1}


def test_subscribing_something_not_callable_is_an_argument_error():
    with pytest.raises(ArgumentError, match="subscribe\\(\\) needs a callable, got int") as info:
        EventBus().subscribe(3)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)


async def test_an_async_when_fails_the_task_with_an_argument_error():
    wf = wfkit.Workflow("w")

    async def later(ctx):
        return True

    @wf.task(requires=["work"], when=later)
    def gated(ctx):
        return 1

    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(wfkit.AgentProfile("a", "A", ["work"]))
    await orch.create_workflow(wf)
    result = await orch.execute_workflow("w")
    orch.close()
    gated_result = result["task_results"]["gated"]
    assert gated_result["status"] == "failed"
    assert "ArgumentError" in gated_result["error"] and "not a coroutine" in gated_result["error"]


def test_new_errors_are_exported_and_in_the_tree():
    for name in ("ArgumentError", "ClosedError", "UnknownKeyError"):
        assert issubclass(getattr(wfkit, name), WfkitError)
