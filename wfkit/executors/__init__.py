"""Executors: how a task's sync work is run (threads, processes, a Dask cluster).

``ProcessExecutor`` and ``DaskExecutor`` load on first use, so importing wfkit never imports
``multiprocessing`` machinery or Dask.
"""

from importlib import import_module
from typing import Any

from wfkit.executors.base import Executor
from wfkit.executors.local import ThreadExecutor

__all__ = ["Executor", "ThreadExecutor", "ProcessExecutor", "DaskExecutor"]

_LAZY = {
    "ProcessExecutor": "wfkit.executors.process",
    "DaskExecutor": "wfkit.executors.dask",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wfkit.executors' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
