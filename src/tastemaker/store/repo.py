"""Legacy spelling for the job runner (``tastemaker.worker``) until it calls its store session's methods.

Each function here is one line over a :class:`~tastemaker.store.protocol.StoreSession` method: write
``s.load_job(job_id)`` for ``repo.load_job(s, job_id)``, and import the job states from
:mod:`tastemaker.store.records`. Delete this module once nothing imports it.
"""

from __future__ import annotations

from typing import Any

from .protocol import StoreSession
from .records import ACTIVE, FAILED, QUEUED, RUNNING, SUCCEEDED, TERMINAL, Job, JobImage


def active_jobs(s: StoreSession) -> list[Job]:
    return s.active_jobs()


def load_job(s: StoreSession, job_id: str) -> Job | None:
    return s.load_job(job_id)


def move_job(s: StoreSession, job: Job, to: str, **fields: Any) -> bool:
    return s.move_job(job, to, **fields)


def set_progress(s: StoreSession, job_id: str, progress: dict[str, Any]) -> None:
    s.set_progress(job_id, progress)


def add_job_image(s: StoreSession, job: Job, **image: Any) -> None:
    s.add_job_image(job.id, JobImage(**image))


def release_images(s: StoreSession, account_id: str, period: str, n: int) -> None:
    s.release_images(account_id, period, n)


def release_idempotency_for(s: StoreSession, account_id: str, resource_id: str) -> int:
    return s.release_idempotency_for(account_id, resource_id)


__all__ = ["ACTIVE", "FAILED", "QUEUED", "RUNNING", "SUCCEEDED", "TERMINAL"]
