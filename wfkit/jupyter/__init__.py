"""The Jupyter layer: progress bars, the live dashboard and rich reprs.

It sits above the engines and is imported only when a view is asked for (a repr, a bar, a
:class:`wfkit.Dashboard`). ``run_sync`` works in scripts as well as in notebook cells: it lives
in :mod:`wfkit.runsync` and is re-exported here.
"""

from wfkit.runsync import run_sync

__all__ = ["run_sync"]
