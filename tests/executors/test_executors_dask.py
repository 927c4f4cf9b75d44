"""DaskExecutor on a real LocalCluster: two worker processes, one thread each."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real Dask LocalCluster

pytest.importorskip("distributed", reason="the Dask tests need the wfkit[dask] extra")

import distributed  # noqa: E402
import httpx  # noqa: E402
from pandas.testing import assert_frame_equal  # noqa: E402
from support import dead, run, wait_for  # noqa: E402

from wfkit import (  # noqa: E402
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    DaskExecutor,
    TaskNotSendableError,
    ThreadExecutor,
    ValidationError,
    WorkflowTask,
)
from wfkit.events import (  # noqa: E402
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskRetrying,
    TaskStarted,
)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield cluster, client


@pytest.fixture
def client(cluster):
    client = cluster[1]
    client.wait_for_workers(2, timeout=60)  # a test that killed a worker leaves it restarting
    return client


def scheduler_keys(dask_scheduler):
    return sorted(map(str, dask_scheduler.tasks))


def set_allowed_failures(n, dask_scheduler):
    old = dask_scheduler.allowed_failures
    dask_scheduler.allowed_failures = n
    return old


async def no_keys_left(client):
    left = []

    def empty():
        left[:] = client.run_on_scheduler(scheduler_keys)
        return not left

    try:
        await wait_for(empty, "the scheduler to forget the run's keys", timeout=10)
    except AssertionError:
        raise AssertionError(f"the scheduler still has {left}") from None


# -- work run on the workers (module level; cloudpickle ships closures too) ---------------------


def pid_and_inputs(ctx):
    return {"pid": os.getpid(), "inputs": dict(ctx.inputs), "attempt": ctx.attempt}


def number(ctx):
    return sum(ctx.inputs.values()) + 1


def dependency_keys(ctx):
    """Which cluster tasks feed this one: non-empty only if inputs came as futures."""
    worker = distributed.get_worker()
    key = worker.get_current_task()
    deps = worker.state.tasks[key].dependencies
    return {"deps": sorted(str(d.key).split("-")[0] for d in deps), "inputs": dict(ctx.inputs)}


def big_blob(ctx):
    return b"x" * 1_000_000


def total(ctx):
    return sum(len(v) for v in ctx.inputs.values())


def flaky(ctx):
    if ctx.attempt == 1:
        raise ValueError("first attempt fails")
    return "ok"


def broken(ctx):
    raise RuntimeError("broken on purpose")


def slow_pid(ctx):
    time.sleep(0.3)
    return os.getpid()


def wait_then_report(folder, ctx):
    """Note the worker process that runs this; return once the test says go (or it ran before)."""
    Path(folder, f"started-{os.getpid()}").write_text(ctx.task.task_id)
    deadline = time.monotonic() + 30
    while not Path(folder, "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never said go")
        time.sleep(0.02)
    return os.getpid()


def mark_and_sleep(folder, seconds, ctx):
    Path(folder, ctx.task.task_id).write_text(str(os.getpid()))
    time.sleep(seconds)
    return ctx.task.task_id


def mark_and_wait(folder, gate, ctx):
    """Mark the start, then hold the worker until the test opens ``gate`` (bounded): what a
    started task does then cannot depend on how loaded the machine is."""
    Path(folder, ctx.task.task_id).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return ctx.task.task_id


def agent(capacity=2, caps=("cpu",), agent_id="a", handler=None):
    return AgentProfile(agent_id, agent_id, list(caps), capacity=capacity, handler=handler)


def task(tid, action, deps=(), caps=("cpu",), **kw):
    return WorkflowTask(tid, tid, list(caps), 0, 1.0, list(deps), action=action, **kw)


async def kill_worker(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: dead(pid), f"worker process {pid} to die")


# -- results, dependencies, data placement ------------------------------------------------------


async def test_results_and_dependencies(client):
    ex = DaskExecutor(client)
    tasks = [
        task("a", number),
        task("b", number, ["a"]),
        task("c", number, ["a"]),
        task("d", pid_and_inputs, ["b", "c"]),
    ]
    result, events = await run(tasks, ex)
    assert result.status == "completed"
    assert result.results()["d"]["inputs"] == {"b": 2, "c": 2}
    assert result.results()["d"]["pid"] != os.getpid()
    done = [e for e in events if isinstance(e, TaskCompleted)]
    assert {e.task_id: e.result for e in done if e.task_id != "d"} == {"a": 1, "b": 2, "c": 2}
    ex.close()
    assert client.status == "running"  # a client it did not create is left alone
    await no_keys_left(client)


async def test_dependency_results_travel_as_futures(client):
    ex = DaskExecutor(client)
    seen_held = []

    def spy(event):  # when "use" starts, which results does the executor still hold?
        if isinstance(event, TaskStarted) and event.task_id == "sum":
            seen_held.append(sorted(ex._runs[event.run_id].held))

    tasks = [
        task("big", big_blob),
        task("feed", dependency_keys, ["big"]),
        task("sum", total, ["big"]),
        task("last", dependency_keys, ["feed", "sum"]),
    ]
    orch = CollectiveAgentWorkflowOrchestrator(executor=ex, progress=False)
    orch.register_agent(agent(capacity=1))  # one at a time: a fixed order
    orch.subscribe(spy)
    await orch.create_workflow("wf", tasks)
    result = await orch.execute_workflow("wf", policy="least_loaded")
    assert result.status == "completed"
    feed = result.results()["feed"]
    assert feed["deps"] == ["big"]  # a dependency on the cluster task, not data in the graph
    assert feed["inputs"]["big"] == b"x" * 1_000_000
    assert result.results()["sum"] == 1_000_000
    assert result.results()["last"]["deps"] == ["feed", "sum"]
    assert seen_held and "big" in seen_held[0]
    assert ex._runs == {}  # released when the run ended
    await no_keys_left(client)


async def test_values_from_other_executors_are_sent_as_data(client):
    async def on_the_loop(ctx):
        return 41

    ex = DaskExecutor(client)
    tasks = [task("local", on_the_loop), task("remote", dependency_keys, ["local"])]
    result, _ = await run(tasks, ex)
    assert result.results()["remote"] == {"deps": [], "inputs": {"local": 41}}


async def test_work_runs_in_more_than_one_worker_process(client):
    ex = DaskExecutor(client)
    tasks = [task(f"t{i}", slow_pid) for i in range(6)]
    result, _ = await run(tasks, ex, agents=[agent(capacity=4)])
    pids = set(result.results().values())
    assert len(pids) == 2 and os.getpid() not in pids
    workers = client.run(os.getpid)
    assert pids == set(workers.values())


async def test_lambdas_and_closures_travel_with_cloudpickle(client):
    base = 40

    def closure(ctx):
        return base + 2

    result, _ = await run(
        [task("lam", lambda ctx: os.getpid()), task("clo", closure)], DaskExecutor(client)
    )
    assert result.results()["clo"] == 42
    assert result.results()["lam"] != os.getpid()


async def test_unsendable_work_is_refused_before_anything_runs(client):
    lock = threading.Lock()

    def holds_a_lock(ctx):
        with lock:
            return 1

    events = []
    orch = CollectiveAgentWorkflowOrchestrator(executor=DaskExecutor(client), progress=False)
    orch.register_agent(agent())
    orch.subscribe(events.append)
    await orch.create_workflow("wf", [task("ok", number), task("locked", holds_a_lock, ["ok"])])
    with pytest.raises(
        TaskNotSendableError,
        match=r"task 'locked' cannot be sent to a Dask worker: its action .*holds_a_lock "
        r"cannot be pickled .*lock.*create them inside the task",
    ) as info:
        await orch.execute_workflow("wf")
    assert info.value.executor == "dask"
    assert [type(e).__name__ for e in events] == ["WorkflowCreated"]  # no run, no task


# -- retries, lost workers, cancellation --------------------------------------------------------


async def test_failures_are_retried_and_reported_as_locally(client):
    result, events = await run(
        [
            task("flaky", flaky, retries=1),
            task("broken", broken),
            task("after", number, ["broken"]),
        ],
        DaskExecutor(client),
    )
    assert result.task_results["flaky"]["status"] == "completed"
    assert result.task_results["flaky"]["attempts"] == 2
    assert result.task_results["broken"]["error"] == "RuntimeError: broken on purpose"
    assert result.task_results["after"]["status"] == "skipped"
    failed = [(e.task_id, e.attempt, e.final) for e in events if isinstance(e, TaskFailed)]
    assert sorted(failed) == [("broken", 1, True), ("flaky", 1, False)]


async def test_a_worker_killed_mid_task_is_rerun_by_dask(client, tmp_path):
    work = functools.partial(wait_then_report, str(tmp_path))
    running = asyncio.ensure_future(run([task("victim", work)], DaskExecutor(client)))
    await wait_for(lambda: any(tmp_path.glob("started-*")), "the task to start")
    killed = int(next(tmp_path.glob("started-*")).name.split("-")[1])
    await kill_worker(killed)
    (tmp_path / "go").touch()
    result, events = await running
    tr = result.task_results["victim"]
    assert tr["status"] == "completed"
    assert tr["result"] != killed  # it finished in another worker process
    assert len(list(tmp_path.glob("started-*"))) == 2  # it really ran twice


async def test_a_lost_worker_is_a_retryable_failure(client, tmp_path):
    """When Dask gives up on a task whose worker died (KilledWorker), wfkit retries it
    without spending the task's retries."""
    old = client.run_on_scheduler(functools.partial(set_allowed_failures, 0))
    try:
        work = functools.partial(wait_then_report, str(tmp_path))
        running = asyncio.ensure_future(run([task("victim", work)], DaskExecutor(client)))
        await wait_for(lambda: any(tmp_path.glob("started-*")), "the task to start")
        killed = int(next(tmp_path.glob("started-*")).name.split("-")[1])
        await kill_worker(killed)
        await wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2, "the retry to start")
        (tmp_path / "go").touch()
        result, events = await running
    finally:
        client.run_on_scheduler(functools.partial(set_allowed_failures, old))
    tr = result.task_results["victim"]
    assert tr["status"] == "completed" and tr["attempts"] == 2 and tr["result"] != killed
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert len(failed) == 1 and not failed[0].final
    assert failed[0].error.startswith("WorkerLostError: task 'victim' lost its Dask worker")
    assert "KilledWorker" in failed[0].error or "Attempted to run task" in failed[0].error
    assert [e.attempt for e in events if isinstance(e, TaskRetrying)] == [2]


