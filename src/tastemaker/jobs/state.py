"""A job's persisted state: every move is an atomic compare-and-set (:meth:`~tastemaker.store.StoreSession.move_job`).

::

    queued ──► running ──► succeeded
       │          │
       ├──────────┼──────► failed     (error code + message; quota given back)
       └──────────┴──────► cancelled  (by its account; quota given back)

A worker, a shutdown, a restart and a cancel can therefore never both "win" the same job. A failure or a
cancellation gives the job's images back to the quota and is audited in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from ..audit import GENERATION_CANCELLED, GENERATION_FINISHED, AuditLog
from ..errors import JobFinishedError, NotFoundError
from ..store import Store, StoreSession
from ..store.records import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobImage, utcnow
from .tasks import GeneratedBlob
from .watch import progress_doc

log = logging.getLogger("tastemaker.jobs")

INTERRUPTED = "interrupted"
WORKER_CRASHED = "worker_crashed"
JOB_TIMEOUT = "job_timeout"
RETRYABLE = frozenset({INTERRUPTED, WORKER_CRASHED, "internal_error"})
CANCELLED_MESSAGE = "the generation was cancelled at the account's request; its images went back to the quota"
INTERRUPTED_MESSAGE = (
    "the server stopped before this generation finished; the selfie is held only in memory and never "
    "stored, so the job cannot be resumed — submit it again"
)


class JobStates:
    """The moves of a job's state in the store, each in one transaction with its quota and audit entries."""

    def __init__(self, store: Store, audit: AuditLog) -> None:
        self.store, self.audit = store, audit

    def recover(self) -> list[str]:
        """Fail, explicitly, every job a previous process left queued or running. Returns their ids."""
        failed = []
        with self.store.session() as s:
            for job in s.active_jobs():
                if self._finish_failed(s, job, INTERRUPTED, INTERRUPTED_MESSAGE):
                    failed.append(job.id)
                s.commit()
        if failed:
            log.warning("recovered %d interrupted job(s): %s", len(failed), ", ".join(failed))
        return failed

    def start(self, job_id: str) -> bool:
        """queued -> running; False when the job is no longer queued (failed meanwhile: shutdown, recovery)."""
        with self.store.session() as s:
            job = s.load_job(job_id)
            if job is None or job.status != QUEUED:
                return False
            if not s.move_job(job, RUNNING, started_at=utcnow(), progress=progress_doc("starting", 0, 1)):
                return False
            s.notify_job(job_id)
            s.commit()
        return True

    def progress(self, job_id: str, doc: dict[str, Any]) -> None:
        with self.store.session() as s:
            s.set_progress(job_id, doc)
            s.notify_job(job_id)
            s.commit()

    def succeed(self, job_id: str, images: list[GeneratedBlob]) -> None:
        """Store the images and move running -> succeeded; a job failed meanwhile drops its result."""
        with self.store.blobs.lock, self.store.session() as s:
            job = s.load_job(job_id)
            if job is None or job.status != RUNNING:
                return  # failed meanwhile (shutdown grace ran out): the result is dropped
            shas = []
            for k, im in enumerate(images):
                sha = self.store.blobs.put(im.data)
                shas.append(sha)
                record = im.record
                if im.clip is not None:  # the image's clip (clip=SECONDS): its blob, named in the image's record
                    record = {**record, "clip": {**im.clip["entry"], "sha256": self.store.blobs.put(im.clip["data"])}}
                s.add_job_image(job.id, JobImage(k=k, sha256=sha, media_type=im.media_type, width=im.width,
                                                 height=im.height, byte_size=len(im.data), record=record))
            if not s.move_job(job, SUCCEEDED, finished_at=utcnow(), progress=progress_doc("done", 1, 1)):
                s.rollback()
                return
            s.drop_job_input(job.id)
            self.audit.append(
                s,
                GENERATION_FINISHED,
                account_id=job.account_id,
                objects={"generation": job.id},
                outcome=SUCCEEDED,
                detail={"outputs_sha256": shas},
            )
            s.notify_job(job.id)
            s.commit()

    def fail(self, job_id: str, code: str, message: str, *, held_by: str | None = None) -> None:
        """Fail a job that is still queued or running (a no-op once it has finished; with ``held_by``, also a
        no-op unless that queue worker still holds the job's lease)."""
        with self.store.session() as s:
            job = s.load_job(job_id)
            if job is not None and job.status in ACTIVE and self._finish_failed(s, job, code, message,
                                                                                held_by=held_by):
                s.commit()

    def succeed_staged(self, job_id: str, staged: list[dict[str, Any]], *, held_by: str) -> bool:
        """Queue mode: record the staged outputs (blobs stored, provenance logged) and move running -> succeeded,
        only while ``held_by`` holds the lease; False (nothing changed) otherwise."""
        with self.store.session() as s:
            job = s.load_job(job_id)
            if job is None or job.status != RUNNING or job.lease_owner != held_by:
                return False
            for st in staged:
                s.add_job_image(job.id, JobImage(k=st["k"], sha256=st["sha256"], media_type=st["media_type"],
                                                 width=st["width"], height=st["height"], byte_size=st["byte_size"],
                                                 record=st["record"]))
            if not s.move_job(job, SUCCEEDED, held_by=held_by, finished_at=utcnow(), staged=None,
                              progress=progress_doc("done", 1, 1)):
                s.rollback()
                return False
            s.drop_job_input(job.id)
            self.audit.append(
                s, GENERATION_FINISHED, account_id=job.account_id, objects={"generation": job.id}, outcome=SUCCEEDED,
                detail={"outputs_sha256": [st["sha256"] for st in staged]},
            )
            s.notify_job(job.id)
            s.commit()
        return True

    def cancel(self, job_id: str, *, request_id: str | None = None) -> tuple[Job, str]:
        """Move a queued or running job to ``cancelled``: status, quota refund and audit entry in one transaction.

        Returns the job and the status it was cancelled from. A job that starts while this runs is cancelled
        from ``running``; one that has ended (the worker won the race) raises
        :class:`~tastemaker.errors.JobFinishedError`. The ``Idempotency-Key`` is kept: the cancel was the
        account's own decision, so a retry with the same key replays the cancelled job rather than running again.
        """
        with self.store.session() as s:
            job = s.load_job(job_id)
            if job is None:
                raise NotFoundError(f"no generation {job_id!r}")
            while True:  # a failed compare-and-set leaves job.status where it is now; states only move forward
                if job.status not in ACTIVE:
                    raise JobFinishedError(
                        f"generation {job.id} has already {_ended(job.status)}; only a queued or running "
                        "generation can be cancelled"
                    )
                was = job.status
                if s.move_job(job, CANCELLED, error_code=CANCELLED, error_message=CANCELLED_MESSAGE,
                              finished_at=utcnow()):
                    break
            s.drop_job_input(job.id)
            s.release_images(job.account_id, job.usage_period, job.n_images)
            self.audit.append(
                s,
                GENERATION_CANCELLED,
                account_id=job.account_id,
                objects={"generation": job.id},
                request_id=request_id,
                outcome=CANCELLED,
                detail={"from": was},
            )
            s.notify_job(job.id)
            s.commit()
        return job, was

    def _finish_failed(self, s: StoreSession, job: Job, code: str, message: str, *, held_by: str | None = None) -> bool:
        """Fail a job inside the caller's transaction: status, quota refund and audit entry together.

        A failure worth retrying (:data:`RETRYABLE`) also releases the job's ``Idempotency-Key``: a retry with
        the same key runs again instead of replaying the failure for as long as the key is remembered.
        """
        if not s.move_job(job, FAILED, held_by=held_by, error_code=code, error_message=message, finished_at=utcnow()):
            return False
        s.drop_job_input(job.id)
        s.notify_job(job.id)
        s.release_images(job.account_id, job.usage_period, job.n_images)
        if code in RETRYABLE:
            s.release_idempotency_for(job.account_id, job.id)
        self.audit.append(
            s, GENERATION_FINISHED, account_id=job.account_id, objects={"generation": job.id}, outcome=code
        )
        return True


def _ended(status: str) -> str:
    """How a terminal status reads after "has already"."""
    return {SUCCEEDED: "succeeded", FAILED: "failed", CANCELLED: "been cancelled"}.get(status, status)
