"""One retry delay for the engine and the simulator: a simulated retry waits what a real one
does."""

import ast
import random
from pathlib import Path

import pytest

import wfkit
from wfkit.agents.dispatch import retry_delay
from wfkit.events import TaskRetrying


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_the_delay_doubles_per_attempt_with_jitter_below_the_cap(attempt):
    rng = random.Random(7)
    delays = [retry_delay(attempt, 0.5, 3.0, rng) for _ in range(200)]
    full = min(3.0, 0.5 * 2 ** (attempt - 1))
    assert all(full / 2 <= d < full for d in delays)
    assert max(delays) - min(delays) > full / 4  # jittered, not one value
    again = random.Random(7)
    assert delays[:3] == [retry_delay(attempt, 0.5, 3.0, again) for _ in range(3)]


def test_engine_and_simulator_both_use_it_and_nothing_else_computes_it():
    root = Path(wfkit.__file__).resolve().parent
    callers, formulas = set(), []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "retry_delay":
                callers.add(path.relative_to(root).as_posix())
            if isinstance(node, ast.FunctionDef) and node.name != "retry_delay":
                source = ast.unparse(node)
                if "2 ** (attempt - 1)" in source:
                    formulas.append(f"{path.name}: {node.name}")
    assert callers == {"agents/engine.py", "optimization/simulator.py"}
    assert formulas == []


async def test_a_live_retry_waits_within_the_delay_of_its_attempt():
    wf = wfkit.Workflow("retrying")

    @wf.task(requires=["x"], retries=2)
    def flaky(ctx):
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        return ctx.attempt

    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.01, max_backoff=0.015)
    orch.register_agent(wfkit.AgentProfile("a", "A", ["x"]))
    retrying = []
    orch.subscribe(lambda e: retrying.append(e) if isinstance(e, TaskRetrying) else None)
    result = await orch.execute_workflow(wf)
    orch.close()
    assert result["task_results"]["flaky"]["attempts"] == 3
    delays = [e.delay for e in retrying]
    assert len(delays) == 2
    assert 0.005 <= delays[0] < 0.01 and 0.0075 <= delays[1] < 0.015  # doubled, then capped