async def test_cancelling_the_run_cancels_its_futures(client, tmp_path):
    started, gate = tmp_path / "started", tmp_path / "gate"
    started.mkdir()
    work = functools.partial(mark_and_wait, str(started), str(gate))
    tasks = [task(f"s{i}", work) for i in range(4)]
    events = []
    orch = CollectiveAgentWorkflowOrchestrator(executor=DaskExecutor(client), progress=False)
    orch.register_agent(agent(capacity=4))  # all four submitted; two workers run two
    orch.subscribe(events.append)
    await orch.create_workflow("wf", tasks)
    running = asyncio.ensure_future(orch.execute_workflow("wf"))
    await wait_for(lambda: len(list(started.iterdir())) == 2, "two tasks to start")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert sorted(e.task_id for e in events if isinstance(e, TaskCancelled)) == [
        "s0", "s1", "s2", "s3",
    ]
    await no_keys_left(client)  # the queued futures are gone from the scheduler
    gate.touch()  # only now may the two started tasks end

    def idle():
        busy = client.run(lambda dask_worker: len(dask_worker.state.executing))
        return not any(busy.values())

    await wait_for(idle, "the workers to finish what they had started")
    assert len(list(started.iterdir())) == 2  # the two queued tasks never ran


async def test_a_timeout_cancels_the_future(client, tmp_path):
    work = functools.partial(mark_and_sleep, str(tmp_path), 1.0)
    result, _ = await run([task("slow", work, timeout=0.3)], DaskExecutor(client))
    assert "TaskTimeoutError: task 'slow' did not finish within its timeout" in (
        result.task_results["slow"]["error"]
    )
    await no_keys_left(client)


