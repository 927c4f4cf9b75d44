"""What the store and command-line fault tests share: a real store with runs in it, the
real command in a child process, and a digest to prove a file was left unchanged."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

TASKS = '''
def load(ctx, n=3):
    return list(range(n))


def pair(ctx):
    return (1, 2)  # a tuple: stored with pickle, not JSON


def total(ctx):
    return sum(ctx.inputs["load"])
'''

SPEC = """\
workflow: w
agents: {a: {capabilities: [x], capacity: 2}}
tasks:
  load: {requires: [x], action: "faults_tasks:load"}
  total: {requires: [x], after: [load], action: "faults_tasks:total"}
"""

PICKLING_SPEC = """\
workflow: p
agents: {a: {capabilities: [x], capacity: 2}}
tasks:
  pair: {requires: [x], action: "faults_tasks:pair"}
  load: {requires: [x], action: "faults_tasks:load"}
"""


def spec_folder(folder: Path) -> Path:
    """A folder with a task module and two specs (spec.yaml, pickling.yaml)."""
    (folder / "faults_tasks.py").write_text(TASKS)
    (folder / "spec.yaml").write_text(SPEC)
    (folder / "pickling.yaml").write_text(PICKLING_SPEC)
    return folder / "spec.yaml"


def write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def wfkit(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real command, in a child process."""
    return subprocess.run([sys.executable, "-m", "wfkit", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
