"""Simulation and optimisation: what-if schedules, static plans (list, HEFT, exact) and the
optimiser whose suggestions are proven by simulation."""

from typing import TYPE_CHECKING

from wfkit._lazy import lazy_exports
from wfkit.optimization.schedule import Schedule
from wfkit.optimization.simulator import simulate

if TYPE_CHECKING:  # what the lazy exports below are, for type checkers and editors
    from wfkit.optimization.experiments import experiment as experiment
    from wfkit.optimization.optimizer import (
        OptimizationMetric as OptimizationMetric,
    )
    from wfkit.optimization.optimizer import (
        WorkflowOptimizer as WorkflowOptimizer,
    )
    from wfkit.optimization.planning import plan_schedule as plan_schedule
    from wfkit.optimization.policies import Heft as Heft


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