# -- resources ----------------------------------------------------------------------------------


async def test_capabilities_become_worker_resources(client):
    addresses = sorted(client.scheduler_info()["workers"])
    gpu_worker = addresses[0]

    async def declare(dask_worker, amount):
        await dask_worker.set_resources(gpu=amount)

    client.run(declare, amount=1, workers=[gpu_worker])
    try:
        pids = client.run(os.getpid)
        tasks = [task(f"g{i}", slow_pid, caps=["gpu"]) for i in range(4)]
        tasks += [task(f"c{i}", slow_pid) for i in range(4)]
        agents = [agent(capacity=4, caps=["cpu", "gpu"])]
        result, _ = await run(tasks, DaskExecutor(client), agents=agents)
        gpu_pids = {result.results()[f"g{i}"] for i in range(4)}
        assert gpu_pids == {pids[gpu_worker]}
        # with resources=False the capability is not a placement constraint
        off = DaskExecutor(client, resources=False)
        assert off._resources_for(tasks[0], frozenset({"gpu"})) is None
        on = DaskExecutor(client, resources={"gpu": 0.5})
        assert on._resources_for(tasks[0], frozenset({"gpu"})) == {"gpu": 0.5}
        assert on._resources_for(tasks[4], frozenset({"gpu"})) is None
    finally:
        client.run(declare, amount=0, workers=[gpu_worker])


