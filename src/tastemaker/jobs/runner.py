"""Generation jobs: a persisted state machine (:mod:`.state`), run by a worker pool behind a bounded queue.

* **Persisted**: every move of a job is an atomic compare-and-set (:class:`~.state.JobStates`), so a worker,
  a shutdown and a restart can never both "win" the same job.
* **Bounded**: at most ``workers + queue_size`` jobs are admitted; beyond that :meth:`JobRunner.reserve`
  raises :class:`~tastemaker.errors.QueueFullError` (503 + Retry-After) — nothing piles up
  (:mod:`.admission`).
* **Nothing silently lost**: the selfie lives only in this process's memory (never stored), so a job
  cannot outlive the process. On start, :meth:`JobRunner.recover` fails every job still ``queued`` or
  ``running`` with code ``interrupted``; on shutdown, jobs that do not finish within the grace period
  get the same. Either way the job says so and its images go back to the quota.
* **Isolated**: with ``executor="process"`` (the default) the CPU work — face detection, profile
  building, rendering — runs in spawned worker processes (:mod:`.pools`); a crash in native code fails one
  job (``worker_crashed``) instead of the server, and a job over its time limit has its own worker stopped,
  not its neighbours'. ``executor="thread"`` runs the same functions in threads (tests, debugging).
* **Cancellable**: :meth:`JobRunner.cancel` ends a queued job before it starts (its queue slot is free at
  once) and a running one by stopping its worker process — that one only, as a time limit does; in thread
  mode the render cannot be stopped, so it finishes and its result is dropped. The quota goes back either way.

One server process per database: recovery assumes any active job belongs to a process that is gone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audit import AuditLog
from ..errors import ForwardedError, QueueFullError, WorkerCrashedError
from ..store import Store
from ..store.records import Job
from . import tasks
from .admission import Admission, Slot
from .pools import CPU_NICE, JOB_NICE, Foreground, WorkerPool
from .state import INTERRUPTED, INTERRUPTED_MESSAGE, JOB_TIMEOUT, WORKER_CRASHED, JobStates
from .watch import ProgressSink, Watch, Watchers

log = logging.getLogger("tastemaker.jobs")


@dataclass
class JobPayload:
    """What a queued job needs that is not in the database. Lives only in memory."""

    job_id: str
    account_id: str
    request: dict[str, Any]
    selfie: bytes = field(repr=False)
    selfie_name: str
    face: Any = field(repr=False)
    identity: Any = field(repr=False)
    profile_json: str = field(repr=False)
    #: the stored board's pins the engine may draw from (their bytes are in the store's blobs); empty for a
    #: profile upload
    pins: list[Any] = field(default_factory=list, repr=False)


class JobRunner:
    """Admits, runs, persists and reports generation jobs for one server process."""

    #: how often an event stream re-reads its job when nothing woke it (every change here wakes it)
    poll_s = 10.0
    #: which plugins the jobs run and what a raising one does (the server's settings; see tastemaker.plugins)
    plugins: tuple[str, str] = ("all", "")

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        *,
        workers: int = 1,
        queue_size: int = 8,
        executor: str = "process",
        engine: str = "look",
        identity_threshold: float = 0.35,
        max_pixels: int = 40_000_000,
        max_bytes: int = 50 * 1024 * 1024,
        data_dir: Path | str | None = None,
        job_timeout_s: float = 600.0,
        provenance_secret: str | None = None,
    ) -> None:
        self.store, self.audit = store, audit
        self.states = JobStates(store, audit)
        self.provenance_secret = provenance_secret
        self.job_timeout_s = job_timeout_s
        self.data_dir = None if data_dir is None else str(data_dir)
        self.workers, self.queue_size = workers, queue_size
        self.executor_kind = executor
        self.engine, self.identity_threshold = engine, identity_threshold
        self.max_pixels, self.max_bytes = max_pixels, max_bytes
        self.capacity = workers + queue_size
        self.admission = Admission(self.capacity)
        self.watchers = Watchers()
        self._queue: queue.Queue[tuple[JobPayload, Slot] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._accepting = False
        self._lock = threading.Lock()
        self._running: set[str] = set()  # taken off the queue by a worker thread, not finished yet
        #: queued jobs no worker has taken yet, with their slots: a cancel frees the slot at once
        self._waiting: dict[str, tuple[JobPayload, Slot]] = {}
        self._renders: dict[str, Future[Any]] = {}  # running jobs' renders in the generation pool
        self._doomed: set[str] = set()  # cancelled while running, before their render was submitted
        self._durations: deque[float] = deque(maxlen=20)
        self._progress_sink = ProgressSink(self.states.progress, self.watchers.notify)
        self._cpu: WorkerPool | None = None
        self._gen: WorkerPool | None = None
        #: the CPU pool's tasks are on a request's path: background pools (verify) step aside for them
        self.foreground = Foreground()

    # ------------------------------------------------------------------ lifecycle
    def _make_pools(self) -> None:
        process = self.executor_kind == "process"
        if process:
            self._progress_sink.start()
        # face checks and profiles: the models, no engine (threads: two, not warmed)
        self._cpu = WorkerPool(
            "cpu", 1 if process else 2, executor=self.executor_kind, nice=CPU_NICE,
            warm=(tasks.task_warm, ()) if process else None, foreground=self.foreground,
        )
        self._gen = WorkerPool(
            "gen", self.workers, executor=self.executor_kind, nice=JOB_NICE, sink=self._progress_sink.queue,
            warm=(tasks.task_warm, (self.engine,)),
            crash_message="the worker process rendering this job crashed; retry it",
        )
        self._cpu.start()
        self._gen.start()

    def start(self) -> list[str]:
        """Recover what a previous process left behind, then start taking jobs. Returns recovered ids."""
        recovered = self.recover()
        self._make_pools()
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"tm-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self._accepting = True
        return recovered

    def recover(self) -> list[str]:
        """Fail, explicitly, every job a previous process left queued or running (see module docstring)."""
        return self.states.recover()

    def stop(self, grace_s: float = 30.0) -> list[str]:
        """Stop admitting; let queued and running jobs finish for up to ``grace_s``; fail the rest."""
        self._accepting = False
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + grace_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        leftovers: list[str] = []
        while True:  # jobs the workers did not reach
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                continue
            with self._lock:
                claimed = self._waiting.pop(item[0].job_id, None) is not None
            if claimed:  # (a job cancelled while queued had its slot released then)
                leftovers.append(item[0].job_id)
                item[1].release()
                self.admission.job_done(item[0].account_id)
        with self._lock:
            leftovers.extend(self._running)
        for job_id in leftovers:
            self.states.fail(job_id, INTERRUPTED, INTERRUPTED_MESSAGE)
            self.watchers.notify(job_id)
        for pool in (self._cpu, self._gen):
            if pool is not None:
                pool.close()  # no worker process outlives this; a render still waited on fails
        self._progress_sink.stop()
        self._threads.clear()
        return leftovers

    # ------------------------------------------------------------------ admission
    @property
    def accepting(self) -> bool:
        return self._accepting

    def retry_after(self) -> float:
        """A rough wait until a slot frees: recent job time x jobs ahead / workers."""
        avg = sum(self._durations) / len(self._durations) if self._durations else 5.0
        return min(60.0, max(1.0, avg * max(1, self.stats()["queued"]) / self.workers))

    def has_capacity(self) -> bool:
        """Advisory (no reservation): lets a request fail fast before doing expensive work."""
        return self._accepting and self.stats()["active"] + self.admission.in_flight() < self.capacity

    def account_load(self, account_id: str) -> int:
        """This account's generations in this process: queued, running, or being admitted. No database read,
        so a flood of requests over the limit is turned away for almost nothing."""
        return self.admission.load(account_id)

    def admitting(self, account_id: str) -> int:
        """Generations of this account between "request received" and "job queued" (the face check)."""
        return self.admission.admitting(account_id)

    def begin_admission(self, account_id: str, active: int, limit: int) -> bool:
        """Count one admission in flight, unless ``active`` + in flight already reaches ``limit``.

        Bounds what a burst from one account can make the CPU pool do; :meth:`end_admission` releases it.
        """
        return self.admission.begin(account_id, active, limit)

    def end_admission(self, account_id: str) -> None:
        self.admission.end(account_id)

    def reserve(self) -> Slot:
        """Claim a place for one job, or raise 503 queue_full. Release the slot if the job is not submitted."""
        if not self._accepting:
            raise QueueFullError("the server is shutting down and takes no new generations", retry_after_s=5)
        return self.admission.reserve(self.retry_after)

    def stage(self, s: Any, job: Job, payload: JobPayload) -> None:
        """Keep what ``payload`` holds with the job, in the transaction ``s`` that creates it. Here nothing: the
        job runs in this process, from memory (a queue runner seals it into the database)."""

    def submit(self, slot: Slot, payload: JobPayload) -> None:
        self.admission.job_added(payload.account_id)
        with self._lock:
            self._waiting[payload.job_id] = (payload, slot)
        self._queue.put((payload, slot))

    def _claim(self, job_id: str) -> bool:
        """Take a queued job off the waiting list for running (or failing); False if a cancel took it first."""
        with self._lock:
            if self._waiting.pop(job_id, None) is None:
                return False
            self._running.add(job_id)
            return True

    def cancel(self, job_id: str, *, request_id: str | None = None) -> Job:
        """Cancel a queued or running job (the account asked): it ends ``cancelled``, its quota goes back.

        The state moves first (a compare-and-set, so a job that finishes meanwhile is a
        :class:`~tastemaker.errors.JobFinishedError`, not a lost result), then the work stops: a queued job's
        slot is freed now and no worker will start it; a running job's render is cancelled, which stops its
        worker process (process mode; in thread mode its result is dropped when it ends). Watchers are told.
        Ownership is the caller's business; this takes any job id.
        """
        job, _ = self.states.cancel(job_id, request_id=request_id)
        with self._lock:
            waiting = self._waiting.pop(job_id, None)
            render = self._renders.get(job_id)
            if waiting is None and render is None and job_id in self._running:
                self._doomed.add(job_id)  # between "taken off the queue" and "render submitted": _run sees it
        if waiting is not None:
            waiting[1].release()
            self.admission.job_done(waiting[0].account_id)
        if render is not None and self._gen is not None:
            self._gen.cancel(render)
        log.info("job %s: cancelled", job_id)
        self.watchers.notify(job_id)
        return job

    def worker_pids(self) -> list[int]:
        """Process ids of the generation workers (process mode; empty in thread mode). For operators and tests."""
        return self._gen.pids() if self._gen is not None else []

    def stats(self) -> dict[str, int]:
        with self._lock:
            running, queued = len(self._running), len(self._waiting)
        return {"queued": queued, "running": running, "active": queued + running, "capacity": self.capacity}

    def call(self, fn: Callable[..., tasks.Outcome], *args: Any) -> Any:
        """Run a short CPU task (face check, profile build) in the CPU pool and wait for it.

        Called from request threads: in process mode the work happens off the GIL, so other requests
        keep flowing while one waits here.
        """
        assert self._cpu is not None, "runner not started"
        return self._cpu.call(fn, *args)

    async def call_async(self, fn: Callable[..., tasks.Outcome], *args: Any) -> Any:
        """:meth:`call` for async code: awaits the CPU pool without holding a thread."""
        assert self._cpu is not None, "runner not started"
        return await self._cpu.call_async(fn, *args)

    # ------------------------------------------------------------------ watching
    def watch(self, job_id: str) -> Watch:
        """Subscribe (from async code) to a job's changes; use as a context manager."""
        return self.watchers.add(job_id)

    # ------------------------------------------------------------------ running
    def _progress(self, job_id: str, stage: str, done: int, total: int) -> None:
        """Persist progress (throttled) and notify the job's watchers."""
        self._progress_sink.progress(job_id, stage, done, total)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            payload, slot = item
            if not self._claim(payload.job_id):
                continue  # cancelled while queued: its slot and count were released then
            try:
                self._run(payload)
            except Exception:  # never let a worker thread die: the job is failed, the thread goes on
                log.exception("job %s: unexpected failure in the runner", payload.job_id)
                self.states.fail(payload.job_id, "internal_error", "the job runner failed unexpectedly")
            finally:
                slot.release()
                self.admission.job_done(payload.account_id)
                with self._lock:
                    self._running.discard(payload.job_id)
                    self._renders.pop(payload.job_id, None)
                    self._doomed.discard(payload.job_id)
                self._progress_sink.forget(payload.job_id)
                self.watchers.notify(payload.job_id)

    def _run(self, p: JobPayload) -> None:
        if not self.states.start(p.job_id):
            return  # failed or cancelled meanwhile (shutdown, recovery, the account): nothing to do
        self.watchers.notify(p.job_id)
        t0 = time.monotonic()
        timeout = self.job_timeout_s
        sink = self._progress if self.executor_kind == "thread" else None
        assert self._gen is not None
        try:
            render = self._gen.submit(
                tasks.task_generate,
                p.job_id,
                p.request,
                p.selfie,
                p.selfie_name,
                p.face,
                p.identity,
                p.profile_json,
                self.engine,
                self.identity_threshold,
                self.max_pixels,
                self.max_bytes,
                sink,
                p.account_id,
                self.data_dir,
                p.pins,
                self.provenance_secret,
                self.store.blobs,
                True,
                *self.plugins,
                timeout=timeout,
            )
            with self._lock:
                self._renders[p.job_id] = render
                doomed = p.job_id in self._doomed
            if doomed:  # cancelled before the render was registered: stop it now
                self._gen.cancel(render)
            images = render.result(timeout if self.executor_kind == "thread" else None)
        except CancelledError:  # the account cancelled it and its worker was stopped; the job says so already
            log.info("job %s: render stopped (cancelled)", p.job_id)
        except TimeoutError:
            # In process mode the pool has stopped this job's worker (only that one) and starts another; in
            # thread mode the render finishes and is dropped. Either way the quota goes back.
            log.error("job %s: still running after %g s; stopped", p.job_id, timeout)
            self.states.fail(
                p.job_id, JOB_TIMEOUT,
                f"the generation took longer than {timeout:g} s and was stopped; its images went back "
                "to the quota (try fewer or smaller images)",
            )
        except ForwardedError as exc:
            self.states.fail(p.job_id, exc.code, exc.message)
        except WorkerCrashedError as exc:
            log.error("job %s: the worker process died", p.job_id)
            self.states.fail(p.job_id, WORKER_CRASHED, exc.message)
        except Exception as exc:  # the pool shut down under it, at shutdown
            self.states.fail(
                p.job_id,
                INTERRUPTED if not self._accepting else "internal_error",
                INTERRUPTED_MESSAGE if not self._accepting else f"the job failed ({type(exc).__name__})",
            )
        else:
            self._progress(p.job_id, "store", 0, len(images))
            self.states.succeed(p.job_id, images)
        finally:
            self._durations.append(time.monotonic() - t0)
