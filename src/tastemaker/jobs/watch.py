"""Watching jobs: the progress document a client sees, and asyncio-side subscriptions (SSE, ``Prefer: wait``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

#: Where each stage sits on the 0..1 progress bar a client sees.
STAGES: dict[str, tuple[float, float]] = {
    "queued": (0.0, 0.0),
    "starting": (0.0, 0.05),
    "identity": (0.05, 0.15),
    "profile": (0.15, 0.25),
    "render": (0.25, 0.9),
    "provenance": (0.9, 0.97),  # watermark, encode, C2PA signature, log append
    "store": (0.97, 1.0),
    "done": (1.0, 1.0),
}


def progress_doc(stage: str, done: int, total: int) -> dict[str, Any]:
    lo, hi = STAGES.get(stage, (0.0, 0.0))
    frac = lo + (hi - lo) * (done / total if total else 1.0 if stage == "done" else 0.0)
    return {"stage": stage, "done": done, "total": total, "fraction": round(min(1.0, frac), 4)}


class Watch:
    """An asyncio-side subscription to one job's changes (SSE, ``Prefer: wait``)."""

    def __init__(self, watchers: Watchers, job_id: str) -> None:
        self.watchers, self.job_id = watchers, job_id
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def notify(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop has closed: the client went away
            pass

    async def wait(self, timeout: float) -> bool:
        """True when the job changed, False on timeout. Read the job's state *after* this returns."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()

    def close(self) -> None:
        self.watchers.remove(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watchers:
    """The open watches, by job; :meth:`notify` wakes every watch of a job (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, set[Watch]] = {}

    def add(self, job_id: str) -> Watch:
        """Subscribe (from async code) to a job's changes; use as a context manager."""
        w = Watch(self, job_id)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(w)
        return w

    def remove(self, w: Watch) -> None:
        with self._lock:
            ws = self._watches.get(w.job_id)
            if ws is not None:
                ws.discard(w)
                if not ws:
                    del self._watches[w.job_id]

    def notify(self, job_id: str) -> None:
        with self._lock:
            ws = list(self._watches.get(job_id, ()))
        for w in ws:
            w.notify()