# -- the same workflow, local or on Dask --------------------------------------------------------


def report(ctx):
    return {"total": ctx.inputs["sum_squares"], "flaky": ctx.inputs["flaky"]}


def squares(ctx):
    return [x * x for x in ctx.inputs["load"]]


def sum_squares(ctx):
    return sum(ctx.inputs["squares"])


def load(ctx):
    return list(range(10))


def comparison_workflow():
    return [
        task("load", load),
        task("squares", squares, ["load"]),
        task("sum_squares", sum_squares, ["squares"]),
        task("flaky", flaky, retries=1),
        task("broken", broken),
        task("after_broken", number, ["broken"]),
        task("report", report, ["sum_squares", "flaky"]),
    ]


TIMING = ["execution_time", "started_at", "finished_at"]


def per_task_events(events):
    out: dict[str, list[tuple]] = {}
    for e in events:
        tid = getattr(e, "task_id", None)
        if tid is not None:
            row = (type(e).__name__, getattr(e, "attempt", None), getattr(e, "final", None),
                   getattr(e, "error", None), getattr(e, "agent_id", None))
            out.setdefault(tid, []).append(row)
    return out


async def test_same_workflow_same_task_frames_on_threads_and_dask(client):
    local, local_events = await run(comparison_workflow(), ThreadExecutor())
    remote, remote_events = await run(comparison_workflow(), DaskExecutor(client))
    a = local.frame().drop(columns=TIMING).sort_values("task_id").reset_index(drop=True)
    b = remote.frame().drop(columns=TIMING).sort_values("task_id").reset_index(drop=True)
    assert_frame_equal(a, b)
    assert a.set_index("task_id")["status"].to_dict()["after_broken"] == "skipped"
    assert per_task_events(local_events) == per_task_events(remote_events)
    assert {e.task_id: e.result for e in local_events if isinstance(e, TaskCompleted)} == {
        e.task_id: e.result for e in remote_events if isinstance(e, TaskCompleted)
    }


