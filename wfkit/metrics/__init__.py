"""Metrics: an event recorder with pandas frames, and the durable SQLite run store.

Neither module imports pandas until a frame is asked for.
"""

from wfkit.metrics.recorder import AdvancedWorkflowMetrics
from wfkit.metrics.store import ResultNotStoredWarning, RunStore

__all__ = ["AdvancedWorkflowMetrics", "RunStore", "ResultNotStoredWarning"]
