"""Worker pools: spawned processes (:mod:`pebble`) or threads behind one small interface.

``executor="process"`` (the default) runs tasks in spawned worker processes, set up by
:func:`~tastemaker.jobs.tasks.init_worker` (die with the server, a lower CPU priority, the progress queue).
dlib holds the GIL for ~100 ms at a time, which would otherwise stall every API request; a crash in native
code fails one task (:class:`~tastemaker.errors.WorkerCrashedError`) instead of the server, and the pool
starts a new worker in its place. A task with a ``timeout`` that runs past it has its worker stopped —
that worker only: tasks running beside it in the same pool go on — and fails with :class:`TimeoutError`.
:meth:`WorkerPool.cancel` stops one task the same way (a generation its account cancelled).

``executor="thread"`` runs the same functions in threads (tests, debugging); a thread cannot be stopped, so
there a timeout only stops the wait, and the task's late result is dropped; a cancel stops only a task that
has not started yet.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pebble import ProcessExpired, ProcessPool

from ..errors import WorkerCrashedError
from .tasks import Outcome, init_worker, unwrap

#: CPU priority (nice) of worker processes: face checks are on a request's path, renders are batch work.
CPU_NICE = 5
JOB_NICE = 10
#: Provenance checks: open to every tier, so the lowest priority of all (see :class:`~.verify.VerifyPool`).
VERIFY_NICE = 19

Warm = tuple[Callable[..., Any], tuple[Any, ...]]

#: the longest a background pool stays paused at a stretch, however busy the foreground is (no starvation)
MAX_PAUSE_S = 4.0


class Foreground:
    """Work on a caller's path (face checks, profile builds) that background pools step aside for.

    On two cores a niced worker still takes the other core, the memory bandwidth and the caches while a
    request's work runs; a lower priority is not enough (a verify flood took another account's p99 to over
    twice its idle value). While any foreground task is in flight, the background pools' worker processes
    are stopped (SIGSTOP) and continued (SIGCONT) when the last one ends — after at most
    :data:`MAX_PAUSE_S`, so a steady stream of foreground work never starves them: the next pause waits
    until the foreground has been idle once.
    """

    def __init__(self, max_pause_s: float = MAX_PAUSE_S) -> None:
        self.max_pause_s = max_pause_s
        self._lock = threading.Lock()
        self._busy = 0
        self._paused = False
        self._spent = False  # this busy stretch already had its pause
        self._background: list[WorkerPool] = []
        self._timer: threading.Timer | None = None

    def add_background(self, pool: WorkerPool) -> None:
        with self._lock:
            self._background.append(pool)

    def enter(self) -> None:
        """One more foreground task in flight."""
        with self._lock:
            self._busy += 1
            if self._busy > 1 or self._paused or self._spent or not self._background:
                return
            self._paused = True
            for pool in self._background:
                pool.pause()
            self._timer = threading.Timer(self.max_pause_s, self._time_up)
            self._timer.daemon = True
            self._timer.start()

    def exit(self) -> None:
        """One foreground task done (its value or error is in)."""
        with self._lock:
            self._busy = max(0, self._busy - 1)
            if self._busy == 0:
                self._spent = False
                self._resume()

    def _time_up(self) -> None:
        with self._lock:
            if self._paused:
                self._spent = True
                self._resume()

    def _resume(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._paused:
            self._paused = False
            for pool in self._background:
                pool.resume()

    @property
    def paused(self) -> bool:
        """Whether the background pools are stopped right now."""
        return self._paused


class WorkerPool:
    """A pool of ``workers`` worker processes (or threads) that runs :mod:`~tastemaker.jobs.tasks` functions.

    :meth:`submit` returns a future that holds the task's value, or raises its error
    (:class:`~tastemaker.errors.ForwardedError`), :class:`TimeoutError`, or
    :class:`~tastemaker.errors.WorkerCrashedError` (``crash_message``); :meth:`call` and :meth:`call_async`
    wait for it. ``warm`` (a task and its arguments) runs once per worker whenever a pool is (re)built, so
    the first request does not load the models. A pool broken as a whole is replaced on the next submit.
    """

    def __init__(
        self,
        name: str,
        workers: int,
        *,
        executor: str = "process",
        nice: int = 0,
        sink: Any = None,
        warm: Warm | None = None,
        crash_message: str = "a worker process crashed while handling this request; retry it",
        foreground: Foreground | None = None,
    ) -> None:
        if executor not in ("process", "thread"):
            raise ValueError(f"executor must be 'process' or 'thread', not {executor!r}")
        self.name, self.workers, self.executor = name, workers, executor
        self.nice, self.sink, self.warm, self.crash_message = nice, sink, warm, crash_message
        self._lock = threading.Lock()
        self._pool: ProcessPool | ThreadPoolExecutor | None = None
        self._closed = False
        self._pending: dict[Future[Any], Future[Any]] = {}  # what submit returned -> the executor's own future
        self._cancelling: set[Future[Any]] = set()  # being stopped by cancel(), not by a shutdown
        self._registry: Any = None  # worker pids, put there by each worker as it starts (process mode)
        self._pids: set[int] = set()
        self.foreground = foreground  # tasks of this pool are on a caller's path: background pools step aside
        self._stopped: list[int] = []  # workers stopped by pause(), continued by resume()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Build the pool (and warm its workers); after :meth:`close`, open it again."""
        with self._lock:
            self._closed = False
            if self._pool is None:
                self._pool = self._build()

    def _build(self) -> ProcessPool | ThreadPoolExecutor:
        pool: ProcessPool | ThreadPoolExecutor
        if self.executor == "thread":
            pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"tm-{self.name}")
            if self.warm is not None:
                pool.submit(self.warm[0], *self.warm[1])
            return pool
        ctx = multiprocessing.get_context("spawn")
        if self._registry is None:
            self._registry = ctx.SimpleQueue()
        pool = ProcessPool(
            self.workers,
            initializer=init_worker,
            initargs=(self.sink, self.nice, os.getpid(), self._registry),
            context=ctx,
        )
        if self.warm is not None:
            for _ in range(self.workers):  # start the workers now, so the first task does not wait for them
                pool.schedule(self.warm[0], args=self.warm[1])
        return pool

    def close(self) -> None:
        """Stop the workers (none outlives this call) and fail what still waits on them."""
        self.resume()
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            pending, self._pending = list(self._pending), {}
        if pool is not None:
            _shut(pool)
        for fut in pending:
            _settle(fut, exc=self._shut_down())

    def _shut_down(self) -> RuntimeError:
        return RuntimeError(f"the {self.name} pool was shut down")

    def _replace(self, broken: ProcessPool | ThreadPoolExecutor) -> None:
        """Replace ``broken`` (unless it was already replaced, or the pool is closed)."""
        with self._lock:
            if self._pool is not broken or self._closed:
                return
            self._pool = self._build()
        _shut(broken)

    def pids(self) -> list[int]:
        """Process ids of the live workers (process mode; empty in thread mode)."""
        with self._lock:
            if self._registry is None:
                return []
            while not self._registry.empty():
                self._pids.add(int(self._registry.get()))
            self._pids &= {p.pid for p in multiprocessing.active_children() if p.pid is not None}
            return sorted(self._pids)

    def pause(self) -> None:
        """Stop this pool's worker processes where they are (SIGSTOP; process mode, else nothing)."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            self._stopped.append(pid)

    def resume(self) -> None:
        """Continue what :meth:`pause` stopped."""
        stopped, self._stopped = self._stopped, []
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------------ running
    def submit(self, fn: Callable[..., Outcome], *args: Any, timeout: float | None = None) -> Future[Any]:
        """Start ``fn(*args)``; the returned future settles as the class docstring says.

        ``timeout`` (seconds from the task's start) stops the worker running it in process mode; in thread
        mode :meth:`call` stops waiting instead. Cancelling the returned future does not stop the task:
        :meth:`cancel` does.
        """
        fg = self.foreground
        if fg is not None:
            fg.enter()
        try:
            inner = self._schedule(fn, args, timeout)
        except BaseException:
            if fg is not None:
                fg.exit()
            raise
        outer: Future[Any] = Future()
        with self._lock:
            self._pending[outer] = inner
        inner.add_done_callback(lambda done: self._settle_from(done, outer))
        if fg is not None:
            outer.add_done_callback(lambda _: fg.exit())
        return outer

    def cancel(self, fut: Future[Any]) -> bool:
        """Stop the task behind ``fut`` (a future :meth:`submit` returned); True if it will not deliver a value.

        A task not started yet never starts. A running one has its worker process stopped — that worker only,
        as a timeout does, and the pool starts another — in process mode; in thread mode a running task cannot
        be stopped, so this returns False and ``fut`` settles when the task ends. A cancelled ``fut`` raises
        :class:`concurrent.futures.CancelledError`.
        """
        with self._lock:
            inner = self._pending.get(fut)
            if inner is None:
                return False  # settled already
            self._cancelling.add(fut)
        try:
            stopped = inner.cancel()  # False: a thread is running it; its callback (below) runs in this call
        finally:
            with self._lock:
                self._cancelling.discard(fut)
        if stopped:
            fut.cancel()
        return stopped

    def call(self, fn: Callable[..., Outcome], *args: Any, timeout: float | None = None) -> Any:
        """Run a task and wait for its value (raises as :meth:`submit` says)."""
        fut = self.submit(fn, *args, timeout=timeout)
        return fut.result(timeout if self.executor == "thread" else None)

    async def call_async(self, fn: Callable[..., Outcome], *args: Any) -> Any:
        """:meth:`call` for async code: awaits the pool without holding a thread."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _schedule(self, fn: Callable[..., Outcome], args: tuple[Any, ...], timeout: float | None) -> Future[Any]:
        for attempt in (0, 1):
            with self._lock:
                if self._pool is None and not self._closed:
                    self._pool = self._build()
                pool = self._pool
            if pool is None:
                raise self._shut_down()
            try:
                if isinstance(pool, ProcessPool):
                    return pool.schedule(fn, args=args, timeout=timeout)
                return pool.submit(fn, *args)
            except (BrokenProcessPool, RuntimeError):  # broken as a whole (or shut down): once more on a new one
                if attempt:
                    raise
                self._replace(pool)
        raise AssertionError("unreachable")

    def _settle_from(self, done: Future[Outcome], outer: Future[Any]) -> None:
        with self._lock:
            self._pending.pop(outer, None)
        try:
            outcome = done.result()
        except TimeoutError:  # pebble stopped the worker; the pool starts another in its place
            _settle(outer, exc=TimeoutError("the task ran past its time limit and was stopped"))
        except (ProcessExpired, BrokenProcessPool):
            # one worker died (a native crash, the OOM killer) and is replaced already, or the pool as a whole
            # broke (a worker died while no task ran), and the next submit replaces it. Not when it was shut down.
            crashed = not self._closed
            _settle(outer, exc=WorkerCrashedError(self.crash_message) if crashed else self._shut_down())
        except CancelledError as exc:
            with self._lock:
                asked = outer in self._cancelling
            if asked:  # cancel() stopped it: the waiter sees a cancelled future
                outer.cancel()
            else:  # the executor dropped it (a shutdown)
                _settle(outer, exc=RuntimeError(f"the task was cancelled ({exc})"))
        except BaseException as exc:  # a task that raised instead of returning an outcome
            _settle(outer, exc=exc)
        else:
            try:
                _settle(outer, value=unwrap(outcome))
            except Exception as exc:
                _settle(outer, exc=exc)


def _settle(fut: Future[Any], *, value: Any = None, exc: BaseException | None = None) -> None:
    """Set a future's result or exception, unless it is settled already (cancelled by a waiter, closed)."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)
    except InvalidStateError:
        pass


def _shut(pool: ProcessPool | ThreadPoolExecutor) -> None:
    if isinstance(pool, ProcessPool):
        pool.stop()  # pebble terminates every worker (SIGKILL after a grace) and joins it
        pool.join()
    else:
        pool.shutdown(wait=False, cancel_futures=True)
