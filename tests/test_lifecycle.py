"""Every facade ends the same way: close(), aclose(), ``with`` and ``async with``, each
releasing what it created, and closing twice is harmless."""

from __future__ import annotations

import asyncio

import pytest

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
