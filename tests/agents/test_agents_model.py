"""Model validation: wrong input fails at creation with an error that says what to fix."""

import pytest

import wfkit
from wfkit import (
    AgentCapability,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    CycleError,
    DuplicateTaskError,
    MissingCapabilityError,
    UnknownDependencyError,
    UnknownPolicyError,
    UnknownWorkflowError,
    ValidationError,
    WfkitError,
    WorkflowTask,
)


def task(tid, deps=None, caps=("analysis",), **kw):
    return WorkflowTask(tid, f"do {tid}", list(caps), 1, 1.0, deps, **kw)


async def noop(ctx):
    return ctx.task.task_id


def test_capability_enum_equals_plain_strings():
    assert AgentCapability.ANALYSIS == "analysis"
    assert "analysis" in {AgentCapability.ANALYSIS}
    agent = AgentProfile("a", "A", [AgentCapability.ANALYSIS, "custom"])
    assert agent.capability_set == {"analysis", "custom"}
    assert task("t", caps=["analysis"]).capability_set <= agent.capability_set


def test_document_field_order_is_kept():
    agent = AgentProfile("a1", "Agent", ["analysis"], {"accuracy": 0.9}, True, 0)
    assert agent.performance_metrics["accuracy"] == 0.9
    assert agent.performance_metrics["tasks_completed"] == 0
    t = WorkflowTask("t1", "desc", ["analysis"], 2, 3.5, ["t0"], "pending")
    assert (t.priority, t.estimated_duration, t.dependencies, t.status) == (2, 3.5, ["t0"], "pending")


def test_errors_form_one_tree():
    for name in wfkit.errors.__all__:
        assert issubclass(getattr(wfkit, name), WfkitError)
    assert issubclass(ValidationError, ValueError)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"capacity": 0}, "capacity must be at least 1"),
        ({"capacity": 1.5}, "capacity must be an int"),
        ({"handler": "not callable"}, "handler must be callable"),
    ],
)
def test_bad_agent_fields(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        AgentProfile("a", "A", ["analysis"], **kwargs)


def test_bad_agent_capabilities():
    with pytest.raises(ValidationError, match="capabilities must be non-empty strings"):
        AgentProfile("a", "A", ["analysis", 3])
    with pytest.raises(ValidationError, match="agent_id must be a non-empty string"):
        AgentProfile("", "A", [])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("t", "d", ["x"], 1, -1.0), {}, "estimated_duration must be >= 0"),
        (("t", "d", ["x"], "high", 1.0), {}, "priority must be a number"),
        (("t", "d", ["x"], 1, 1.0, "a"), {}, "dependencies must be a list of task ids"),
        (("t", "d", ["x"], 1, 1.0, [1]), {}, r"dependencies must be task ids \(strings\)"),
        (("t", "d", ["x"], 1, 1.0), {"retries": -1}, "retries must be an int >= 0"),
        (("t", "d", ["x"], 1, 1.0), {"timeout": 0}, "timeout must be > 0"),
        (("t", "d", ["x"], 1, 1.0), {"action": 42}, "action must be callable"),
        ((3, "d", ["x"], 1, 1.0), {}, "task_id must be a non-empty string"),
        (("", "d", ["x"], 1, 1.0), {}, "task_id must be a non-empty string"),
        (("t", 5, ["x"], 1, 1.0), {}, "description must be a string"),
        (("t", "d", ["x"], float("nan"), 1.0), {}, "priority must be a number"),
        (("t", "d", ["x"], True, 1.0), {}, "priority must be a number"),
        (("t", "d", ["x"], 1, float("nan")), {}, "estimated_duration must be a number"),
        (("t", "d", ["x"], 1, 1.0, ["a", 2]), {}, r"dependencies must be task ids \(strings\)"),
        (("t", "d", ["x"], 1, 1.0, [["a"], "b"]), {}, r"dependencies must be task ids \(strings\)"),
        (("t", "d", ["x"], 1, 1.0, ["a", {"b"}]), {}, r"dependencies must be task ids \(strings\)"),
        (("t", "d", ["x"], 1, 1.0), {"retries": True}, "retries must be an int >= 0"),
        (("t", "d", ["x"], 1, 1.0), {"trigger": "sometimes"}, "trigger must be one of"),
        (("t", "d", ["x", ""], 1, 1.0), {}, "capabilities must be non-empty strings"),
    ],
)
def test_bad_task_fields(args, kwargs, match):
    WorkflowTask("ok", "d", ["x"], 1, 1.0)  # the same capabilities, seen before: checked alike
    with pytest.raises(ValidationError, match=match):
        WorkflowTask(*args, **kwargs)


