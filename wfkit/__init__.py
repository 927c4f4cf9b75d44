"""wfkit: orchestrate workflows from Jupyter.

The public facade: re-exports and ``__all__`` only. Layers that pull in pandas, Plotly,
ipywidgets, SQLAlchemy or Dask load on first use, so ``import wfkit`` stays fast.
"""

from typing import TYPE_CHECKING

from wfkit._lazy import lazy_exports
from wfkit.agents import (
    AgentCapability,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    Policy,
    RunResult,
    TaskContext,
    Workflow,
    WorkflowTask,
    simulated_handler,
)
from wfkit.errors import *  # noqa: F403
from wfkit.errors import __all__ as _errors
from wfkit.events import EventBus
from wfkit.executors import Executor, ThreadExecutor
from wfkit.runsync import run_sync

if TYPE_CHECKING:  # what the lazy exports below are, for type checkers and editors
    from wfkit import plots as plots
    from wfkit.coordination.manager import (
        CoordinationCollaborationManager as CoordinationCollaborationManager,
    )
    from wfkit.coordination.model import (
        CollaborationTask as CollaborationTask,
    )
    from wfkit.coordination.model import (
        CoordinationSession as CoordinationSession,
    )
    from wfkit.coordination.model import (
        CoordinationType as CoordinationType,
    )
    from wfkit.executors.dask import DaskExecutor as DaskExecutor
    from wfkit.executors.process import ProcessExecutor as ProcessExecutor
    from wfkit.integration.model import (
        DataTransformation as DataTransformation,
    )
    from wfkit.integration.model import (
        IntegrationEndpoint as IntegrationEndpoint,
    )
    from wfkit.integration.model import (
        IntegrationFlow as IntegrationFlow,
    )
    from wfkit.integration.orchestrator import IntegrationOrchestrator as IntegrationOrchestrator
    from wfkit.jupyter.dashboard import Dashboard as Dashboard
    from wfkit.metrics.recorder import AdvancedWorkflowMetrics as AdvancedWorkflowMetrics
    from wfkit.metrics.store import RunStore as RunStore
    from wfkit.optimization.experiments import experiment as experiment
    from wfkit.optimization.optimizer import (
        OptimizationMetric as OptimizationMetric,
    )
    from wfkit.optimization.optimizer import (
        WorkflowOptimizer as WorkflowOptimizer,
    )
    from wfkit.optimization.planning import plan_schedule as plan_schedule
    from wfkit.optimization.schedule import Schedule as Schedule
    from wfkit.optimization.simulator import simulate as simulate
    from wfkit.wfformat import (
        load_wfformat as load_wfformat,
    )
    from wfkit.wfformat import (
        wfformat_agents as wfformat_agents,
    )
    from wfkit.wfformat import (
        wfformat_durations as wfformat_durations,
    )


__version__ = "0.1.0"

_LAZY = {
    "AdvancedWorkflowMetrics": "wfkit.metrics.recorder",
    "RunStore": "wfkit.metrics.store",
    "Dashboard": "wfkit.jupyter.dashboard",
    "IntegrationEndpoint": "wfkit.integration.model",
    "DataTransformation": "wfkit.integration.model",
    "IntegrationFlow": "wfkit.integration.model",
    "IntegrationOrchestrator": "wfkit.integration.orchestrator",
    "CoordinationType": "wfkit.coordination.model",
    "CoordinationSession": "wfkit.coordination.model",
    "CollaborationTask": "wfkit.coordination.model",
    "CoordinationCollaborationManager": "wfkit.coordination.manager",
    "OptimizationMetric": "wfkit.optimization.optimizer",
    "WorkflowOptimizer": "wfkit.optimization.optimizer",
    "Schedule": "wfkit.optimization.schedule",
    "simulate": "wfkit.optimization.simulator",
    "plan_schedule": "wfkit.optimization.planning",
    "experiment": "wfkit.optimization.experiments",
    "load_wfformat": "wfkit.wfformat",
    "wfformat_durations": "wfkit.wfformat",
    "wfformat_agents": "wfkit.wfformat",
    "ProcessExecutor": "wfkit.executors.process",
    "DaskExecutor": "wfkit.executors.dask",
    "plots": "wfkit.plots",
}

__all__ = [
    "__version__",
    "AgentCapability",
    "AgentProfile",
    "WorkflowTask",
    "TaskContext",
    "Workflow",
    "CollectiveAgentWorkflowOrchestrator",
    "Policy",
    "RunResult",
    "simulated_handler",
    "run_sync",
    "EventBus",
    "Executor",
    "ThreadExecutor",
    "events",  # noqa: F405  (submodules that the imports above load)
    "graph",  # noqa: F405
    *_errors,
    *_LAZY,
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
