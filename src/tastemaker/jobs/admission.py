"""Admission: the bounded queue's slots and the per-account counts of jobs in this process.

At most ``capacity`` (``workers + queue_size``) jobs are admitted; beyond that :meth:`Admission.reserve`
raises :class:`~tastemaker.errors.QueueFullError` (503 + Retry-After) — nothing piles up. Per account it
counts the jobs queued or running here and the admissions in flight (between "request received" and "job
queued", i.e. the face check), so a flood from one account is turned away without a database read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import QueueFullError


class Slot:
    """One admitted job's place in the bounded queue; released exactly once."""

    def __init__(self, sem: threading.BoundedSemaphore) -> None:
        self._sem = sem
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._sem.release()


class Admission:
    """The slots of one runner, and its per-account counts (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity)
        self._lock = threading.Lock()
        self._admitting: dict[str, int] = {}
        self._active: dict[str, int] = {}  # queued + running jobs per account, in this process

    def reserve(self, retry_after: Callable[[], float]) -> Slot:
        """Claim a place for one job, or raise 503 queue_full. Release the slot if the job is not submitted."""
        if not self._slots.acquire(blocking=False):
            raise QueueFullError(
                f"all {self.capacity} generation slots are busy; retry later", retry_after_s=retry_after()
            )
        return Slot(self._slots)

    def in_flight(self) -> int:
        """Admissions in flight, of all accounts."""
        with self._lock:
            return sum(self._admitting.values())

    def load(self, account_id: str) -> int:
        """This account's jobs in this process: queued, running, or being admitted."""
        with self._lock:
            return self._active.get(account_id, 0) + self._admitting.get(account_id, 0)

    def admitting(self, account_id: str) -> int:
        """Generations of this account between "request received" and "job queued" (the face check)."""
        with self._lock:
            return self._admitting.get(account_id, 0)

    def begin(self, account_id: str, active: int, limit: int) -> bool:
        """Count one admission in flight, unless ``active`` + in flight already reaches ``limit``."""
        with self._lock:
            inflight = self._admitting.get(account_id, 0)
            if active + inflight >= limit:
                return False
            self._admitting[account_id] = inflight + 1
            return True

    def end(self, account_id: str) -> None:
        with self._lock:
            _decrement(self._admitting, account_id)

    def job_added(self, account_id: str) -> None:
        with self._lock:
            self._active[account_id] = self._active.get(account_id, 0) + 1

    def job_done(self, account_id: str) -> None:
        with self._lock:
            _decrement(self._active, account_id)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
