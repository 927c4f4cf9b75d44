"""Every facade ends the same way: close(), aclose(), ``with`` and ``async with``, each
releasing what it created, and closing twice is harmless."""

from __future__ import annotations

import ast
import asyncio
import inspect
from pathlib import Path

import pytest

import wfkit
from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    CoordinationCollaborationManager,
    IntegrationOrchestrator,
    RunStore,
    Workflow,
)
from wfkit.errors import ClosedError
from wfkit.executors import ProcessExecutor, ThreadExecutor
from wfkit.lifecycle import Closing

FACADES = [
    CollectiveAgentWorkflowOrchestrator,
    IntegrationOrchestrator,
    CoordinationCollaborationManager,
    RunStore,
    ThreadExecutor,
    ProcessExecutor,
]


@pytest.mark.parametrize("cls", FACADES, ids=lambda c: c.__name__)
def test_every_facade_has_the_four_ways_to_end(cls):
    assert issubclass(cls, Closing)
    for name in ("close", "aclose", "__enter__", "__exit__", "__aenter__", "__aexit__"):
        assert callable(getattr(cls, name)), name
    assert asyncio.iscoroutinefunction(cls.aclose)


def test_run_store_with_and_async_with(tmp_path):
    with RunStore(tmp_path / "a.db") as store:
        assert "open" in repr(store)
    assert "closed" in repr(store)
    store.close()  # twice is harmless

    async def main():
        async with RunStore(tmp_path / "b.db") as other:
            assert "open" in repr(other)
        return other

    assert "closed" in repr(asyncio.run(main()))


async def test_executors_async_with_and_aclose():
    async with ThreadExecutor(2) as ex:
        assert await ex.run(lambda ctx: ctx + 1, 1) == 2
    assert ex._closed
    pool = ProcessExecutor(max_workers=1)
    assert pool._current_pool().submit(abs, -3).result(timeout=60) == 3  # a worker is up
    await pool.aclose()
    assert pool._pool is None
    await pool.aclose()


def workflow():
    wf = Workflow("life")

    @wf.task(requires=["w"])
    def one(ctx):
        return 1

    return wf


async def test_the_agent_orchestrator_closes_its_executor_and_store(tmp_path):
    async with CollectiveAgentWorkflowOrchestrator(progress=False, store=tmp_path / "s.db") as orch:
        orch.register_agent(AgentProfile("a", "A", ["w"]))
        await orch.create_workflow(workflow())
        result = await orch.execute_workflow("life")
        assert result["status"] == "completed"
    assert orch.executor._closed and "closed" in repr(orch.store)

    with CollectiveAgentWorkflowOrchestrator(progress=False) as plain:
        pass
    assert plain.executor._closed

    given = ThreadExecutor()
    with CollectiveAgentWorkflowOrchestrator(progress=False, executor=given):
        pass
    assert not given._closed  # what it was given is left to its owner
    given.close()


async def test_the_coordination_manager_stops_and_closes():
    manager = CoordinationCollaborationManager()
    await manager.start_coordination()
    executor = manager.executor
    assert manager._coordinator is not None
    await manager.aclose()
    assert manager._coordinator is None and manager._executor is None and executor._closed
    with CoordinationCollaborationManager() as other:
        executor = other.executor
    assert other._executor is None and executor._closed


def test_the_integration_orchestrator_closes_its_databases_without_a_loop(tmp_path):
    with IntegrationOrchestrator() as orch:
        db = orch.database(f"sqlite:///{tmp_path / 'x.db'}")
        assert db.run_sync(lambda conn: 1) == 1
    with pytest.raises(ClosedError):
        db.run_sync(lambda conn: 1)
    orch.close()  # twice is harmless


async def test_the_integration_orchestrator_closes_its_http_client_from_sync_code(tmp_path):
    orch = IntegrationOrchestrator()
    http = orch.http_client()
    db = orch.database(f"sqlite:///{tmp_path / 'y.db'}")
    orch.close()  # sync, inside the running loop: the client closes when the loop gets control
    with pytest.raises(ClosedError):
        db.run_sync(lambda conn: 1)
    for _ in range(10):
        if http.is_closed:
            break
        await asyncio.sleep(0)
    assert http.is_closed


def _closing_bodies() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(Closing))
    return {
        f.name: ast.dump(ast.Module(body=_without_docstring(f.body), type_ignores=[]))
        for f in tree.body[0].body
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0]
    doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return body[1:] if doc and len(body) > 1 else body


def test_no_class_copies_what_closing_gives():
    """A facade overrides aclose() / __aenter__ / ... only to do something else (stop a
    background loop, close an async client); a copy of Closing's own method is a second place
    to keep in step."""
    closing = _closing_bodies()
    copies = []
    for path in sorted(Path(wfkit.__file__).resolve().parent.rglob("*.py")):
        if path.name == "lifecycle.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for f in node.body:
                if (isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name in closing
                        and f.name != "close"):
                    body = ast.dump(ast.Module(body=_without_docstring(f.body), type_ignores=[]))
                    if body == closing[f.name]:
                        copies.append(f"{path.name}: {node.name}.{f.name}")
    assert copies == []


def test_the_dask_executor_ends_its_life_through_closing():
    from wfkit.executors.dask import DaskExecutor

    for name in ("aclose", "__enter__", "__exit__", "__aenter__", "__aexit__"):
        assert getattr(DaskExecutor, name) is getattr(Closing, name), name
