"""A process pool for CPU-bound sync work: pure-Python tasks run in parallel, past the GIL.

Work travels with the standard :mod:`pickle`, so it must be importable on the other side: a
function defined with ``def`` at the top level of a module (or a ``functools.partial`` of one).
Lambdas and closures are refused before the run starts (:meth:`ProcessExecutor.check`), with a
message that names the task. Each attempt ships ``fn`` and a light copy of its context
(:func:`wfkit.executors.shipping.light_context`); the result comes back pickled.

Invariants of the pool bookkeeping (``_inflight`` maps each submitted call to its pool):

- a call whose await was cancelled (run cancelled, task timed out) while its process was
  busy is *abandoned*; as soon as every call still running in a pool is abandoned, that pool's
  processes are terminated and the pool is retired, so nothing keeps burning CPU;
- a pool whose process died is broken: its calls fail with :class:`~wfkit.errors.WorkerLostError`
  (retried by the engine) and the next call starts a fresh pool.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any

from wfkit.errors import TaskNotSendableError, ValidationError, WorkerLostError
from wfkit.executors.base import Executor, Work
from wfkit.executors.shipping import (
    defining_module,
    light_context,
    main_is_interactive,
    not_sendable,
    shippable,
    unique_work,
)

__all__ = ["ProcessExecutor"]

_FIX = (
    "Define it with `def` at the top level of a module (not a lambda, a nested function or a "
    "bound method of an unpicklable object), or run this task on a ThreadExecutor or a "
    "DaskExecutor (which ships closures with cloudpickle)"
)


def _worker_init(initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    # Ctrl-C / a kernel interrupt reaches the whole process group: the parent cancels the run
    # and stops its workers; the workers themselves must not die half-way with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def _run_packed(payload: bytes) -> bytes:
    """In the worker: unpickle the work, run it, pickle the result (naming what failed)."""
    fn, ctx = pickle.loads(payload)
    result = fn(ctx)
    try:
        return pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TaskNotSendableError(
            f"task {ctx.task.task_id!r} returned a {type(result).__name__} that cannot be sent "
            f"back from its worker process ({type(exc).__name__}: {exc}); return plain data "
            f"(numbers, strings, lists, dicts, arrays) or run it on a ThreadExecutor",
            task_id=ctx.task.task_id,
            executor="processes",
        ) from None


def _main_snapshot() -> dict[str, int]:
    """Which object each name of ``__main__`` is bound to (what a fork would inherit)."""
    main = sys.modules.get("__main__")
    return {k: id(v) for k, v in vars(main).items()} if main is not None else {}


class ProcessExecutor(Executor):
    """Runs sync work in worker processes; for CPU-bound pure-Python tasks.

    ``max_workers`` caps the processes (default: the number of CPUs, fewer when the agents
    have less capacity). ``mp_context`` is a :mod:`multiprocessing` start method name or
    context (default: the platform's). ``initializer(*initargs)`` runs once in each worker.
    A worker process that dies makes its attempts fail with
    :class:`~wfkit.errors.WorkerLostError`, which the engine retries up to
    ``lost_worker_retries`` times without spending the task's own ``retries``.
    """

    name = "processes"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        mp_context: str | BaseContext | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        lost_worker_retries: int = 3,
    ) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ValidationError(
                f"ProcessExecutor(max_workers=...) must be an int >= 1 or None, got {max_workers!r}"
            )
        if isinstance(lost_worker_retries, bool) or not isinstance(lost_worker_retries, int) or (
            lost_worker_retries < 0
        ):
            raise ValidationError(
                f"ProcessExecutor(lost_worker_retries=...) must be an int >= 0, "
                f"got {lost_worker_retries!r}"
            )
        if mp_context is None or isinstance(mp_context, str):
            try:
                mp_context = multiprocessing.get_context(mp_context)
            except ValueError:
                valid = ", ".join(map(repr, multiprocessing.get_all_start_methods()))
                raise ValidationError(
                    f"ProcessExecutor(mp_context={mp_context!r}): unknown start method; "
                    f"use one of {valid}"
                ) from None
        self.max_workers = max_workers
        self.mp_context = mp_context
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.lost_worker_retries = lost_worker_retries
        self._pool: ProcessPoolExecutor | None = None
        self._size = 0
        self._wanted = 0
        self._main_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        # call -> [its pool, abandoned?]; see the module docstring.
        self._inflight: dict[Future[bytes], list[Any]] = {}

    @property
    def start_method(self) -> str:
        return self.mp_context.get_start_method()

    def _limit(self) -> int:
        return self.max_workers or os.cpu_count() or 1

    # -- pool lifecycle ----------------------------------------------------------------------

    def reserve(self, slots: int) -> None:
        self._wanted = max(self._wanted, max(1, min(slots, self._limit())))
        if self._pool is not None and self._wanted > self._size:
            self._retire(self._pool)  # a bigger pool next; running calls finish in the old one

    def _current_pool(self) -> ProcessPoolExecutor:
        pool = self._pool
        if pool is None:
            size = self._wanted or self._limit()
            pool = ProcessPoolExecutor(
                max_workers=size,
                mp_context=self.mp_context,
                initializer=_worker_init,
                initargs=(self.initializer, self.initargs),
            )
            self._pool, self._size = pool, size
            self._main_ids = _main_snapshot()
        return pool

    def _retire(self, pool: ProcessPoolExecutor) -> None:
        """Stop handing work to ``pool``; what it runs finishes (or is terminated if abandoned)."""
        if self._pool is pool:
            self._pool = None
            self._size = 0
        pool.shutdown(wait=False)

    def _terminate(self, pool: ProcessPoolExecutor) -> None:
        """Kill ``pool``'s processes: everything it still runs was abandoned."""
        procs = list((getattr(pool, "_processes", None) or {}).values())
        if self._pool is pool:
            self._pool = None
            self._size = 0
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    def _reap(self, pool: ProcessPoolExecutor) -> None:
        """Terminate ``pool`` when every call still running in it was abandoned."""
        with self._lock:
            live = [st for f, st in self._inflight.items() if st[0] is pool and not f.done()]
            if not live or not all(st[1] for st in live):
                return
        self._terminate(pool)

    def _forget(self, fut: Future[bytes]) -> None:
        with self._lock:
            self._inflight.pop(fut, None)

    # -- the seam ----------------------------------------------------------------------------

    def check(self, work: Sequence[Work]) -> None:
        """Refuse work that standard pickle cannot send (lambdas, closures) before the run."""
        where = "a worker process"
        stale_main = False
        for task, agent, fn in unique_work(work).values():
            try:
                pickle.dumps(shippable(fn, task), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise not_sendable(
                    task, agent, fn, where=where, executor=self.name, cause=exc, fix=_FIX
                ) from None
            if defining_module(fn) != "__main__":
                continue
            if self.start_method != "fork" and main_is_interactive():
                raise not_sendable(
                    task, agent, fn, where=where, executor=self.name,
                    cause=f"it is defined in this notebook, which {self.start_method!r} worker "
                    f"processes cannot import",
                    fix="Move it into a .py module and import it, or use "
                    "ProcessExecutor(mp_context='fork')",
                )
            stale_main = stale_main or self._pool_lacks(fn)
        if stale_main and self._pool is not None:
            # Forked workers hold __main__ as it was when they started: a function defined or
            # redefined since then would be missing or stale there. Fork a fresh pool.
            self._retire(self._pool)

    def _pool_lacks(self, fn: Any) -> bool:
        root = fn
        while isinstance(root, functools.partial):
            root = root.func
        root = getattr(root, "__func__", root)
        name = getattr(root, "__qualname__", "").split(".")[0]
        main = sys.modules.get("__main__")
        obj = getattr(main, name, None) if name else None
        return obj is not None and self._main_ids.get(name) != id(obj)

    async def run(self, fn: Callable[[Any], Any], ctx: Any) -> Any:
        tid = ctx.task.task_id
        try:
            payload = pickle.dumps(
                (shippable(fn, ctx.task), light_context(ctx)), pickle.HIGHEST_PROTOCOL
            )
        except Exception as exc:
            raise self._payload_error(fn, ctx, exc) from None
        pool = self._current_pool()
        try:
            cf = pool.submit(_run_packed, payload)
        except (BrokenProcessPool, RuntimeError):  # broken or retired by another call: renew
            self._retire(pool)
            pool = self._current_pool()
            cf = pool.submit(_run_packed, payload)
        state = [pool, False]
        with self._lock:
            self._inflight[cf] = state
        try:
            data = await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            if cf.cancel() or cf.done():
                self._forget(cf)
            else:  # its process is busy with it: abandon it, stop the pool if nothing else runs
                state[1] = True
                cf.add_done_callback(self._forget)
                self._reap(pool)
            raise
        except BrokenProcessPool as exc:
            self._forget(cf)
            self._retire(pool)
            raise WorkerLostError(
                f"the worker process running task {tid!r} died before it finished ({exc}); "
                f"the attempt is retried. If it keeps happening the work is crashing its "
                f"process (out of memory, a native crash, os._exit)",
                task_id=tid,
                worker="a process of the pool",
                retries=self.lost_worker_retries,
            ) from exc
        self._forget(cf)
        self._reap(pool)
        return pickle.loads(data)

    def _payload_error(self, fn: Any, ctx: Any, exc: Exception) -> TaskNotSendableError:
        try:
            pickle.dumps(shippable(fn, ctx.task), pickle.HIGHEST_PROTOCOL)
        except Exception:
            return not_sendable(
                ctx.task, ctx.agent, fn, where="a worker process", executor=self.name,
                cause=exc, fix=_FIX,
            )
        bad = []
        for dep, value in ctx.inputs.items():
            try:
                pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
            except Exception:
                bad.append(f"{dep!r} ({type(value).__name__})")
        what = f"the result(s) of {', '.join(bad)}" if bad else "its context"
        return TaskNotSendableError(
            f"task {ctx.task.task_id!r} cannot be sent to a worker process: {what} cannot be "
            f"pickled ({type(exc).__name__}: {exc}). Make those tasks return plain data, or run "
            f"this task on a ThreadExecutor",
            task_id=ctx.task.task_id,
            executor=self.name,
        )

    def close(self) -> None:
        """Stop the pool: queued calls are dropped, running ones are left to finish."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._size = 0

    def __repr__(self) -> str:
        return (
            f"<ProcessExecutor {self.start_method} max_workers={self.max_workers or self._limit()}"
            f"{' running' if self._pool is not None else ''}>"
        )
