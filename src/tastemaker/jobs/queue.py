"""Generation jobs on a real queue: Procrastinate on PostgreSQL, for many API processes and workers.

With a queue URL (the server's ``TASTEMAKER_QUEUE_URL``) an API process does not render: it admits the job as
always (quota, per-account limit and idempotency in the database, the face check in its own CPU pool), seals
the job's input into the database in the transaction that creates the job (:mod:`.sealed`), and defers one
Procrastinate task naming the job id. ``tastemaker worker`` processes (:mod:`.worker`) take the tasks, hold a
lease on the job row while they run it, and commit its result. The job row stays the source of truth; the
queue only says "look at job X":

* **Nothing lost**: a worker killed mid-job stops sending Procrastinate heartbeats; after
  ``stalled_s`` another worker's sweep retries its task, and the new delivery takes the job over once its
  lease has run out. An API process killed after the commit loses nothing either: a job still queued after a
  while without a queue task (deferring failed, or the process died between commit and defer) is deferred
  again by the sweep. Deferring uses the job id as Procrastinate's ``queueing_lock``, so it is never waiting
  twice.
* **Once**: every delivery starts with a compare-and-set on the row (:meth:`~tastemaker.store.StoreSession.
  lease_job`): a finished job is a no-op, a job another live worker holds is left to it. Quota is reserved
  once at admission and given back at most once (a failure or cancel is one state move). Provenance records
  are staged on the row before they are logged and logged with ``commit_once``, so a takeover after a crash
  logs the same records, never new ones.
* **Events anywhere**: every state or progress change commits with a PostgreSQL ``NOTIFY``
  (:meth:`~tastemaker.store.StoreSession.notify_job`); each API process listens (:class:`JobNotifications`)
  and wakes the server-sent event streams it serves, whichever process the job was submitted to.

This module holds the pieces both sides use and the API side (:class:`QueueRunner`); the worker is in
:mod:`.worker`. Nothing here reads the environment: the URL and the timings are parameters.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from ..audit import AuditLog
from ..errors import ConfigurationError, QueueFullError
from ..store import Store
from ..store.records import Job, utcnow
from .admission import Slot
from .pools import CPU_NICE, WorkerPool
from .runner import JobPayload, JobRunner
from .sealed import seal
from .tasks import task_warm

log = logging.getLogger("tastemaker.jobs")

#: the Procrastinate task every generation job is deferred as, and its queue
TASK = "tastemaker.generate"
QUEUE = "generations"
#: the PostgreSQL channel job changes are announced on (:data:`tastemaker.store.sql.session.JOB_CHANNEL`)
CHANNEL = "tastemaker_jobs"
#: advisory lock held while one process applies Procrastinate's schema (several may start at once)
_SCHEMA_LOCK = 0x7A57E3A4


def libpq_url(url: str) -> str:
    """A libpq connection string from a SQLAlchemy or plain PostgreSQL URL (``postgresql+psycopg://`` too)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    if not url.startswith("postgresql://"):
        raise ConfigurationError(
            f"the queue URL must be a PostgreSQL URL (postgresql://user:password@host/db), not {url.split(':')[0]!r}"
        )
    return url


def queue_app(url: str, *, pool_size: int = 4) -> Any:
    """A Procrastinate app on the PostgreSQL database at ``url`` (not opened)."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(url), min_size=1, max_size=pool_size)
    return procrastinate.App(connector=connector)


def ensure_schema(url: str) -> bool:
    """Apply Procrastinate's schema to the queue database unless it is there (under an advisory lock, so
    processes starting together do not race). True when it was applied now."""
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is not None and row[0] is not None:
                return False
            from procrastinate.schema import SchemaManager

            conn.execute(SchemaManager.get_schema().encode())
            log.info("applied Procrastinate's schema to the queue database")
            return True
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


def defer(app: Any, job_id: str) -> bool:
    """Put one task for ``job_id`` on the queue (sync); False when one is already waiting (its queueing lock)."""
    from procrastinate.exceptions import AlreadyEnqueued

    try:
        app.configure_task(TASK, queue=QUEUE, queueing_lock=job_id).defer(job_id=job_id)
    except AlreadyEnqueued:
        return False
    return True


async def defer_async(app: Any, job_id: str) -> bool:
    """:func:`defer` from async code."""
    from procrastinate.exceptions import AlreadyEnqueued

    try:
        await app.configure_task(TASK, queue=QUEUE, queueing_lock=job_id).defer_async(job_id=job_id)
    except AlreadyEnqueued:
        return False
    return True


class JobNotifications:
    """``LISTEN`` on the database's job channel in a thread; each notification wakes that job's watchers.

    Reconnects after an error (a restarted database); meanwhile the event streams still re-read the job every
    few seconds (:attr:`QueueRunner.poll_s`), so a missed notification only delays an event.
    """

    def __init__(self, url: str, on_job: Any) -> None:
        self.url, self.on_job = libpq_url(url), on_job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tm-job-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.on_job(note.payload)
            except Exception as exc:  # the database went away: say so once per try, and try again
                self.connected.clear()
                log.warning("job notifications: %s; reconnecting", exc)
                self._stop.wait(1.0)


class QueueRunner(JobRunner):
    """The API process's side of queue mode: admits and stages jobs, defers them, cancels them, and wakes the
    watchers of any job any process changed. Renders nothing (``tastemaker worker`` does)."""

    #: how often an event stream re-reads its job without a notification (a safety net, see JobNotifications)
    poll_s = 2.0

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        *,
        queue_url: str,
        database_url: str,
        secret: str,
        capacity: int = 100,
        executor: str = "process",
        **kw: Any,
    ) -> None:
        super().__init__(store, audit, executor=executor, **kw)
        self.queue_url, self.database_url, self.secret = queue_url, database_url, secret
        self.capacity = capacity
        self.app: Any = None
        self.notifications = JobNotifications(database_url, self.watchers.notify)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> list[str]:
        """Open the queue and start listening; no recovery here: the workers' sweep owns unfinished jobs."""
        ensure_schema(self.queue_url)
        self.app = queue_app(self.queue_url).open()
        self._cpu = WorkerPool(
            "cpu", 1 if self.executor_kind == "process" else 2, executor=self.executor_kind, nice=CPU_NICE,
            warm=(task_warm, ()) if self.executor_kind == "process" else None, foreground=self.foreground,
        )
        self._cpu.start()
        self.notifications.start()
        self._accepting = True
        return []

    def stop(self, grace_s: float = 30.0) -> list[str]:
        """Stop admitting and listening. Jobs are the workers'; nothing here is failed."""
        self._accepting = False
        self.notifications.stop()
        if self._cpu is not None:
            self._cpu.close()
        if self.app is not None:
            self.app.close()
            self.app = None
        return []

    # ------------------------------------------------------------------ admission
    def stats(self) -> dict[str, int]:
        with self.store.session() as s:
            active = s.count_all_active_jobs()
        return {"queued": 0, "running": 0, "active": active, "capacity": self.capacity}

    def has_capacity(self) -> bool:
        return self._accepting and self.stats()["active"] + self.admission.in_flight() < self.capacity

    def retry_after(self) -> float:
        return 5.0

    def reserve(self) -> Slot:
        if not self._accepting:
            raise QueueFullError("the server is shutting down and takes no new generations", retry_after_s=5)
        if not self.has_capacity():
            raise QueueFullError(f"all {self.capacity} generation places are taken; retry later", retry_after_s=5)
        held = threading.BoundedSemaphore(1)  # nothing in-process to hold: the database counts the jobs
        held.acquire()
        return Slot(held)

    def stage(self, s: Any, job: Job, payload: JobPayload) -> None:
        """Seal the job's input into the transaction that creates it (a killed API process loses nothing)."""
        s.put_job_input(job.id, seal(self.secret, job.id, payload))

    def submit(self, slot: Slot, payload: JobPayload) -> None:
        """Defer the job's task; if the queue cannot be reached the job waits in the database for the sweep."""
        slot.release()
        try:
            defer(self.app, payload.job_id)
        except Exception as exc:
            log.warning("job %s: could not be queued now (%s); a worker's sweep will queue it", payload.job_id, exc)

    def cancel(self, job_id: str, *, request_id: str | None = None) -> Job:
        """Move the job to ``cancelled`` (quota back, audited); the worker running it sees its lease end at the
        next heartbeat and stops its render."""
        job, _ = self.states.cancel(job_id, request_id=request_id)
        log.info("job %s: cancelled", job_id)
        self.watchers.notify(job_id)
        return job

    def worker_pids(self) -> list[int]:
        return []


def stale_before(seconds: float) -> Any:
    """The moment ``seconds`` ago (UTC)."""
    return utcnow() - timedelta(seconds=seconds)
