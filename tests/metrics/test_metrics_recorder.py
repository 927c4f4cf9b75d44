"""AdvancedWorkflowMetrics: the pattern document's API, recording from events, typed frames."""

from __future__ import annotations

import pandas as pd
import pytest

from wfkit import (
    AdvancedWorkflowMetrics,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    EventBus,
    ValidationError,
    WorkflowTask,
)
from wfkit.events import (
    FlowMessageDeadLettered,
    FlowMessageDelivered,
    FlowMessageFailed,
    FlowStepFinished,
    RunStarted,
    TaskCompleted,
    TaskStarted,
)


def task(tid, deps=None, caps=("w",), **kw):
    return WorkflowTask(tid, tid, list(caps), 0, 1.0, deps, **kw)


def is_utc_time(series):
    return pd.api.types.is_datetime64_any_dtype(series) and str(series.dt.tz) == "UTC"


def test_the_documents_api_records_and_summarises():
    m = AdvancedWorkflowMetrics()
    m.record_workflow_execution("etl", 2.0, True, 3)
    m.record_workflow_execution("etl", 4.0, False, ["a1", "a2", "a1"])
    m.record_workflow_execution("report", 1.5, True, 1)
    summary = m.get_workflow_summary()
    assert summary["etl"]["success_rate"] == 0.5
    assert summary["etl"]["average_duration"] == 3.0
    assert summary["etl"]["average_participants"] == 2.5
    assert summary["etl"]["total_executions"] == 2
    assert summary["report"] == pytest.approx(
        {"total_executions": 1, "successful_executions": 1, "success_rate": 1.0,
         "average_duration": 1.5, "average_participants": 1.0,
         "last_execution": summary["report"]["last_execution"]})
    assert [r["participants"] for r in m.workflow_metrics["etl"]] == [3, 2]

    frame = m.workflow_frame()
    assert frame["workflow_id"].tolist() == ["etl", "etl", "report"]
    assert frame["status"].tolist() == ["completed", "failed", "completed"]
    assert frame["duration"].tolist() == [2.0, 4.0, 1.5]
    assert frame["participants"].tolist() == [3, 2, 1]
    assert frame["participant_ids"].iloc[1] == ("a1", "a2")
    assert frame["run_id"].isna().all() and frame["total_tasks"].isna().all()
    durations = (frame["finished_at"] - frame["started_at"]).dt.total_seconds()
    assert durations.tolist() == pytest.approx([2.0, 4.0, 1.5], abs=1e-5)

    m.record_integration_flow("sync", 2, 1, True)
    m.record_integration_flow("sync", ["api", "db", "queue"], ["t1"], False, duration=0.25)
    flows = m.integration_frame()
    assert flows[["flow_id", "status", "success", "endpoints", "transformations"]].astype(
        object).values.tolist() == [["sync", "delivered", True, 2, 1],
                                    ["sync", "failed", False, 3, 1]]
    assert flows["source"].tolist() == ["record", "record"]
    assert flows["duration"].iloc[1] == 0.25 and pd.isna(flows["duration"].iloc[0])
    integration = m.get_integration_summary()["sync"]
    assert integration["success_rate"] == 0.5 and integration["average_endpoints"] == 2.5
    assert integration["average_duration"] == 0.25


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.record_workflow_execution("", 1.0, True, 1), "workflow_id must be"),
        (lambda m: m.record_workflow_execution("w", -1, True, 1), "duration must be >= 0"),
        (lambda m: m.record_workflow_execution("w", "1s", True, 1), "duration must be a number"),
        (lambda m: m.record_workflow_execution("w", 1.0, True, "a1"), "count or a list of ids"),
        (lambda m: m.record_workflow_execution("w", 1.0, True, -2), "participants must be >= 0"),
        (lambda m: m.record_integration_flow("f", True, 0, True), "endpoints must be a count"),
        (lambda m: m.attach(object()), r"attach\(\) needs an object with subscribe"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValidationError, match=message):
        call(AdvancedWorkflowMetrics())


