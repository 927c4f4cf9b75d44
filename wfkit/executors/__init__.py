"""Executors: how a task's sync work is run (threads, processes, a Dask cluster)."""

from wfkit.executors.base import Executor
from wfkit.executors.local import ThreadExecutor

__all__ = ["Executor", "ThreadExecutor"]
