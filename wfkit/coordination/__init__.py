"""Coordination and collaboration: sessions, versioned shared state, fair shared resources."""

from wfkit.coordination.manager import RESOURCE_OPERATIONS, CoordinationCollaborationManager
from wfkit.coordination.model import (
    CollaborationTask,
    CoordinationSession,
    CoordinationType,
    ParticipantContext,
)
from wfkit.coordination.resources import Grant, ResourceScope, ResourceTable
from wfkit.coordination.sessions import SessionResult
from wfkit.coordination.shared_state import (
    DELETE,
    STRATEGIES,
    Conflict,
    SharedState,
    Snapshot,
    WriteOutcome,
)

__all__ = [
    "CoordinationType",
    "CoordinationSession",
    "CollaborationTask",
    "CoordinationCollaborationManager",
    "ParticipantContext",
    "SessionResult",
    "SharedState",
    "Snapshot",
    "WriteOutcome",
    "Conflict",
    "DELETE",
    "STRATEGIES",
    "Grant",
    "ResourceScope",
    "ResourceTable",
    "RESOURCE_OPERATIONS",
]