async def test_an_attached_orchestrator_records_every_run_and_attempt():
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001)
    calls = {"n": 0}

    def flaky(ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("slow service")
        return 2

    async def ok(ctx):
        return 1

    orch.register_agent(AgentProfile("worker", "w", ["w"], capacity=2, handler=ok))
    orch.register_agent(AgentProfile("idle", "i", ["other"], handler=ok))  # never runs a task
    m = AdvancedWorkflowMetrics().attach(orch)
    assert m.attach(orch) is m  # attaching twice records once
    await orch.create_workflow("wf", [task("a"), task("b", ["a"], action=flaky, retries=1),
                                      task("c", ["a"], action=lambda ctx: 1 / 0),
                                      task("d", ["c"])])
    result = await orch.execute_workflow("wf")
    await orch.create_workflow("small", [task("x")])
    await orch.execute_workflow("small")

    runs = m.workflow_frame()
    assert runs["run_id"].tolist()[0] == result.run_id
    first = runs.iloc[0]
    assert first[["workflow_id", "status", "total_tasks", "successful_tasks", "failed_tasks",
                  "skipped_tasks", "cancelled_tasks", "participants"]].tolist() == [
        "wf", "failed", 4, 2, 1, 1, 0, 1]
    assert first["participant_ids"] == ("worker",)
    assert first["duration"] == pytest.approx(result["makespan"])
    assert runs["policy"].tolist() == ["least_loaded", "least_loaded"]

    tasks = m.task_frame()
    assert len(tasks) == 6  # a, b twice, c, the skip of d, x
    got = tasks[["task_id", "attempt", "status", "final"]].astype(object).values.tolist()
    assert sorted(got, key=str) == sorted([
        ["a", 1, "completed", True], ["b", 1, "failed", False], ["b", 2, "completed", True],
        ["c", 1, "failed", True], ["d", 0, "skipped", True], ["x", 1, "completed", True],
    ], key=str)
    b1 = tasks[(tasks.task_id == "b") & (tasks.attempt == 1)].iloc[0]
    assert b1["error"] == "TimeoutError: slow service" and b1["agent_id"] == "worker"
    for tid in "abc":  # the frame's times are the engine's times
        assert tasks[tasks.task_id == tid]["started_at"].min().timestamp() == pytest.approx(
            result.task_results[tid]["started_at"], abs=1e-6)
    ran = tasks[tasks.attempt > 0]
    assert ((ran["finished_at"] - ran["started_at"]).dt.total_seconds()).tolist() == pytest.approx(
        ran["duration"].tolist(), abs=1e-5)

    summary = m.get_workflow_summary()
    assert summary["wf"]["success_rate"] == 0.0 and summary["small"]["success_rate"] == 1.0
    assert summary["wf"]["average_participants"] == 1.0

    m.detach(orch)
    await orch.execute_workflow("small")
    assert len(m.workflow_frame()) == 2


def test_frames_are_typed_even_when_empty():
    m = AdvancedWorkflowMetrics()
    for frame in (m.workflow_frame(), m.task_frame(), m.agent_load_frame(),
                  m.integration_frame(), m.flow_step_frame()):
        assert frame.empty
    full = AdvancedWorkflowMetrics()
    full.record_workflow_execution("w", 1.0, True, 1)
    assert (m.workflow_frame().dtypes == full.workflow_frame().dtypes).all()
    tasks = m.task_frame()
    assert list(tasks.columns) == ["run_id", "workflow_id", "task_id", "agent_id", "status",
                                   "attempt", "started_at", "finished_at", "duration", "error",
                                   "final", "cached", "parent_task_id", "map_index"]
    assert is_utc_time(tasks["started_at"]) and tasks["attempt"].dtype == "Int64"
    assert pd.api.types.is_string_dtype(tasks["task_id"])


def test_agent_load_is_derived_from_the_attempt_intervals():
    bus = EventBus()
    m = AdvancedWorkflowMetrics().attach(bus)
    bus.emit(RunStarted("r", 100.0, "w", ("t1", "t2", "t3"), (("a", 2), ("b", 1))))
    for tid, agent, start, end in [("t1", "a", 100.0, 103.0), ("t2", "a", 101.0, 102.0),
                                   ("t3", "a", 103.0, 104.0)]:
        bus.emit(TaskStarted("r", start, "w", tid, agent, 1))
        bus.emit(TaskCompleted("r", end, "w", tid, agent, 1, start, None))
    bus.emit(TaskStarted("r", 100.5, "w", "t4", "b", 1))  # still running
    load = m.agent_load_frame()
    rows = [(r.agent_id, r.timestamp.timestamp(), r.load, r.capacity, r.utilization)
            for r in load.itertuples()]
    assert rows == [
        ("a", 100.0, 1, 2, 0.5), ("a", 101.0, 2, 2, 1.0), ("a", 102.0, 1, 2, 0.5),
        ("a", 103.0, 1, 2, 0.5),  # t1 ends as t3 starts: one change at that instant
        ("a", 104.0, 0, 2, 0.0), ("b", 100.5, 1, 1, 1.0),
    ]
    assert is_utc_time(load["timestamp"])


async def test_a_real_run_never_loads_an_agent_beyond_its_capacity():
    import asyncio

    async def work(ctx):
        await asyncio.sleep(0.001 * (int(ctx.task_id[1:]) % 4))

    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    for i, cap in enumerate((1, 2, 3)):
        orch.register_agent(AgentProfile(f"a{i}", "a", ["w"], capacity=cap, handler=work))
    m = AdvancedWorkflowMetrics().attach(orch)
    await orch.create_workflow("wide", [task(f"t{i}") for i in range(60)])
    await orch.execute_workflow("wide")
    load = m.agent_load_frame()
    peak = load.groupby("agent_id")["load"].max()
    assert (peak <= load.groupby("agent_id")["capacity"].first()).all()
    assert peak["a2"] == 3  # the frame does see concurrency
    assert (load.groupby("agent_id")["load"].last() == 0).all()


def test_integration_events_give_one_row_per_message_and_one_per_step():
    bus = EventBus()
    m = AdvancedWorkflowMetrics().attach(bus)
    # message m1: source, transformation, two targets, delivered
    for step, kind, start, dur, attempts in [("api", "source", 10.0, 0.5, 1),
                                              ("clean", "transformation", 10.5, 0.1, 1),
                                              ("db", "target", 10.6, 0.2, 3),
                                              ("queue", "target", 10.6, 0.3, 1)]:
        bus.emit(FlowStepFinished("run1", start + dur, "f", "m1", step, kind, "ok", attempts,
                                  dur))
    bus.emit(FlowMessageDelivered("run1", 11.0, "f", "m1", ("db", "queue"), 1.0))
    # message m2: the source fails, the message is dead-lettered, then reported failed
    bus.emit(FlowStepFinished("run1", 12.5, "f", "m2", "api", "source", "failed", 2, 0.5,
                              "EndpointError: 503"))
    bus.emit(FlowStepFinished("run1", 12.6, "f", "m2", "dlq", "dead_letter", "ok", 1, 0.1))
    bus.emit(FlowMessageDeadLettered("run1", 12.6, "f", "m2", "source failed"))
    bus.emit(FlowMessageFailed("run1", 12.7, "f", "m2", "EndpointError: 503", 0.7))

    frame = m.integration_frame()
    assert frame["message_id"].tolist() == ["m1", "m2"]
    m1, m2 = frame.iloc[0], frame.iloc[1]
    assert (m1["status"], m1["success"], m1["delivered_to"]) == ("delivered", True,
                                                                 ("db", "queue"))
    assert (m1["endpoints"], m1["transformations"], m1["steps"], m1["retries"]) == (3, 1, 4, 2)
    assert m1["started_at"].timestamp() == 10.0 and m1["finished_at"].timestamp() == 11.0
    assert m1["duration"] == 1.0
    assert (m2["status"], m2["success"], m2["error"]) == ("dead_lettered", False,
                                                          "EndpointError: 503")
    assert m2["retries"] == 1 and m2["finished_at"].timestamp() == 12.7
    assert is_utc_time(frame["started_at"])

    steps = m.flow_step_frame()
    assert steps[["message_id", "step", "kind", "status", "attempts"]].astype(
        object).values.tolist()[:2] == [["m1", "api", "source", "ok", 1],
                                        ["m1", "clean", "transformation", "ok", 1]]
    assert steps["started_at"].iloc[2].timestamp() == pytest.approx(10.6)
    assert steps["error"].iloc[4] == "EndpointError: 503"
    summary = m.get_integration_summary()["f"]
    assert summary["total_executions"] == 2 and summary["success_rate"] == 0.5


async def test_an_integration_orchestrator_is_recorded_once_per_message(tmp_path):
    from wfkit import (
        DataTransformation,
        IntegrationEndpoint,
        IntegrationFlow,
        IntegrationOrchestrator,
    )

    delivered = []
    m = AdvancedWorkflowMetrics()
    orch = IntegrationOrchestrator(metrics=m)  # it attaches m and reports each message too
    orch.register_endpoint(IntegrationEndpoint(
        "src", "source", "function", {"callable": lambda msg: {"n": msg["n"]}}, ["read"]))
    orch.register_endpoint(IntegrationEndpoint(
        "dst", "sink", "function", {"callable": delivered.append}, ["write"]))
    orch.register_transformation(DataTransformation(
        "double", "double", {"type": "object"}, {"type": "object"},
        lambda d: {**d, "n": d["n"] * 2}))
    orch.create_flow(IntegrationFlow("f", "flow", ["src"], ["dst"], ["double"], {}, {}))
    for n in range(3):
        result = await orch.execute_flow("f", {"n": n})
        assert result["status"] == "completed"
    frame = m.integration_frame()
    assert len(frame) == 3 and frame["message_id"].is_unique
    assert (frame["status"] == "delivered").all() and (frame["source"] == "events").all()
    assert frame["transformations"].tolist() == [1, 1, 1]
    assert len(m.flow_step_frame()) == 9
    assert m.get_integration_summary()["f"]["total_executions"] == 3
    await orch.aclose()


# -- max_rows: a recorder that lives as long as the process stays bounded ----------------------


def test_max_rows_defaults_to_a_generous_bound_and_checks_its_value():
    from wfkit.metrics.recorder import DEFAULT_MAX_ROWS

    assert AdvancedWorkflowMetrics().max_rows == DEFAULT_MAX_ROWS == 100_000
    assert AdvancedWorkflowMetrics(max_rows=None).max_rows is None
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValidationError, match="max_rows must be a whole number of rows >= 1"):
            AdvancedWorkflowMetrics(max_rows=bad)


