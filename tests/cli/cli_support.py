"""What the command-line tests share: a real task module, a spec that uses it, and the real
command in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TASKS = '''
import json
from pathlib import Path


def load(ctx, n=3):
    return list(range(n))


def total(ctx):
    return sum(ctx.inputs["load"])


def flaky(ctx, fail_times=1, log=None):
    if log:
        with open(log, "a") as f:
            f.write(f"{ctx.task.task_id} {ctx.attempt}\\n")
    if ctx.attempt <= fail_times:
        raise ConnectionError(f"transient failure {ctx.attempt}")
    return ctx.attempt


def boom(ctx):
    raise RuntimeError("kaput")


def analyse(ctx):
    return f"{ctx.task.task_id} by {ctx.agent.agent_id}"


NOT_CALLABLE = 42
'''

SPEC = """\
workflow: sales_report
policy: least_loaded
agents:
  analyst: {capabilities: [analysis], capacity: 2, handler: "spec_tasks:analyse"}
  writer: {capabilities: [generation]}
tasks:
  load:   {requires: [analysis], action: "spec_tasks:load", retries: 2, args: {n: 4}}
  report: {requires: [analysis], after: [load], priority: 5, timeout: 30}
  total:  {requires: [generation], after: [load], action: "spec_tasks:total"}
"""


def write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def wfkit(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real command, in a child process."""
    return subprocess.run([sys.executable, "-m", "wfkit", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
