"""Run tasks' sync work on a Dask distributed cluster, without changing the workflow.

The engine still decides *what* runs *when* (dependencies, agents' capabilities and capacity,
the policy, retries, timeouts); Dask decides on which worker. For each attempt:

- the work and a light copy of its context go out with ``client.submit(..., pure=False)``
  under a key named after the task (``<task_id>-<hex>``), so the Dask dashboard shows wfkit's
  task names;
- a dependency computed on the cluster by this executor in this run is passed as the Dask
  future it is: its data stays on the workers (moving worker to worker if at all), never
  through the client. Results from elsewhere (another executor, a resumed run) go as values;
- the capabilities the task requires that the cluster declares as worker resources become
  ``resources={capability: 1}``, so Dask only places it on a worker that has them;
- the result is gathered to the client too (events, run results and the store need it); its
  future is held while dependents that may run here still need it, and dropped after that or
  when the run ends;
- cancelling the await (the run is cancelled, the task timed out) cancels the future on the
  cluster; Dask cannot interrupt a task a worker thread is already running, so that one
  finishes there and its result is dropped;
- a worker lost while running it surfaces as :class:`~wfkit.errors.WorkerLostError`, which the
  engine retries without spending the task's own ``retries``. Dask itself first re-runs a task
  whose worker died on another worker, up to ``distributed.scheduler.allowed-failures`` times;
  wfkit sees the loss when Dask gives up (``KilledWorker``) or drops the future.

A client passed in is never closed. With neither ``client`` nor ``address`` the executor starts
a ``LocalCluster`` on first use (or :meth:`DaskExecutor.start`), prints where its dashboard
is, and closes it in :meth:`DaskExecutor.close`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib.util
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from wfkit.agents.model import WorkflowTask
from wfkit.errors import (
    MissingDependencyError,
    TaskNotSendableError,
    ValidationError,
    WfkitError,
    WorkerLostError,
)
from wfkit.executors.base import Executor, Work
from wfkit.executors.shipping import light_context, not_sendable, unique_work

__all__ = ["DaskExecutor"]

log = logging.getLogger("wfkit.executors.dask")

T = TypeVar("T")

_FIX = (
    "Do not capture unpicklable objects (locks, open files, connections, clients) in the "
    "function: create them inside the task or pass plain data; or run this task on a "
    "ThreadExecutor"
)


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingDependencyError("distributed", "dask", "DaskExecutor") from None


def _call_remote(fn: Callable[[Any], Any], ctx: Any, deps: tuple[str, ...], *values: Any) -> Any:
    """On the worker: Dask has replaced dependency futures by their data; rebuild the inputs."""
    ctx.inputs = dict(zip(deps, values, strict=True))
    return fn(ctx)


class _Run:
    """What the executor keeps for one run (dropped by :meth:`DaskExecutor.release`)."""

    __slots__ = ("held", "waiting", "resources", "loading")

    def __init__(self) -> None:
        self.held: dict[str, Any] = {}  # task id -> the Dask future holding its result
        self.waiting: dict[str, int] = {}  # task id -> dependents here not yet completed
        self.resources: frozenset[str] | None = None  # resource names the workers declare
        self.loading: asyncio.Future[frozenset[str]] | None = None


class DaskExecutor(Executor):
    """Runs sync work on a Dask cluster: ``client``, or a scheduler ``address``, or (neither)
    a ``LocalCluster`` started on first use with ``cluster_kwargs`` (default: one worker
    process per CPU, one thread each).

    ``resources``: ``True`` maps each required capability the cluster declares as a worker
    resource to one unit of it; a mapping ``{capability: amount}`` sets other amounts;
    ``False`` turns the mapping off. ``lost_worker_retries``: how many lost-worker failures
    per task the engine retries for free. ``announce``: print the dashboard link when this
    executor starts a cluster or connects to an address.
    """

    name = "dask"

    def __init__(
        self,
        client: Any = None,
        address: str | None = None,
        *,
        resources: bool | Mapping[str, float] = True,
        lost_worker_retries: int = 3,
        announce: bool = True,
        **cluster_kwargs: Any,
    ) -> None:
        _require_distributed()
        if client is not None and address is not None:
            raise ValidationError(
                "DaskExecutor takes client= or address=, not both: pass the client you have, "
                "or the scheduler address to connect to"
            )
        if cluster_kwargs and (client is not None or address is not None):
            raise ValidationError(
                f"DaskExecutor: {', '.join(sorted(cluster_kwargs))} configure the LocalCluster "
                f"it starts when given neither client= nor address=; drop them"
            )
        if client is not None and not hasattr(client, "submit"):
            raise ValidationError(
                f"DaskExecutor(client=...) takes a distributed.Client, got {type(client).__name__}"
            )
        if not isinstance(resources, bool):
            if not isinstance(resources, Mapping) or not all(
                isinstance(k, str) and isinstance(v, int | float) and v > 0
                for k, v in resources.items()
            ):
                raise ValidationError(
                    "DaskExecutor(resources=...) takes True, False or a mapping "
                    f"{{capability: amount > 0}}, got {resources!r}"
                )
            resources = dict(resources)
        if isinstance(lost_worker_retries, bool) or not isinstance(lost_worker_retries, int) or (
            lost_worker_retries < 0
        ):
            raise ValidationError(
                f"DaskExecutor(lost_worker_retries=...) must be an int >= 0, "
                f"got {lost_worker_retries!r}"
            )
        self.address = address
        self.resources = resources
        self.lost_worker_retries = lost_worker_retries
        self.announce = announce
        self.cluster: Any = None
        self._client = client
        self._owns_client = client is None
        self._cluster_kwargs = cluster_kwargs
        self._lock = threading.Lock()
        self._starting: concurrent.futures.Future[Any] | None = None
        self._runs: dict[str, _Run] = {}
        # For each task sent here: how many of its dependents may run here too (from check()).
        self._dependents: weakref.WeakKeyDictionary[WorkflowTask, int] = (
            weakref.WeakKeyDictionary()
        )

    # -- the client and the cluster ------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (connecting or starting the cluster now if needed)."""
        return self.start()._client

    @property
    def owns_client(self) -> bool:
        """True when this executor created the client (and so closes it)."""
        return self._owns_client

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's URL, once connected."""
        client = self._client
        return None if client is None else getattr(client, "dashboard_link", None)

    def start(self) -> DaskExecutor:
        """Connect, or start the LocalCluster, now (blocking); the first task does otherwise."""
        if self._client is None:
            starting = self._begin_start(in_thread=False)
            starting.result()
        return self

    def _begin_start(self, *, in_thread: bool) -> concurrent.futures.Future[Any]:
        """One start at a time: every caller waits on the same future."""
        with self._lock:
            starting = self._starting
            if starting is not None:
                return starting
            starting = self._starting = concurrent.futures.Future()
        if in_thread:  # the caller is on an event loop: start off it, without blocking it
            threading.Thread(
                target=self._start_into, args=(starting,), name="wfkit-dask-start", daemon=True
            ).start()
        else:
            self._start_into(starting)
        return starting

    def _start_into(self, starting: concurrent.futures.Future[Any]) -> None:
        try:
            self._start_blocking()
        except BaseException as exc:
            with self._lock:
                self._starting = None  # the next call tries again
            starting.set_exception(exc)
        else:
            starting.set_result(None)

    def _start_blocking(self) -> None:
        from distributed import Client, LocalCluster

        if self.address is not None:
            try:
                client = Client(self.address, set_as_default=False)
            except OSError as exc:
                raise WfkitError(
                    f"could not connect to the Dask scheduler at {self.address!r} ({exc}); "
                    f"check the address (tcp://host:8786) and that the scheduler is running"
                ) from exc
            self._client = client
            self._say(f"connected to the Dask scheduler at {self.address}", client)
            return
        options = {
            "n_workers": os.cpu_count() or 1,
            "threads_per_worker": 1,
            "processes": True,
            **self._cluster_kwargs,
        }
        cluster = LocalCluster(**options)
        try:
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        self.cluster = cluster
        self._client = client
        workers = len(cluster.scheduler_info.get("workers", {}))
        self._say(f"started a Dask LocalCluster with {workers} worker(s)", client)

    def _say(self, what: str, client: Any) -> None:
        """Point the user at the dashboard (Dask serves it only where bokeh is installed)."""
        message = f"wfkit: {what}; Dask dashboard: {client.dashboard_link}"
        if self.cluster is not None and importlib.util.find_spec("bokeh") is None:
            message += " (it needs bokeh to show anything: pip install 'bokeh>=3.1')"
        log.info(message)
        if self.announce:
            print(message)

    async def _ready_client(self) -> Any:
        client = self._client
        if client is None:
            await asyncio.wrap_future(self._begin_start(in_thread=True))
            client = self._client
        elif getattr(client, "status", "running") == "newly-created" and client.asynchronous:
            await client  # an asynchronous Client that was never awaited
        return client

    @staticmethod
    def _on_client_loop(client: Any, make: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """Run ``make()`` on the client's event loop: this one (an asynchronous client made
        here) or the client's own thread (a synchronous client, as in a notebook)."""
        loop = client.loop.asyncio_loop
        if loop is asyncio.get_running_loop():
            return make()

        async def call() -> T:
            return await make()

        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), loop))

    # -- the seam ------------------------------------------------------------------------------

    def check(self, work: Sequence[Work]) -> None:
        """Refuse work Dask cannot pickle, before the run; note which results feed tasks here."""
        from distributed.protocol.pickle import dumps

        for task, agent, fn in unique_work(work).values():
            try:
                dumps(fn)
            except Exception as exc:
                raise not_sendable(
                    task, agent, fn, where="a Dask worker", executor=self.name, cause=exc,
                    fix=_FIX,
                ) from None
        here: dict[str, WorkflowTask] = {}
        for task, _agent, _fn in work:
            here[task.task_id] = task
        counts: dict[str, int] = dict.fromkeys(here, 0)
        for task in here.values():
            for dep in task.dependencies:
                if dep in counts:
                    counts[dep] += 1
        for tid, task in here.items():
            self._dependents[task] = counts[tid]

    async def run(self, fn: Callable[[Any], Any], ctx: Any) -> Any:
        client = await self._ready_client()
        task: WorkflowTask = ctx.task
        tid = task.task_id
        run = self._runs.get(ctx.run_id)
        if run is None:
            run = self._runs[ctx.run_id] = _Run()
        resources = None
        if self.resources is not False:
            names = run.resources
            if names is None:
                names = await self._resource_names(client, run)
            resources = self._resources_for(task, names)
        deps = tuple(task.dependencies)
        held = run.held
        args = [held[d] if d in held else ctx.inputs[d] for d in deps]
        as_values = [d for d in deps if d not in held]
        if as_values:
            self._check_values(ctx, as_values)
        fut = client.submit(
            _call_remote,
            fn,
            light_context(ctx, inputs={}),
            deps,
            *args,
            key=f"{tid}-{uuid.uuid4().hex}",
            pure=False,
            resources=resources,
        )
        done = False
        try:
            await self._finished(fut)
            gather = functools.partial(client.gather, fut, asynchronous=True)
            result = await self._on_client_loop(client, gather)
            done = True
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                await self._cancel(client, fut)
                raise  # the run was cancelled, or the task timed out
            raise self._lost(
                tid, "the Dask client stopped waiting for it (was it closed?)", None
            ) from None
        except Exception as exc:
            from distributed import KilledWorker

            if isinstance(exc, KilledWorker):
                worker = getattr(exc.last_worker, "address", None)
                raise self._lost(tid, f"Dask gave up on it: {exc}", worker) from exc
            if isinstance(exc, concurrent.futures.CancelledError):
                raise self._lost(tid, f"the cluster dropped its Dask future ({exc})", None) from exc
            raise
        finally:
            if not done:  # the error's traceback would keep the future, and its key, alive
                fut.release()
        self._completed(run, task, deps, fut)
        return result

    @staticmethod
    def _finished(fut: Any) -> asyncio.Future[None]:
        """Wake this loop when ``fut`` is done (finished, erred or cancelled). Waiting this way,
        rather than in a cancellable ``gather``, leaves nothing of Dask's half-done."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def on_done(_: Any) -> None:  # on Dask's callback thread
            try:
                loop.call_soon_threadsafe(wake)
            except RuntimeError:  # the loop has closed: nobody waits any more
                pass

        fut.add_done_callback(on_done)
        return waiter

    def _completed(self, run: _Run, task: WorkflowTask, deps: tuple[str, ...], fut: Any) -> None:
        """Hold this result's future for the dependents that may run here; drop the
        futures of dependencies this task was the last one here to need."""
        n = self._dependents.get(task, 0)
        if n:
            run.held[task.task_id] = fut
            run.waiting[task.task_id] = n
        waiting = run.waiting
        for dep in deps:
            left = waiting.get(dep)
            if left is None:
                continue
            if left <= 1:
                del waiting[dep]
                run.held.pop(dep, None)
            else:
                waiting[dep] = left - 1

    def _lost(self, tid: str, why: str, worker: str | None) -> WorkerLostError:
        return WorkerLostError(
            f"task {tid!r} lost its Dask worker: {why}; the attempt is retried",
            task_id=tid,
            worker=worker,
            retries=self.lost_worker_retries,
        )

    def _check_values(self, ctx: Any, deps: list[str]) -> None:
        """Inputs sent as values (computed elsewhere) must pickle: say which one does not."""
        from distributed.protocol.pickle import dumps

        for dep in deps:
            value = ctx.inputs[dep]
            try:
                dumps(value)
            except Exception as exc:
                raise TaskNotSendableError(
                    f"task {ctx.task.task_id!r} cannot be sent to a Dask worker: the result of "
                    f"{dep!r} ({type(value).__name__}) cannot be pickled "
                    f"({type(exc).__name__}: {exc}). Make {dep!r} return plain data, or run "
                    f"this task on a ThreadExecutor",
                    task_id=ctx.task.task_id,
                    executor=self.name,
                ) from None

    async def _cancel(self, client: Any, fut: Any) -> None:
        try:
            await self._on_client_loop(
                client,
                lambda: client.cancel(
                    [fut], asynchronous=True, reason="wfkit", msg="the wfkit run was cancelled"
                ),
            )
        except Exception as exc:  # the client may be gone; the future is released anyway
            log.debug("could not cancel %s: %s", fut.key, exc)

    async def _resource_names(self, client: Any, run: _Run) -> frozenset[str]:
        """The worker resources the cluster declares, fetched once per run."""
        if run.loading is None:

            async def fetch() -> frozenset[str]:
                info = await self._on_client_loop(
                    client, lambda: client.scheduler.identity(n_workers=-1)
                )
                names: set[str] = set()
                for worker in info.get("workers", {}).values():
                    names.update(worker.get("resources") or {})
                run.resources = frozenset(names)
                return run.resources

            run.loading = asyncio.ensure_future(fetch())
        return await asyncio.shield(run.loading)

    def _resources_for(
        self, task: WorkflowTask, declared: frozenset[str]
    ) -> dict[str, float] | None:
        if not declared or self.resources is False:
            return None
        wanted = task.capability_set & declared
        if not wanted:
            return None
        amounts = self.resources if isinstance(self.resources, dict) else {}
        return {name: amounts.get(name, 1) for name in sorted(wanted)}

    def release(self, run_id: str) -> None:
        """The run has ended: drop its futures so the cluster frees their data."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            if run.loading is not None and not run.loading.done():
                run.loading.cancel()
            run.held.clear()
            run.waiting.clear()

    def close(self) -> None:
        """Close the client and LocalCluster this executor created; a given client is left
        alone. The executor can be used again afterwards (it starts afresh)."""
        starting = self._starting
        if starting is not None and not starting.done():
            try:
                starting.result(timeout=120)
            except Exception as exc:  # it failed to start: nothing to close
                log.debug("the Dask start failed: %s", exc)
        for run in self._runs.values():
            run.held.clear()
        self._runs.clear()
        if not self._owns_client:
            return
        client, cluster = self._client, self.cluster
        self._client = self.cluster = None
        self._starting = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __repr__(self) -> str:
        client = self._client
        if client is None:
            where = self.address or "LocalCluster (not started)"
        else:
            where = getattr(getattr(client, "scheduler", None), "address", None) or "?"
        link = self.dashboard_link
        return f"<DaskExecutor {where}{f' dashboard={link}' if link else ''}>"