def test_hand_recorded_rows_beyond_max_rows_drop_the_oldest_and_are_counted():
    m = AdvancedWorkflowMetrics(max_rows=5)
    for i in range(8):
        m.record_workflow_execution("wf" if i % 2 else "other", float(i), i != 3, 1)
        m.record_integration_flow("flow", 1, 0, True, duration=float(i))
    assert m.dropped_rows == {"workflows": 3, "tasks": 0, "integration": 3, "flow_steps": 0,
                             "changes": 0, "resource_requests": 0}
    assert list(m.workflow_frame()["duration"]) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert [r["duration"] for r in m.workflow_metrics["wf"]] == [3.0, 5.0, 7.0]
    assert [r["duration"] for r in m.workflow_metrics["other"]] == [4.0, 6.0]
    summary = m.get_workflow_summary()
    assert summary["wf"]["total_executions"] + summary["other"]["total_executions"] == 5
    assert summary["wf"]["success_rate"] == pytest.approx(2 / 3)  # run 3 failed and is kept
    assert list(m.integration_frame()["duration"]) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert m.get_integration_summary()["flow"]["total_executions"] == 5
    assert "dropped 6 oldest rows" in repr(m)
    m.clear()
    assert m.dropped_rows == dict.fromkeys(m.dropped_rows, 0) and len(m.workflow_frame()) == 0


