"""Simulation and optimisation: what-if schedules, static plans (list, HEFT, exact) and the
optimiser whose suggestions are proven by simulation."""

from wfkit.optimization.schedule import Schedule
from wfkit.optimization.simulator import simulate

__all__ = ["Schedule", "simulate", "plan_schedule", "experiment", "WorkflowOptimizer",
           "OptimizationMetric"]


def __getattr__(name: str):  # the heavier parts load on first use
    if name == "plan_schedule":
        from wfkit.optimization.planning import plan_schedule

        return plan_schedule
    if name == "experiment":
        from wfkit.optimization.experiments import experiment

        return experiment
    if name in ("WorkflowOptimizer", "OptimizationMetric"):
        from wfkit.optimization import optimizer

        return getattr(optimizer, name)
    raise AttributeError(f"module 'wfkit.optimization' has no attribute {name!r}")
