"""Simulation and optimisation: what-if schedules, static plans (list, HEFT, exact) and the
optimiser whose suggestions are proven by simulation."""

from wfkit._lazy import lazy_exports
from wfkit.optimization.schedule import Schedule
from wfkit.optimization.simulator import simulate

__all__ = ["Schedule", "simulate", "plan_schedule", "experiment", "WorkflowOptimizer",
           "OptimizationMetric", "Heft"]


_LAZY = {  # the heavier parts load on first use
    "plan_schedule": "wfkit.optimization.planning",
    "experiment": "wfkit.optimization.experiments",
    "WorkflowOptimizer": "wfkit.optimization.optimizer",
    "OptimizationMetric": "wfkit.optimization.optimizer",
    "Heft": "wfkit.optimization.policies",
}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