async def test_attached_runs_and_messages_stay_within_max_rows(tmp_path):
    from wfkit import DataTransformation, IntegrationEndpoint, IntegrationFlow
    from wfkit.integration.orchestrator import IntegrationOrchestrator

    m = AdvancedWorkflowMetrics(max_rows=4)
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "a", ["w"], handler=lambda ctx: ctx.task.task_id))
    m.attach(orch)
    await orch.create_workflow("wf", [task("t1"), task("t2", ["t1"])])
    for _ in range(5):
        assert (await orch.execute_workflow("wf"))["successful_tasks"] == 2
    orch.close()
    assert len(m.workflow_frame()) == 4 and len(m.task_frame()) == 4
    assert m.dropped_rows["workflows"] == 1 and m.dropped_rows["tasks"] == 6
    assert len(m.workflow_metrics["wf"]) == 4 and len(m._run_by_id) == len(m._run_record) == 4

    delivered = []
    async with IntegrationOrchestrator(metrics=m, dead_letter_store=tmp_path / "dl.sqlite") as io:
        io.register_endpoint(IntegrationEndpoint("sink", "sink", "function",
                                                 {"callable": delivered.append}, []))
        io.register_transformation(DataTransformation("t", "t", None, None, dict))
        io.create_flow(IntegrationFlow("f", "f", [], ["sink"], ["t"], {}, {}))
        results = [await io.execute_flow("f", {"n": n}) for n in range(20)]
    assert len(delivered) == 20
    frame = m.integration_frame()
    assert list(frame["message_id"]) == [r["message_id"] for r in results[-4:]]
    assert list(frame["transformations"]) == [1] * 4  # the document's call still lands on its row
    assert len(m.flow_step_frame()) == 4
    assert m.dropped_rows["integration"] == 16 and m.dropped_rows["flow_steps"] == 36
    assert len(m.integration_metrics["f"]) == 4
    assert len(m._message_by_key) == len(m._message_steps) == len(m._message_record) == 4


async def test_task_frame_names_the_parent_and_index_of_mapped_children():
    from wfkit import (
        AdvancedWorkflowMetrics,
        AgentProfile,
        CollectiveAgentWorkflowOrchestrator,
        Workflow,
    )

    wf = Workflow("frames")

    @wf.task(requires=["w"])
    def items(ctx):
        return ["x", "y"]

    @wf.task(requires=["w"], map=items)
    def each(ctx):
        return ctx.item

    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    orch.register_agent(AgentProfile("a", "a", ["w"], capacity=2))
    metrics = AdvancedWorkflowMetrics().attach(orch)
    await orch.create_workflow(wf)
    await orch.execute_workflow("frames")
    orch.close()
    df = metrics.task_frame().set_index("task_id")
    assert df.loc["each[1]", "parent_task_id"] == "each" and df.loc["each[1]", "map_index"] == 1
    assert df.loc["each[0]", "map_index"] == 0
    assert df["parent_task_id"].isna()["items"] and df["parent_task_id"].isna()["each"]
    assert df.loc["each", "status"] == "completed" and not df.loc["each", "cached"]
