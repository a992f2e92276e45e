"""The verify pool: provenance checks (``POST /v1/verify``) in a bounded pool of their own."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import VerifyBusyError, VerifyQueueFullError
from .pools import VERIFY_NICE, Foreground, WorkerPool
from .tasks import Outcome


class VerifyPool:
    """A bounded pool of its own for provenance checks (``POST /v1/verify``), with per-account concurrency.

    Verifying is open to every tier and costs a watermark search over the picture, so it must never queue in
    front of the work the service does for its callers: checks run in their own worker processes at the
    lowest CPU priority (``executor="process"``; threads in tests), at most ``workers`` at once plus
    ``queue_size`` waiting (beyond that 503 ``verify_queue_full``), and at most ``per_account`` in flight for
    one account (beyond that 429 ``verify_busy``). A place is claimed before the request body is read. With
    ``yield_to`` (the job runner's :attr:`~.runner.JobRunner.foreground`) its workers are paused while a
    request's face check or profile build runs (see :class:`~.pools.Foreground`).
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        queue_size: int = 4,
        per_account: int = 1,
        executor: str = "process",
        yield_to: Foreground | None = None,
    ) -> None:
        self.workers, self.queue_size, self.per_account = workers, queue_size, per_account
        self.executor_kind = executor
        self.capacity = workers + queue_size
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._total = 0
        self._durations: deque[float] = deque(maxlen=20)
        self._pool = WorkerPool(
            "verify", workers, executor=executor, nice=VERIFY_NICE,
            crash_message="a worker process crashed while checking this image; retry it",
        )
        if yield_to is not None:
            yield_to.add_background(self._pool)

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.close()

    def in_flight(self, account_id: str | None = None) -> int:
        """Checks holding a place (running or waiting), of one account or of all."""
        with self._lock:
            return self._total if account_id is None else self._inflight.get(account_id, 0)

    def retry_after(self) -> float:
        avg = sum(self._durations) / len(self._durations) if self._durations else 2.0
        return min(60.0, max(1.0, avg))

    def claim(self, account_id: str) -> VerifySlot:
        """A place for one check of ``account_id``, or the 429 / 503 that says why there is none."""
        with self._lock:
            mine = self._inflight.get(account_id, 0)
            if mine >= self.per_account:
                raise VerifyBusyError(
                    f"this account already has {mine} provenance check(s) running (at most {self.per_account} "
                    "at a time); wait for it to finish",
                    retry_after_s=self.retry_after(),
                )
            if self._total >= self.capacity:
                raise VerifyQueueFullError(
                    f"all {self.capacity} provenance-check places are taken; retry shortly",
                    retry_after_s=self.retry_after() * max(1, self.queue_size) / self.workers,
                )
            self._inflight[account_id] = mine + 1
            self._total += 1
        return VerifySlot(self, account_id)

    def release(self, account_id: str) -> None:
        """Give back one place of ``account_id`` (what :meth:`VerifySlot.release` calls)."""
        with self._lock:
            left = self._inflight.get(account_id, 0) - 1
            if left > 0:
                self._inflight[account_id] = left
            else:
                self._inflight.pop(account_id, None)
            self._total -= 1

    async def run(self, fn: Callable[..., Outcome], *args: Any) -> Any:
        """Run one check (its place claimed) and return its value, or raise its error."""
        t0 = time.monotonic()
        try:
            return await self._pool.call_async(fn, *args)
        finally:
            self._durations.append(time.monotonic() - t0)


class VerifySlot:
    """One claimed place in the verify pool; released once (use as a context manager)."""

    def __init__(self, pool: VerifyPool, account_id: str) -> None:
        self.pool, self.account_id = pool, account_id
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self.pool.release(self.account_id)

    def __enter__(self) -> VerifySlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
