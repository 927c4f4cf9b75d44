"""Collective agent workflows: the model, policies, the engine and the orchestrator."""

from wfkit.agents.builder import Workflow
from wfkit.agents.handlers import simulated_handler
from wfkit.agents.model import AgentCapability, AgentProfile, TaskContext, WorkflowTask
from wfkit.agents.orchestrator import CollectiveAgentWorkflowOrchestrator
from wfkit.agents.policies import POLICIES, Policy
from wfkit.agents.results import RunResult

__all__ = [
    "AgentCapability",
    "AgentProfile",
    "WorkflowTask",
    "TaskContext",
    "Workflow",
    "CollectiveAgentWorkflowOrchestrator",
    "Policy",
    "POLICIES",
    "RunResult",
    "simulated_handler",
]
