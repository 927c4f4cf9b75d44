"""The layers only look down: the library never needs the Jupyter layer or the application
layer to import or to run, and its packages import each other without cycles.

Views (reprs, progress bars, the dashboard, figures) are looked up when one is asked for, so
a script that runs workflows pays for none of them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx

import wfkit

VIEWS = ("wfkit.jupyter", "wfkit.app", "wfkit.plots", "ipywidgets", "plotly", "IPython")

_RUN_WITHOUT_VIEWS = textwrap.dedent(
    """
    import json, sys

    VIEWS = {views!r}

    def loaded():
        return sorted(m for m in sys.modules if m.split(".")[0] in VIEWS
                      or any(m == v or m.startswith(v + ".") for v in VIEWS))

    seen = {{}}
    import wfkit
    seen["import wfkit"] = loaded()

    from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow, run_sync

    wf = Workflow("layers")

    @wf.task(requires=["x"])
    def load(ctx):
        return [1, 2, 3]

    @wf.task(requires=["x"], after=[load])
    def total(ctx):
        return sum(ctx.inputs["load"])

    @wf.task(requires=["x"], after=[load], retries=1)
    def flaky(ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.0)
    orch.register_agent(AgentProfile("a", "A", ["x"], capacity=2))
    result = run_sync(orch.execute_workflow(wf))
    assert result["status"] == "completed", result
    assert result["task_results"]["total"]["result"] == 6
    assert result["task_results"]["flaky"]["attempts"] == 2
    orch.close()
    seen["run a workflow"] = loaded()

    sim = wfkit.simulate(wf.tasks, [AgentProfile("a", "A", ["x"], capacity=2)])
    assert sim.makespan > 0
    seen["simulate it"] = loaded()
    print(json.dumps(seen))
    """
)


def test_running_workflows_imports_no_view_layer():
    code = _RUN_WITHOUT_VIEWS.format(views=VIEWS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"import wfkit": [], "run a workflow": [], "simulate it": []}


# -- the import graph, read from the source ------------------------------------------------

PACKAGE = Path(wfkit.__file__).resolve().parent

# The core: the engines and what they stand on. The views (wfkit.plots, wfkit.jupyter) and the
# application (wfkit.app, with the old names wfkit.cli, wfkit.demo and python -m wfkit) are
# above it, and the facade (wfkit/__init__.py) re-exports from every layer.
VIEW_LAYERS = ("wfkit.jupyter", "wfkit.plots", "wfkit.app")
APP = ("wfkit.app", "wfkit.cli", "wfkit.demo", "wfkit.__main__")
# The task model everything shares. It lives in wfkit/agents/ (the public layout), below the
# engine that shares that package with it, so it counts as a layer of its own.
MODEL = ("wfkit.agents.model", "wfkit.agents.params")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported wfkit module, line, at import time?) for every import in ``path``. Imports in
    function bodies run when called; ``if TYPE_CHECKING:`` blocks never run."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def target(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            now = at_import and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, now) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = target(child)
                for alias in child.names:  # `from wfkit import redaction` imports a module
                    sub = f"{base}.{alias.name}"
                    is_module = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py")
                    found.append((sub if is_module.exists() else base, child.lineno, now))
            visit(child, now)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(name, line, now) for name, line, now in found if _within(name, "wfkit")]


EDGES = [
    (_module_name(path), name, line, now)
    for path in sorted(PACKAGE.rglob("*.py"))
    for name, line, now in _imports(path)
]


def _where(edges: list[tuple[str, str, int, bool]]) -> list[str]:
    return [f"{a} (line {line}) imports {b}" for a, b, line, _ in edges]


def test_the_core_imports_no_view_or_application_at_import_time():
    core = [e for e in EDGES if not _within(e[0], (*VIEW_LAYERS, *APP)) and e[0] != "wfkit"]
    wrong = [e for e in core if e[3] and _within(e[1], VIEW_LAYERS)]
    assert _where(wrong) == []


def test_only_the_application_imports_the_application():
    wrong = [e for e in EDGES if _within(e[1], "wfkit.app") and not _within(e[0], APP)]
    assert _where(wrong) == []


def test_agents_never_import_integration_or_optimization():
    """The engine stands below the integration flows and the planners (HEFT is found by name,
    through POLICIES), even in code that runs late."""
    wrong = [e for e in EDGES if _within(e[0], "wfkit.agents")
             and _within(e[1], ("wfkit.integration", "wfkit.optimization"))]
    assert _where(wrong) == []


def _layer(module: str) -> str:
    if _within(module, MODEL):
        return "model"
    return ".".join(module.split(".")[:2])


def test_packages_import_each_other_without_cycles():
    graph = nx.DiGraph()
    for a, b, _line, now in EDGES:
        if now and _layer(a) != _layer(b):
            graph.add_edge(_layer(a), _layer(b))
    assert list(nx.simple_cycles(graph)) == []


def test_modules_import_each_other_without_cycles_at_import_time():
    graph = nx.DiGraph((a, b) for a, b, _line, now in EDGES if now and a != b)
    assert list(nx.simple_cycles(graph)) == []


def test_the_application_modules_look_down_only_even_late():
    """cli -> showcase -> demo, report, jsonout: no cycle, not even through an import in a
    function body."""
    graph = nx.DiGraph((a, b) for a, b, _line, _now in EDGES
                       if _within(a, "wfkit.app") and _within(b, "wfkit.app") and a != b)
    assert graph.number_of_edges() >= 4
    assert list(nx.simple_cycles(graph)) == []
