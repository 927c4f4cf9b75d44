"""The package is typed (``py.typed``): what users import has real types, not ``Any``.

The facades export their heavier names lazily (``__getattr__``); a block under
``if TYPE_CHECKING`` tells type checkers and editors what each of them is. These tests keep
that block and the lazy table in step, and check with mypy what a user's script sees.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import wfkit

FACADES = ["wfkit", "wfkit.optimization", "wfkit.integration", "wfkit.executors"]


def _type_checking_names(module: str) -> set[str]:
    tree = ast.parse(Path(importlib.import_module(module).__file__ or "").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update(a.asname or a.name for a in stmt.names)
    return names


@pytest.mark.parametrize("module", FACADES)
def test_every_lazy_export_is_declared_for_type_checkers(module):
    facade = importlib.import_module(module)
    assert _type_checking_names(module) == set(facade._LAZY)
    assert set(facade._LAZY) <= set(facade.__all__)


def test_the_package_says_it_is_typed():
    assert (Path(wfkit.__file__).parent / "py.typed").is_file()


USER_SCRIPT = """
import wfkit
from wfkit import RunStore, Schedule, Workflow, simulate, plan_schedule

wf = Workflow("w")

@wf.task(requires=["analysis"])
def load(ctx: wfkit.TaskContext) -> int:
    return 1

reveal_type(load)
reveal_type(RunStore("runs.db"))
reveal_type(simulate(wf.tasks, []))
reveal_type(wfkit.CollectiveAgentWorkflowOrchestrator().execute_workflow)
reveal_type(wfkit.IntegrationOrchestrator)
reveal_type(wfkit.DaskExecutor)
"""


@pytest.mark.slow  # runs mypy over the package
def test_a_users_script_sees_the_public_types(tmp_path):
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
         "--follow-imports=silent", str(script)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    revealed = [line.split('Revealed type is "', 1)[1].rstrip('"')
                for line in done.stdout.splitlines() if "Revealed type is" in line]
    assert len(revealed) == 6, done.stdout + done.stderr
    assert revealed[0] == "wfkit.agents.model.WorkflowTask"
    assert revealed[1] == "wfkit.metrics.store.RunStore"
    assert revealed[2] == "wfkit.optimization.schedule.Schedule"
    assert "(workflow_id: wfkit.agents.builder.Workflow | str," in revealed[3]
    assert revealed[3].endswith("wfkit.agents.results.RunResult]")
    assert "IntegrationOrchestrator" in revealed[4] and "DaskExecutor" in revealed[5]
    assert ": error:" not in done.stdout, done.stdout