def test_tasks_normalise_their_fields_and_share_capability_sets():
    a = WorkflowTask("a", "d", ["x", AgentCapability.ANALYSIS], 1, 1.0, ["p", "q", "p"])
    b = WorkflowTask("b", "d", ["x", "analysis"], 2.5, 0, ("q",))
    c = WorkflowTask("c", "d", ["x", "analysis"], 0, 1.0)
    assert a.dependencies == ["p", "q"] and b.dependencies == ["q"] and c.dependencies == []
    assert a.capability_set == frozenset({"x", "analysis"})
    assert b.capability_set is c.capability_set  # one frozenset for the tasks that need it
    assert all(type(x) is str for x in a.capability_set)
    deps = ["p"]
    d = WorkflowTask("d", "d", ["x"], 0, 1.0, deps)
    deps.append("later")
    assert d.dependencies == ["p"]  # a copy: the caller's list is the caller's
    many = ["p", "q", "p", "r"]
    e = WorkflowTask("e", "d", ["x"], 0, 1.0, many)
    many.append("later")
    assert e.dependencies == ["p", "q", "r"] and many[-1] == "later"
    assert WorkflowTask("f", "d", ["x"], 0, 1.0, []).dependencies == []
    distinct = ["p", "q", "r"]  # no repeats: still the task's own list, in the given order
    g = WorkflowTask("g", "d", ["x"], 0, 1.0, distinct)
    distinct.append("later")
    assert g.dependencies == ["p", "q", "r"] and g.dependencies is not distinct
    assert WorkflowTask("h", "d", ["x"], 0, 1.0, ["q", "p", "q"]).dependencies == ["q", "p"]


async def test_duplicate_ids_are_rejected_at_creation():
    orch = CollectiveAgentWorkflowOrchestrator()
    with pytest.raises(DuplicateTaskError, match="'a' is used more than once") as info:
        await orch.create_workflow("w", [task("a"), task("a")])
    assert info.value.task_id == "a"
    assert "w" not in orch.workflows


async def test_unknown_dependencies_are_named():
    orch = CollectiveAgentWorkflowOrchestrator()
    with pytest.raises(UnknownDependencyError, match="unknown task\\(s\\) 'ghost', 'nope'") as info:
        await orch.create_workflow("w", [task("a"), task("b", ["a", "nope", "ghost"])])
    assert info.value.missing == ["ghost", "nope"]
    assert info.value.task_id == "b"


async def test_cycles_carry_their_members():
    orch = CollectiveAgentWorkflowOrchestrator()
    tasks = [task("start"), task("a", ["start", "c"]), task("b", ["a"]), task("c", ["b"])]
    with pytest.raises(CycleError, match="cycle: ") as info:
        await orch.create_workflow("w", tasks)
    assert sorted(info.value.cycle) == ["a", "b", "c"]
    for member in "abc":
        assert f"{member} -> " in str(info.value)


async def test_wrong_types_in_a_workflow():
    orch = CollectiveAgentWorkflowOrchestrator()
    with pytest.raises(ValidationError, match="list of WorkflowTask objects, got dict"):
        await orch.create_workflow("w", [{"task_id": "a"}])
    with pytest.raises(ValidationError, match="takes an AgentProfile"):
        orch.register_agent({"agent_id": "a"})


async def test_missing_capabilities_fail_before_anything_starts():
    started = []

    async def handler(ctx):
        started.append(ctx.task.task_id)

    orch = CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(AgentProfile("a", "A", ["analysis"], handler=handler))
    orch.register_agent(
        AgentProfile("off", "Off", ["validation"], availability=False, handler=handler)
    )
    events = []
    orch.subscribe(events.append)
    await orch.create_workflow(
        "w",
        [
            task("ok"),
            task("check", ["ok"], caps=["validation"]),
            task("plan", caps=["optimization", "analysis"]),
        ],
    )
    with pytest.raises(MissingCapabilityError) as info:
        await orch.execute_workflow("w")
    assert info.value.missing == {"check": ["validation"], "plan": ["optimization"]}
    assert "'check' needs validation" in str(info.value)
    assert "'plan' needs optimization" in str(info.value)
    assert started == []
    assert [type(e).__name__ for e in events] == ["WorkflowCreated"]  # no run started


async def test_tasks_without_work_are_reported():
    orch = CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(AgentProfile("a", "A", ["analysis"]))
    await orch.create_workflow("w", [task("t")])
    with pytest.raises(ValidationError, match="no action and some capable agents have no handler"):
        await orch.execute_workflow("w")


def test_unknown_policy_lists_the_valid_names():
    with pytest.raises(UnknownPolicyError, match="'fastest', 'heft', 'least_loaded', 'round_robin'"):
        CollectiveAgentWorkflowOrchestrator(policy="quickest")


async def test_unknown_policy_at_execute_time():
    orch = CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(AgentProfile("a", "A", ["analysis"], handler=noop))
    await orch.create_workflow("w", [task("t")])
    with pytest.raises(UnknownPolicyError, match="unknown policy 'random'"):
        await orch.execute_workflow("w", policy="random")


async def test_unknown_workflow():
    orch = CollectiveAgentWorkflowOrchestrator()
    with pytest.raises(UnknownWorkflowError, match="call create_workflow\\('nope', tasks\\) first"):
        await orch.execute_workflow("nope")


def test_an_agent_registered_again_replaces_the_idle_one():
    orch = CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(AgentProfile("a", "A", ["analysis"]))
    other = orch.register_agent(AgentProfile("a", "Other", ["analysis"]))
    assert orch.agents == {"a": other}
