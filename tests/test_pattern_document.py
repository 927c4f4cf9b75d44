"""The pattern document's five classes, used the way it uses them: every dataclass built
positionally in the document's own argument order, every call with the document's arguments,
doing real work (agents run tasks, a flow moves a message over a real HTTP server and a SQLite
table, participants share state and a resource, the optimiser simulates, metrics summarise).

The document's names are DESIGN.md's: AgentProfile and WorkflowTask with
CollectiveAgentWorkflowOrchestrator; IntegrationEndpoint, DataTransformation and
IntegrationFlow with IntegrationOrchestrator; CoordinationType, CoordinationSession and
CollaborationTask with CoordinationCollaborationManager; OptimizationMetric with
WorkflowOptimizer; AdvancedWorkflowMetrics.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))

from scripted_http import ScriptedServer  # noqa: E402

import wfkit  # noqa: E402
from wfkit import (  # noqa: E402
    AdvancedWorkflowMetrics,
    AgentCapability,
    AgentProfile,
    CollaborationTask,
    CollectiveAgentWorkflowOrchestrator,
    CoordinationCollaborationManager,
    CoordinationSession,
    CoordinationType,
    DataTransformation,
    IntegrationEndpoint,
    IntegrationFlow,
    IntegrationOrchestrator,
    OptimizationMetric,
    WorkflowOptimizer,
    WorkflowTask,
)


async def test_collective_agent_workflows_as_in_the_document():
    orchestrator = CollectiveAgentWorkflowOrchestrator(progress=False)
    handler = wfkit.simulated_handler(time_scale=0.001)
    # AgentProfile(agent_id, name, capabilities, performance_metrics, availability, current_load)
    analyst = AgentProfile(
        "agent_1", "Data Analyst", [AgentCapability.ANALYSIS, AgentCapability.VALIDATION],
        {"accuracy": 0.95, "speed": 0.8}, True, 0, handler=handler,
    )
    writer = AgentProfile(
        "agent_2", "Content Generator", [AgentCapability.GENERATION], {"creativity": 0.9},
        True, 0, handler=handler,
    )
    orchestrator.register_agent(analyst)
    orchestrator.register_agent(writer)
    events = []
    unsubscribe = orchestrator.subscribe(events.append)
    # WorkflowTask(task_id, description, required_capabilities, priority, estimated_duration,
    #              dependencies, status)
    tasks = [
        WorkflowTask("task_1", "Analyse data", [AgentCapability.ANALYSIS], 1, 2.0, [], "pending"),
        WorkflowTask("task_2", "Generate report", [AgentCapability.GENERATION], 2, 3.0,
                     ["task_1"], "pending"),
        WorkflowTask("task_3", "Validate", [AgentCapability.VALIDATION], 3, 1.0, ["task_2"],
                     "pending"),
    ]
    workflow_id = await orchestrator.create_workflow("analysis_workflow", tasks)
    result = await orchestrator.execute_workflow(workflow_id)
    unsubscribe()
    assert (result["total_tasks"], result["successful_tasks"], result["failed_tasks"]) == (3, 3, 0)
    assert result["success_rate"] == 1.0 and result["makespan"] > 0
    assert result["task_results"]["task_2"]["agent_id"] == "agent_2"
    assert result["task_results"]["task_3"]["status"] == "completed"
    workflow = orchestrator.workflows[workflow_id]
    assert workflow["status"] == "completed"
    assert sorted(workflow["completed_tasks"]) == ["task_1", "task_2", "task_3"]
    assert workflow["failed_tasks"] == []
    assert analyst.performance_metrics["tasks_completed"] == 2
    assert {type(e).__name__ for e in events} >= {"TaskStarted", "TaskCompleted", "RunFinished"}
    orchestrator.close()


async def test_integration_orchestration_as_in_the_document(tmp_path):
    server = ScriptedServer().start()
    orchestrator = IntegrationOrchestrator(dead_letter_store=tmp_path / "dead.sqlite")
    try:
        crm = server.on("/customers/7")  # answers {"ok": true, "path": ...}
        # IntegrationEndpoint(endpoint_id, name, endpoint_type, connection_config,
        #                     capabilities, status)
        source = IntegrationEndpoint(
            "crm_api", "CRM API", "api", {"url": server.url("/customers/{customer_id}"),
                                          "into": "customer"}, ["read"], "active",
        )
        target = IntegrationEndpoint(
            "warehouse", "Data warehouse", "database",
            {"url": f"sqlite:///{tmp_path / 'warehouse.sqlite'}", "table": "orders",
             "create_table": True},
            ["write"], "active",
        )
        orchestrator.register_endpoint(source)
        orchestrator.register_endpoint(target)
        # DataTransformation(transformation_id, name, input_schema, output_schema,
        #                    transformation_function)
        enrich = DataTransformation(
            "enrich", "Enrich order",
            {"type": "object", "required": ["customer_id", "amount"]},
            {"type": "object", "required": ["customer_id", "total"]},
            lambda data: {"customer_id": data["customer_id"], "total": data["amount"] * 1.19,
                          "source": data["customer"]["path"]},
        )
        orchestrator.register_transformation(enrich)
        # IntegrationFlow(flow_id, name, source_endpoints, target_endpoints, transformations,
        #                 routing_rules, error_handling)
        flow = IntegrationFlow(
            "order_flow", "Orders to the warehouse", ["crm_api"], ["warehouse"], ["enrich"],
            {}, {"retry": {"max_attempts": 2}},
        )
        orchestrator.create_flow(flow)
        result = await orchestrator.execute_flow("order_flow", {"customer_id": 7, "amount": 100})
        assert result["flow_id"] == "order_flow" and result["status"] == "completed", result
        assert result["processed_data"]["total"] == pytest.approx(119.0)
        assert crm == server.url("/customers/7") and len(server.to("/customers/7")) == 1
        with sqlite3.connect(tmp_path / "warehouse.sqlite") as conn:
            rows = conn.execute("SELECT customer_id, total, source FROM orders").fetchall()
        assert rows == [(7, pytest.approx(119.0), "/customers/7")]
    finally:
        await orchestrator.aclose()
        server.stop()


async def test_coordination_and_collaboration_as_in_the_document():
    manager = CoordinationCollaborationManager()
    seen = {}

    async def analyst(ctx):
        seen["analyst"] = ctx.shared.read().data
        await ctx.update(lambda d: {**d, "analysed": d["dataset"].upper()})
        return "analysed"

    def reviewer(ctx):
        seen["reviewer"] = ctx.shared.read().data
        return f"reviewed {ctx.shared['analysed']}"

    manager.register_participant("analyst", analyst)
    manager.register_participant("reviewer", reviewer)
    # CoordinationSession(session_id, participants, coordination_type, status, created_at,
    #                     shared_state, tasks)
    session = CoordinationSession(
        "s0", ["analyst", "reviewer"], CoordinationType.SEQUENTIAL, "active", time.time(), {}, {}
    )
    assert session.shared_state.version == 0 and session.tasks == {}
    session_id = await manager.create_coordination_session(
        ["analyst", "reviewer"], CoordinationType.SEQUENTIAL
    )
    # CollaborationTask(task_id, description, assigned_to, dependencies, shared_data, status)
    first = CollaborationTask(
        "task_1", "Analyse the data set", ["analyst"], [], {"dataset": "sales-q3"}, "pending"
    )
    second = CollaborationTask(
        task_id="task_2", description="Review the analysis", assigned_to=["reviewer"],
        dependencies=["task_1"], shared_data={"reviewed_by": "reviewer"}, status="pending",
    )
    assert await manager.add_collaboration_task(session_id, first) == "task_1"
    assert await manager.add_collaboration_task(session_id, second) == "task_2"
    result = await manager.run_session(session_id)
    assert result["status"] == "completed" and result["completed_tasks"] == 2
    assert seen["analyst"] == {"dataset": "sales-q3"}  # merged as the task started
    assert seen["reviewer"] == {"dataset": "sales-q3", "analysed": "SALES-Q3",
                                "reviewed_by": "reviewer"}
    assert result["task_results"]["task_2"]["results"] == {"reviewer": "reviewed SALES-Q3"}
    state = manager.sessions[session_id].shared_state
    writers = [h["participant"] for h in state.history()]
    assert writers == ["task:task_1", "analyst", "task:task_2"]

    # a conflict, resolved as the document does
    snap = state.read()
    state.write("analyst", {"analysed": "A"}, base_version=snap.version)
    clash = state.write("reviewer", {"analysed": "B"}, base_version=snap.version)
    assert clash.status == "conflict"
    assert await manager.resolve_conflict(clash.conflict.conflict_id, "incoming") is True
    assert state["analysed"] == "B"

    # a shared resource, acquired and released by name
    assert await manager.manage_shared_resource("printer", "analyst", "acquire") is True
    assert await manager.manage_shared_resource("printer", "reviewer", "acquire") is False
    assert await manager.manage_shared_resource("printer", "analyst", "release") is True
    assert await manager.manage_shared_resource("printer", "reviewer", "acquire") is True
    assert await manager.manage_shared_resource("printer", "reviewer", "release") is True

    # background coordination picks up tasks added later
    picked_up = asyncio.Event()

    async def archivist(ctx):
        picked_up.set()
        return ctx.shared["dataset"]

    manager.register_participant("archivist", archivist)
    await manager.start_coordination()
    later = await manager.create_coordination_session(["archivist"], CoordinationType.PARALLEL)
    await manager.add_collaboration_task(
        later, CollaborationTask("task_3", "Archive", ["archivist"], [], {"dataset": "q4"})
    )
    await asyncio.wait_for(picked_up.wait(), 30)
    await manager.stop()  # lets the running session finish
    assert manager.sessions[later].tasks["task_3"].status == "completed"
    manager.close()


async def test_optimisation_and_metrics_as_in_the_document():
    orchestrator = CollectiveAgentWorkflowOrchestrator(progress=False)
    handler = wfkit.simulated_handler(time_scale=0.001)
    for i, speed in enumerate((1.0, 0.5)):
        orchestrator.register_agent(
            AgentProfile(f"agent_{i}", f"Agent {i}", ["analysis"], {"speed": speed}, True, 0,
                         handler=handler)
        )
    metrics = AdvancedWorkflowMetrics().attach(orchestrator)
    tasks = [WorkflowTask(f"t{i}", f"step {i}", ["analysis"], i, 2.0 + i,
                          [f"t{i - 1}"] if i else [], "pending") for i in range(4)]
    await orchestrator.create_workflow("wf", tasks)
    for _ in range(2):
        assert (await orchestrator.execute_workflow("wf"))["successful_tasks"] == 4

    # AdvancedWorkflowMetrics: the document's three calls
    metrics.record_workflow_execution("manual_wf", 12.5, True, 3)
    metrics.record_workflow_execution("manual_wf", 7.5, False, 2)
    metrics.record_integration_flow("order_flow", 2, 1, True)
    summary = metrics.get_workflow_summary()
    assert summary["manual_wf"]["total_executions"] == 2
    assert summary["manual_wf"]["success_rate"] == 0.5
    assert summary["manual_wf"]["average_duration"] == 10.0
    assert summary["manual_wf"]["average_participants"] == 2.5
    assert summary["wf"]["total_executions"] == 2 and summary["wf"]["success_rate"] == 1.0
    assert metrics.get_integration_summary()["order_flow"]["total_executions"] == 1

    # OptimizationMetric(metric_name, value, weight, target_value) and WorkflowOptimizer
    optimizer = WorkflowOptimizer(orchestrator, metrics)
    optimizer.add_optimization_metric(OptimizationMetric("execution_time", 10.0, 0.7, 5.0))
    optimizer.add_optimization_metric(OptimizationMetric("success_rate", 0.9, 0.3, 1.0))
    result = await optimizer.optimize_workflow("wf", ["reduce_execution_time"])
    assert {"current_metrics", "optimization_suggestions", "optimized_workflow"} <= set(result)
    assert result["current_metrics"]["execution_time"] > 0
    for suggestion in result["optimization_suggestions"]:
        assert "expected_improvement" in suggestion
    orchestrator.close()