async def test_metrics_and_store_see_the_same_runs(client, tmp_path):
    metrics_mod = pytest.importorskip("wfkit.metrics.recorder")
    store_mod = pytest.importorskip("wfkit.metrics.store")
    frames = {}
    for name, executor in (("threads", ThreadExecutor()), ("dask", DaskExecutor(client))):
        store = store_mod.RunStore(tmp_path / f"{name}.db")
        metrics = metrics_mod.AdvancedWorkflowMetrics()
        orch = CollectiveAgentWorkflowOrchestrator(
            executor=executor, store=store, backoff=0.01, progress=False
        )
        metrics.attach(orch)
        orch.register_agent(agent())
        await orch.create_workflow("wf", comparison_workflow())
        await orch.execute_workflow("wf")
        drop = ["run_id", "started_at", "finished_at", "duration"]
        frames[name] = [
            f.drop(columns=drop).sort_values(["task_id", "attempt"]).reset_index(drop=True)
            for f in (metrics.task_frame(), store.task_frame())
        ]
    for local, remote in zip(frames["threads"], frames["dask"], strict=True):
        assert_frame_equal(local, remote)


async def test_resume_on_dask_sends_stored_results_as_values(client, tmp_path):
    store_mod = pytest.importorskip("wfkit.metrics.store")
    store = store_mod.RunStore(tmp_path / "runs.db")
    ex = DaskExecutor(client)
    orch = CollectiveAgentWorkflowOrchestrator(executor=ex, store=store, progress=False)
    orch.register_agent(agent())
    await orch.create_workflow("wf", [task("a", number), task("b", broken, ["a"])])
    first = await orch.execute_workflow("wf")
    assert first.task_results["b"]["status"] == "failed"
    await orch.create_workflow("wf", [task("a", number), task("b", dependency_keys, ["a"])])
    second = await orch.execute_workflow("wf", resume="latest")
    assert second.task_results["a"]["resumed"] is True
    assert second.results()["b"] == {"deps": [], "inputs": {"a": 1}}


# -- connecting, owning and closing --------------------------------------------------------------


async def test_an_address_gets_its_own_client_which_close_closes(cluster, client):
    ex = DaskExecutor(address=cluster[0].scheduler_address, announce=False)
    result, _ = await run([task("t", number)], ex)
    assert result.results() == {"t": 1}
    own = ex.client
    assert own is not client and ex.owns_client
    ex.close()
    assert own.status == "closed"
    assert client.status == "running" and cluster[0].status.name == "running"


async def test_an_asynchronous_client_on_this_loop(cluster, client):
    async with distributed.Client(
        cluster[0].scheduler_address, asynchronous=True, set_as_default=False
    ) as aclient:
        ex = DaskExecutor(aclient)
        result, _ = await run([task("a", number), task("b", dependency_keys, ["a"])], ex)
        assert result.results()["b"] == {"deps": ["a"], "inputs": {"a": 1}}
        ex.close()
        assert aclient.status == "running"


async def test_without_client_or_address_it_starts_and_closes_a_local_cluster(capsys):
    ex = DaskExecutor(n_workers=1, dashboard_address="127.0.0.1:0")
    try:
        result, _ = await run([task("t", pid_and_inputs)], ex)
        assert result.results()["t"]["pid"] != os.getpid()
        cluster = ex.cluster
        assert cluster is not None and ex.owns_client
        out = capsys.readouterr().out
        assert "wfkit: started a Dask LocalCluster with 1 worker(s); Dask dashboard: http" in out
        link = ex.dashboard_link
        assert link in out and link.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as http:
            assert (await http.get(link)).status_code == 200
        worker_pids = list(ex.client.run(os.getpid).values())
    finally:
        await ex.aclose()
    assert cluster.status.name == "closed" and ex.cluster is None

    await wait_for(lambda: all(map(dead, worker_pids)), "the LocalCluster's worker to exit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": object()}, r"client=...\) takes a distributed.Client, got object"),
        ({"address": "tcp://x:1", "n_workers": 2}, r"n_workers configure the LocalCluster"),
        ({"resources": {"gpu": 0}}, r"resources=...\) takes True, False or a mapping"),
        ({"lost_worker_retries": -1}, r"lost_worker_retries=...\) must be an int >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        DaskExecutor(**kwargs)


def test_client_and_address_together_are_refused(client):
    with pytest.raises(ValidationError, match=r"takes client= or address=, not both"):
        DaskExecutor(client, "tcp://127.0.0.1:8786")
