"""The document's shapes and every kind of bad input."""

from __future__ import annotations

import dataclasses

import pytest

import wfkit
from wfkit import (
    CollaborationTask,
    CoordinationCollaborationManager,
    CoordinationSession,
    CoordinationType,
    DuplicateTaskError,
    UnknownDependencyError,
    UnknownSessionError,
    ValidationError,
)
from wfkit.conditions import ConditionError
from wfkit.coordination import SharedState


def test_public_names_and_document_shapes():
    assert wfkit.CoordinationType is CoordinationType
    assert [m.name for m in CoordinationType] == [
        "SEQUENTIAL", "PARALLEL", "CONDITIONAL", "COLLABORATIVE",
    ]
    assert CoordinationType.PARALLEL == "parallel"
    fields = [f.name for f in dataclasses.fields(CoordinationSession)]
    assert fields[:6] == [
        "session_id", "participants", "coordination_type", "status", "created_at", "shared_state",
    ]
    fields = [f.name for f in dataclasses.fields(CollaborationTask)]
    assert fields[:6] == ["task_id", "description", "assigned_to", "dependencies", "shared_data", "status"]
    assert "condition" in fields


def test_session_built_like_the_document():
    session = CoordinationSession("s1", ["a", "b"], CoordinationType.SEQUENTIAL, "active", 0.0, {"k": 1})
    assert isinstance(session.shared_state, SharedState)
    assert session.shared_state["k"] == 1 and session.shared_state.version == 0
    assert session.status == "active" and session.conflict_strategy == "merge"
    task = CollaborationTask("t1", "write", ["a"], [], {}, "pending")
    assert task.results == {} and task.condition is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_id": ""}, "task_id must be a non-empty string"),
        ({"assigned_participants": "alice"}, "participants must be a list of names"),
        ({"assigned_participants": ["a", "a"]}, "'a' are listed more than once"),
        ({"assigned_participants": ["a", 3]}, "participant names must be non-empty strings"),
        ({"dependencies": "t0"}, "dependencies must be a list of task ids"),
        ({"dependencies": ["t"]}, "a task cannot depend on itself"),
        ({"status": "done"}, "status must be one of pending, running"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
    ],
)
def test_bad_task_fields(kwargs, message):
    base = {"task_id": "t", "description": "d"}
    with pytest.raises(ValidationError, match=message):
        CollaborationTask(**{**base, **kwargs})


def test_bad_conditions_fail_when_the_task_is_made():
    with pytest.raises(ConditionError, match="unknown op '~'"):
        CollaborationTask("t", "d", condition={"field": "shared.x", "op": "~", "value": 1})
    with pytest.raises(ConditionError, match="expected a mapping"):
        CollaborationTask("t", "d", condition="shared.x > 1")


async def test_bad_coordination_type():
    m = CoordinationCollaborationManager()
    with pytest.raises(ValidationError, match="unknown coordination type 'round_robin': use one of CoordinationType.SEQUENTIAL"):
        await m.create_coordination_session(["a"], "round_robin")
    with pytest.raises(ValidationError, match="unknown coordination type 2"):
        await m.create_coordination_session(["a"], 2)
    sid = await m.create_coordination_session(["a"], "PARALLEL")
    assert m.sessions[sid].coordination_type is CoordinationType.PARALLEL


async def test_bad_sessions_and_participants():
    m = CoordinationCollaborationManager()
    with pytest.raises(ValidationError, match="needs at least one participant"):
        await m.create_coordination_session([], "parallel")
    with pytest.raises(ValidationError, match="participants must be a list of names"):
        await m.create_coordination_session("alice", "parallel")
    sid = await m.create_coordination_session(["a", "b"], "parallel", session_id="review")
    assert sid == "review"
    with pytest.raises(ValidationError, match="a session 'review' already exists"):
        await m.create_coordination_session(["a"], "parallel", session_id="review")
    with pytest.raises(UnknownSessionError, match="no coordination session 'nope' \\(known: 'review'\\)") as info:
        await m.add_collaboration_task("nope", CollaborationTask("t", "d"))
    assert info.value.session_id == "nope" and isinstance(info.value, KeyError)
    with pytest.raises(UnknownSessionError):
        await m.run_session("nope")
    with pytest.raises(ValidationError, match="handler must be callable"):
        m.register_participant("a", "not callable")
    m.register_participant("a", print)
    m.register_participant("a", print)  # the same handler again is fine
    with pytest.raises(ValidationError, match="'a' is already registered with another handler"):
        m.register_participant("a", repr)
    assert m.unregister_participant("a") is print
    with pytest.raises(ValidationError, match="no participant 'a' is registered"):
        m.unregister_participant("a")


async def test_bad_tasks_for_a_session():
    m = CoordinationCollaborationManager()
    sid = await m.create_coordination_session(["a", "b"], "sequential")
    with pytest.raises(ValidationError, match="takes a CollaborationTask, got dict"):
        await m.add_collaboration_task(sid, {"task_id": "t"})
    with pytest.raises(ValidationError, match="assigned to 'carol', not participant\\(s\\) of session"):
        await m.add_collaboration_task(sid, CollaborationTask("t", "d", ["a", "carol"]))
    with pytest.raises(UnknownDependencyError, match="depends on 'ghost', which session 'session-1' does not have") as info:
        await m.add_collaboration_task(sid, CollaborationTask("t", "d", [], ["ghost"]))
    assert info.value.missing == ["ghost"]
    assert await m.add_collaboration_task(sid, CollaborationTask("t", "d")) == "t"
    with pytest.raises(DuplicateTaskError, match="task id 't' is used more than once"):
        await m.add_collaboration_task(sid, CollaborationTask("t", "again"))
    with pytest.raises(ValidationError, match="session 'session-1' has no task 'x' \\(tasks: 't'\\)"):
        m.task_result(sid, "x")
    assert m.task_result(sid, "t")["status"] == "pending"


async def test_manager_repr_and_context_manager():
    async with CoordinationCollaborationManager() as m:
        await m.create_coordination_session(["a"], "parallel")
        assert repr(m) == (
            "<CoordinationCollaborationManager 0 participants, 1 sessions, "
            "0 pending conflicts, 0 resources>"
        )
        await m.start_coordination()
        assert "coordinating" in repr(m)
    assert not m.coordinating
