"""``tastemaker worker``: runs generation jobs from the queue (:mod:`.queue`), on any machine that reaches the
database, the queue and the blob store.

One :class:`QueueWorker` is one Procrastinate worker (its heartbeat in the queue's table) plus a pool of
``concurrency`` render processes (:class:`~.pools.WorkerPool`: a job past its time limit has its own process
stopped, nothing else). Each delivery of a job (:meth:`QueueWorker.handle`):

1. **claims** the job row with a lease (:meth:`~tastemaker.store.StoreSession.lease_job`): a job that has ended
   is a no-op; one another worker holds is left to it while that worker renews its lease, and taken over once
   the lease runs out (its worker died); a job taken more than ``max_attempts`` times fails as
   ``worker_crashed`` with its quota given back;
2. **renders** it in the pool with the job's sealed input (:mod:`.sealed`), renewing the lease every third of
   ``lease_s`` — a renewal that fails (the account cancelled, or another worker took over) stops the render;
3. **stages** the outputs on the row (blobs stored; provenance records marked and signed, not yet logged),
   **logs** their records (:meth:`~tastemaker.provenance.Provenance.commit_once`: a record already logged is
   not logged again), and **succeeds** the job — in one transaction with its images and audit entry, only
   while it still holds the lease. A worker that takes over a staged job goes straight to logging.

Alongside, a sweep (every ``sweep_s``, in every worker) retries the Procrastinate tasks of workers whose
heartbeat stopped (Procrastinate's stalled-job retry), and defers a task again for any job that has none:
queued too long (its API process died before deferring it) or running with a lease that ended (its worker was
shut down). Progress goes to the job row (at most four writes a second) with a ``NOTIFY``, so any API process
streams it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from concurrent.futures import CancelledError, Future
from datetime import timedelta
from typing import Any

import numpy as np

from ..audit import AuditLog
from ..errors import ForwardedError, StoreError, WorkerCrashedError
from ..store import Store
from ..store.records import RUNNING, TERMINAL, Job, utcnow
from . import tasks
from .pools import JOB_NICE, WorkerPool
from .queue import QUEUE, TASK, defer_async, queue_app
from .runner import JobPayload
from .sealed import unseal
from .state import INTERRUPTED, JOB_TIMEOUT, WORKER_CRASHED, JobStates
from .watch import ProgressSink

log = logging.getLogger("tastemaker.jobs")


class QueueWorker:
    """Runs generation jobs from the queue (see the module docstring). Library code: every setting is a
    parameter (``tastemaker worker`` reads them from the environment)."""

    #: which plugins the jobs run and what a raising one does (the server's settings; see tastemaker.plugins)
    plugins: tuple[str, str] = ("all", "")

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        *,
        queue_url: str,
        secret: str,
        concurrency: int = 1,
        threads: int = 0,
        engine: str = "look",
        identity_threshold: float = 0.35,
        max_pixels: int = 40_000_000,
        max_bytes: int = 50 * 1024 * 1024,
        data_dir: str,
        job_timeout_s: float = 600.0,
        provenance_secret: str | None = None,
        lease_s: float = 30.0,
        heartbeat_s: float = 10.0,
        stalled_s: float = 30.0,
        sweep_s: float = 10.0,
        requeue_after_s: float = 30.0,
        max_attempts: int = 3,
        executor: str = "process",
    ) -> None:
        self.store, self.audit, self.states = store, audit, JobStates(store, audit)
        self.queue_url, self.secret = queue_url, secret
        self.concurrency, self.threads = concurrency, threads
        self.engine, self.identity_threshold = engine, identity_threshold
        self.max_pixels, self.max_bytes = max_pixels, max_bytes
        self.data_dir, self.provenance_secret = data_dir, provenance_secret
        self.job_timeout_s = job_timeout_s
        self.lease_s, self.heartbeat_s, self.stalled_s = lease_s, heartbeat_s, stalled_s
        self.sweep_s, self.requeue_after_s, self.max_attempts = sweep_s, requeue_after_s, max_attempts
        self.executor = executor
        #: this worker's name on the leases it holds (host, pid and a random part: a restarted pid differs)
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.app: Any = None
        self._pool: WorkerPool | None = None
        # progress is written to the job row; PostgreSQL notifies the API processes (no watchers here)
        self._progress_sink = ProgressSink(self.states.progress)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the render pool (and its progress listener); :meth:`run` calls it."""
        if self.executor == "process":
            self._progress_sink.start()
        self._pool = WorkerPool(
            "gen", self.concurrency, executor=self.executor, nice=JOB_NICE, sink=self._progress_sink.queue,
            warm=(tasks.task_limit_threads, (self.threads, self.engine)),
            crash_message="the worker process rendering this job crashed; retry it",
        )
        self._pool.start()

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._progress_sink.stop()

    def pids(self) -> list[int]:
        """The render processes' ids."""
        return self._pool.pids() if self._pool is not None else []

    async def run(self, *, install_signal_handlers: bool = True, shutdown_grace_s: float | None = 30.0) -> None:
        """Work until SIGINT / SIGTERM: the Procrastinate worker (jobs it has not finished ``shutdown_grace_s``
        after the signal are given back for another worker) and the sweep."""
        self.start()
        self.app = queue_app(self.queue_url, pool_size=self.concurrency + 4)
        self.app.task(name=TASK, queue=QUEUE)(self.handle)
        try:
            async with self.app.open_async():
                sweeper = asyncio.create_task(self._sweep_forever(), name="tm-sweep")
                try:
                    await self.app.run_worker_async(
                        queues=[QUEUE], concurrency=self.concurrency, name=f"tastemaker {self.owner}",
                        update_heartbeat_interval=self.heartbeat_s, stalled_worker_timeout=self.stalled_s,
                        shutdown_graceful_timeout=shutdown_grace_s, install_signal_handlers=install_signal_handlers,
                        fetch_job_polling_interval=min(5.0, self.sweep_s),
                    )
                finally:
                    sweeper.cancel()
        finally:
            self.stop()

    # ------------------------------------------------------------------ one delivery
    async def handle(self, job_id: str) -> None:
        """The queue task: run job ``job_id`` once, whatever happened to it before (see the module docstring)."""
        claimed = await self._claim_or_wait(job_id)
        if claimed is None:
            return
        job, payload = claimed
        holder: dict[str, Future[Any]] = {}
        keeper = asyncio.create_task(self._keep_lease(job_id, holder), name=f"tm-lease-{job_id}")
        try:
            staged = job.staged
            if staged is None:
                assert payload is not None
                staged = await self._render_and_stage(job, payload, holder)
            if staged is not None:
                await asyncio.to_thread(self._log_and_finish, job_id, staged)
        except asyncio.CancelledError:  # the worker is stopping past its grace: give the job back at once
            fut = holder.get("render")
            if fut is not None and self._pool is not None:
                self._pool.cancel(fut)
            await asyncio.shield(asyncio.to_thread(self._give_back, job_id))
            raise
        finally:
            keeper.cancel()
            self._progress_sink.forget(job_id)

    async def _claim_or_wait(self, job_id: str) -> tuple[Job, JobPayload | None] | None:
        """Claim the job; while another worker's lease on it is live, wait for it to run out (and take over) or
        be renewed (its worker is alive: leave the job to it)."""
        seen: Any = None
        while True:
            outcome = await asyncio.to_thread(self.claim, job_id)
            if not isinstance(outcome, Job):
                return outcome
            if seen is not None and outcome.lease_expires_at != seen:
                return None  # renewed: its worker is alive and has it
            seen = outcome.lease_expires_at
            assert seen is not None
            wait = (seen - utcnow()).total_seconds() + 0.2
            await asyncio.sleep(min(max(wait, 0.1), self.lease_s + 1))

    def claim(self, job_id: str) -> tuple[Job, JobPayload | None] | Job | None:
        """Take the job (returns it and its input; no input when its outputs are staged), or None when there is
        nothing to do here, or the job itself when another worker's lease on it is still live."""
        now = utcnow()
        with self.store.session() as s:
            job = s.load_job(job_id)
            if job is None or job.status in TERMINAL or job.lease_owner == self.owner:
                return None
            if job.status == RUNNING and job.lease_expires_at is not None and job.lease_expires_at > now:
                return job
            if not s.lease_job(job, self.owner, now=now, until=now + timedelta(seconds=self.lease_s)):
                return None  # another worker was quicker
            sealed = s.job_input(job_id)
            s.notify_job(job_id)
            s.commit()
        if job.attempts > self.max_attempts:
            log.error("job %s: taken %d times; failing it", job_id, job.attempts)
            self.states.fail(job_id, WORKER_CRASHED, f"the workers running this generation stopped {job.attempts - 1} "
                             "times; retry it", held_by=self.owner)
            return None
        if job.attempts > 1:
            log.warning("job %s: taken over (attempt %d)", job_id, job.attempts)
        if job.staged is not None:
            return job, None
        try:
            payload = unseal(self.secret, job_id, sealed) if sealed is not None else None
        except StoreError as exc:
            self.states.fail(job_id, "internal_error", exc.message, held_by=self.owner)
            return None
        if payload is None:
            self.states.fail(job_id, INTERRUPTED, "the generation's input is gone; submit it again",
                             held_by=self.owner)
            return None
        return job, payload

    async def _keep_lease(self, job_id: str, holder: dict[str, Future[Any]]) -> None:
        """Renew the lease every third of its length; when that fails, stop the render (cancelled, or lost)."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if not await asyncio.to_thread(self._renew, job_id):
                fut = holder.get("render")
                if fut is not None and self._pool is not None:
                    log.info("job %s: the lease ended (cancelled or taken over); stopping its render", job_id)
                    self._pool.cancel(fut)
                return

    def _renew(self, job_id: str) -> bool:
        with self.store.session() as s:
            ok = s.renew_lease(job_id, self.owner, utcnow() + timedelta(seconds=self.lease_s))
            s.commit()
        return ok

    def _give_back(self, job_id: str) -> None:
        """End our lease now, so the sweep hands the job to another worker without waiting for it to run out."""
        with self.store.session() as s:
            s.renew_lease(job_id, self.owner, utcnow())
            s.commit()

    async def _render_and_stage(
        self, job: Job, p: JobPayload, holder: dict[str, Future[Any]]
    ) -> list[dict[str, Any]] | None:
        """Render in the pool; on success store the blobs and stage the outputs (None: the job ended here)."""
        assert self._pool is not None
        sink = self._progress if self.executor == "thread" else None
        fut = self._pool.submit(
            tasks.task_generate, job.id, p.request, p.selfie, p.selfie_name, p.face, p.identity, p.profile_json,
            self.engine, self.identity_threshold, self.max_pixels, self.max_bytes, sink, p.account_id,
            self.data_dir, p.pins, self.provenance_secret, self.store.blobs, False, *self.plugins,
            timeout=self.job_timeout_s,
        )
        holder["render"] = fut
        fail = self.states.fail
        try:
            images: list[tasks.GeneratedBlob] = await asyncio.wrap_future(fut)
        except (CancelledError, asyncio.CancelledError):
            if fut.cancelled() and not _cancelling(asyncio.current_task()):
                return None  # our lease ended (the account cancelled the job, or another worker has it)
            raise  # this task is being cancelled: the worker is stopping (see handle)
        except TimeoutError:
            log.error("job %s: still running after %g s; stopped", job.id, self.job_timeout_s)
            await asyncio.to_thread(
                fail, job.id, JOB_TIMEOUT, f"the generation took longer than {self.job_timeout_s:g} s and was "
                "stopped; its images went back to the quota (try fewer or smaller images)", held_by=self.owner)
            return None
        except ForwardedError as exc:
            await asyncio.to_thread(fail, job.id, exc.code, exc.message, held_by=self.owner)
            return None
        except WorkerCrashedError as exc:
            await asyncio.to_thread(fail, job.id, WORKER_CRASHED, exc.message, held_by=self.owner)
            return None
        self._progress(job.id, "store", 0, len(images))
        return await asyncio.to_thread(self._stage, job.id, images)

    def _stage(self, job_id: str, images: list[tasks.GeneratedBlob]) -> list[dict[str, Any]] | None:
        staged = []
        for k, im in enumerate(images):
            assert im.pending is not None, "queue renders leave their provenance to the worker"
            record = im.record
            extra = {}
            if im.clip is not None:  # the image's clip: its blob now, its record logged with the image's
                record = {**record, "clip": {**im.clip["entry"], "sha256": self.store.blobs.put(im.clip["data"])}}
                extra = {"clip_provenance": im.clip["pending"]["record"], "clip_glob": im.clip["pending"]["glob"]}
            staged.append({
                "k": k, "sha256": self.store.blobs.put(im.data), "media_type": im.media_type, "width": im.width,
                "height": im.height, "byte_size": len(im.data), "record": record,
                "provenance": im.pending["record"], "glob": im.pending["glob"], **extra,
            })
        with self.store.session() as s:
            ok = s.stage_outputs(job_id, self.owner, staged)
            s.commit()
        return staged if ok else None

    def _log_and_finish(self, job_id: str, staged: list[dict[str, Any]]) -> None:
        """Log each staged record once, then commit the job's success (fenced by the lease)."""
        from ..pipeline import provenance_for
        from ..provenance.record import ProvenanceRecord

        prov = provenance_for(self.data_dir, self.provenance_secret)
        done = []
        for st in staged:
            index = prov.commit_once(ProvenanceRecord.from_json(st["provenance"]), np.asarray(st["glob"], np.int8))
            record = {**st["record"], "log_index": index}
            if "clip_provenance" in st:
                clip_index = prov.commit_once(ProvenanceRecord.from_json(st["clip_provenance"]),
                                              np.asarray(st["clip_glob"], np.int8))
                record["clip"] = {**record["clip"], "log_index": clip_index}
            done.append({k: v for k, v in st.items() if k not in ("provenance", "glob", "clip_provenance", "clip_glob")}
                        | {"record": record})
        if self.states.succeed_staged(job_id, done, held_by=self.owner):
            log.info("job %s: succeeded (%d image(s))", job_id, len(done))

    # ------------------------------------------------------------------ progress
    def _progress(self, job_id: str, stage: str, done: int, total: int) -> None:
        """Persist progress (throttled); PostgreSQL's NOTIFY tells the API processes."""
        self._progress_sink.progress(job_id, stage, done, total)

    # ------------------------------------------------------------------ the sweep
    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the queue is away: try again next round
                log.warning("sweep failed: %s", exc)
            await asyncio.sleep(self.sweep_s)

    async def sweep(self) -> dict[str, int]:
        """One round: retry the tasks of stalled workers, and defer a task for jobs that have none."""
        manager = self.app.job_manager
        retried = 0
        for stalled in await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_s):
            try:
                await manager.retry_job(stalled)
                retried += 1
                log.warning("queue task %s (job %s): its worker stopped; retried", stalled.id,
                            stalled.task_kwargs.get("job_id"))
            except Exception as exc:  # e.g. another task for the job is waiting already (its queueing lock)
                log.info("queue task %s: not retried (%s)", stalled.id, exc)
        now = utcnow()
        ids = await asyncio.to_thread(self._unattended, now)
        deferred = 0
        for job_id in ids:
            waiting = [j for j in await manager.list_jobs_async(queueing_lock=job_id)
                       if j.status in ("todo", "doing")]
            if not waiting and await defer_async(self.app, job_id):
                deferred += 1
                log.warning("job %s: had no queue task; queued again", job_id)
        return {"retried": retried, "deferred": deferred}

    def _unattended(self, now: Any) -> list[str]:
        with self.store.session() as s:
            return s.unattended_jobs(queued_before=now - timedelta(seconds=self.requeue_after_s),
                                     lease_ended_by=now)


def _cancelling(task: asyncio.Task[Any] | None) -> bool:
    """Whether ``task`` itself was asked to stop (as opposed to a future it awaited being cancelled)."""
    return task is not None and task.cancelling() > 0


__all__ = ["QueueWorker"]
