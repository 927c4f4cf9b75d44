"""Where a task failed, in the user's terms: the innermost frame of the user's own code.

A task's traceback runs through the engine, an executor, a thread or a worker process and often
ends inside a library (pandas raises the ``KeyError`` of ``df["revenu"]``). What the user needs
is the line *they* wrote: :func:`user_frame` walks the traceback from the innermost frame out
and returns the first one that is neither wfkit, the standard library nor an installed package.
It reads a live exception or the text of a traceback (as stored in a run store, or sent back by
a worker process), so every view shows the same line: the run result's repr, the dashboard's
events, ``wfkit run`` and :class:`~wfkit.errors.WorkflowFailedError`.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass

__all__ = ["UserFrame", "user_frame", "format_traceback", "is_library_file", "notebook_cell"]

_WFKIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIBRARY_DIRS = tuple(
    {
        os.path.abspath(p) + os.sep
        for key in ("stdlib", "platstdlib")
        if (p := sysconfig.get_paths().get(key))
    }
)
# A frame of a traceback's text: File "path", line 12, in name  (then, usually, the code line)
_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>.+)$')


@dataclass(frozen=True, slots=True)
class UserFrame:
    """One frame of the user's code: ``file:line`` in ``name``, and the code on that line."""

    filename: str
    lineno: int
    name: str
    line: str

    @property
    def location(self) -> str:
        """``"path/to/file.py:12"``, or ``"Cell In[3], line 12"`` for a notebook cell (as
        IPython names it: a cell's file is a temporary name the user never sees)."""
        cell = notebook_cell(self.filename)
        if cell is not None:
            return f"Cell In[{cell}], line {self.lineno}"
        return f"{self.filename}:{self.lineno}"

    def __str__(self) -> str:
        """One line: ``path/to/file.py:12 in clean: df["revenu"].sum()``."""
        code = f": {self.line}" if self.line else ""
        return f"{self.location} in {self.name}{code}"


def notebook_cell(filename: str) -> int | None:
    """The execution count of the IPython cell compiled as ``filename``, or None."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    cells = getattr(getattr(shell, "compile", None), "_filename_map", None)
    return cells.get(filename) if isinstance(cells, dict) else None


def is_library_file(filename: str) -> bool:
    """True for code that is not the user's: wfkit, the standard library, installed packages,
    frozen and generated modules."""
    if not filename or filename.startswith("<frozen") or filename.startswith("<string"):
        return True
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    if path.startswith(_WFKIT_DIR):
        return True
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return path.startswith(_LIBRARY_DIRS)


def _from_summary(frames: list[traceback.FrameSummary]) -> UserFrame | None:
    for fs in reversed(frames):
        if not is_library_file(fs.filename):
            return UserFrame(fs.filename, fs.lineno or 0, fs.name, (fs.line or "").strip())
    return None


def _from_text(text: str) -> UserFrame | None:
    lines = text.splitlines()
    found: UserFrame | None = None
    for i, raw in enumerate(lines):
        m = _FRAME_RE.match(raw)
        if m is None or is_library_file(m["file"]):
            continue
        code = ""
        # the code line is indented under its frame line; a frame without source (a REPL, a
        # deleted file) is followed by the next frame or the exception's own line instead
        depth = len(raw) - len(raw.lstrip())
        if i + 1 < len(lines) and not _FRAME_RE.match(lines[i + 1]):
            after = lines[i + 1]
            nxt = after.strip()
            if (nxt and len(after) - len(after.lstrip()) > depth
                    and not set(nxt) <= set("^~ ")):
                code = nxt
        found = UserFrame(m["file"], int(m["line"]), m["name"].strip(), code)
    return found  # the last user frame in the text is the innermost


def user_frame(error: BaseException | str | None) -> UserFrame | None:
    """The innermost frame of the user's code in ``error`` (an exception, or a traceback's
    text), or None when the failure never reached user code (a timeout, a lost worker).

    For an exception whose own traceback holds no user frame, its causes are read too: a worker
    process sends its traceback back as the text of the exception's ``__cause__``.
    """
    if error is None:
        return None
    if isinstance(error, str):
        return _from_text(error)
    seen: set[int] = set()
    exc: BaseException | None = error
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frame = _from_summary(traceback.extract_tb(exc.__traceback__))
        if frame is not None:
            return frame
        if type(exc).__name__ == "_RemoteTraceback":  # concurrent.futures' worker traceback
            frame = _from_text(str(exc))
            if frame is not None:
                return frame
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def format_traceback(exc: BaseException) -> str:
    """The full traceback of ``exc`` (with its causes) as one string, as Python prints it."""
    return "".join(traceback.format_exception(exc))
