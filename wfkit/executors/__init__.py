"""Executors: how a task's sync work is run (threads, processes, a Dask cluster).

``ProcessExecutor`` and ``DaskExecutor`` load on first use, so importing wfkit never imports
``multiprocessing`` machinery or Dask.
"""


from typing import TYPE_CHECKING

from wfkit._lazy import lazy_exports
from wfkit.executors.base import Executor
from wfkit.executors.local import ThreadExecutor

if TYPE_CHECKING:  # what the lazy exports below are, for type checkers and editors
    from wfkit.executors.dask import DaskExecutor as DaskExecutor
    from wfkit.executors.process import ProcessExecutor as ProcessExecutor


__all__ = ["Executor", "ThreadExecutor", "ProcessExecutor", "DaskExecutor"]

_LAZY = {
    "ProcessExecutor": "wfkit.executors.process",
    "DaskExecutor": "wfkit.executors.dask",
}


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
