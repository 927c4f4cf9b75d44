"""Jupyter helpers: run_sync, progress bars, the live dashboard and rich reprs."""

from wfkit.jupyter.runsync import run_sync

__all__ = ["run_sync"]
