"""Normalising what users pass as "the tasks" and "the agents", and private agent copies.

What-if questions must never change the user's objects: the simulator and the planners work on
copies of the agents (their load, metrics and learned durations are the copy's own).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import ValidationError
from wfkit.graph import TaskGraph, check_tasks

if TYPE_CHECKING:
    from wfkit.agents.orchestrator import CollectiveAgentWorkflowOrchestrator

__all__ = ["task_map", "task_graph", "agent_list", "copy_agent", "TasksLike", "AgentsLike"]

# "The tasks": a list of WorkflowTask, a {task_id: task} mapping, or a Workflow (iterable).
TasksLike = Iterable[WorkflowTask] | Mapping[str, WorkflowTask]
# "The agents": a list of AgentProfile, an {agent_id: profile} mapping, or an orchestrator.
AgentsLike: TypeAlias = (
    "Iterable[AgentProfile] | Mapping[str, AgentProfile] | CollectiveAgentWorkflowOrchestrator"
)


def task_map(tasks: TasksLike) -> dict[str, WorkflowTask]:
    """Tasks by id from a list of WorkflowTask, a {task_id: task} mapping or a ``Workflow``.

    Checks types, duplicate ids and unknown dependencies; cycles are reported (CycleError) by
    the topological sort every scheduler starts with.
    """
    return check_tasks(_task_list(tasks))


def task_graph(tasks: TasksLike) -> TaskGraph:
    """What :func:`task_map` accepts, checked as a whole (cycles too) and compiled."""
    return TaskGraph(_task_list(tasks))


def _task_list(tasks: Any) -> Any:
    if hasattr(tasks, "tasks") and not isinstance(tasks, Mapping | list | tuple):
        tasks = tasks.tasks  # a Workflow
    if isinstance(tasks, WorkflowTask) or not isinstance(tasks, Iterable):
        raise ValidationError(
            f"tasks must be a list of WorkflowTask objects (or a Workflow), got "
            f"{type(tasks).__name__}"
        )
    return tasks


def agent_list(agents: AgentsLike) -> list[AgentProfile]:
    """Agents from a list, an ``{agent_id: profile}`` mapping or an orchestrator."""
    if hasattr(agents, "register_agent") and hasattr(agents, "agents"):
        agents = agents.agents
    if isinstance(agents, Mapping):
        agents = list(agents.values())
    if isinstance(agents, AgentProfile) or not isinstance(agents, Iterable):
        raise ValidationError(
            f"agents must be a list of AgentProfile objects, got {type(agents).__name__}"
        )
    out: list[AgentProfile] = []
    seen: set[str] = set()
    for agent in agents:
        if not isinstance(agent, AgentProfile):
            raise ValidationError(
                f"agents must be AgentProfile objects, got {type(agent).__name__}: {agent!r}"
            )
        if agent.agent_id in seen:
            raise ValidationError(
                f"agent id {agent.agent_id!r} appears twice among the agents: ids must be unique"
            )
        seen.add(agent.agent_id)
        out.append(agent)
    return out


def copy_agent(agent: AgentProfile, **changes: Any) -> AgentProfile:
    """A private copy with no load and its own metrics and learned durations."""
    clone = copy.copy(agent)
    clone.current_load = 0
    clone.performance_metrics = dict(agent.performance_metrics or {})
    clone.learned_durations = dict(agent.learned_durations)
    for name, value in changes.items():
        setattr(clone, name, value)
    if "capabilities" in changes:
        clone.__post_init__()  # re-derive the capability set and re-check the fields
        clone.performance_metrics = dict(agent.performance_metrics or {})
        clone.learned_durations = dict(agent.learned_durations)
    return clone
