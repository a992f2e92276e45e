"""Watching jobs: the progress document a client sees, and asyncio-side subscriptions (SSE, ``Prefer: wait``)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Callable
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


class ProgressSink:
    """A job's render progress, persisted: throttled writes (a stage change always, otherwise at most one
    every ``min_interval_s``), each followed by ``notify`` (the embedded runner wakes its watchers; the queue
    worker has none: PostgreSQL notifies for it).

    Render threads call :meth:`progress` directly; render *processes* put ``(job_id, stage, done, total)``
    on :attr:`queue` (a spawn-context queue, made by :meth:`start`), which one listener thread drains.
    """

    def __init__(self, write: Callable[[str, dict[str, Any]], None], notify: Callable[[str], None] | None = None,
                 *, min_interval_s: float = 0.25) -> None:
        self.write, self.notify, self.min_interval_s = write, notify, min_interval_s
        self.queue: Any = None
        self._listener: threading.Thread | None = None
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the queue render processes report on, and its listener (once)."""
        if self.queue is None:
            self.queue = multiprocessing.get_context("spawn").Queue()
            self._listener = threading.Thread(target=self._listen, name="tm-progress", daemon=True)
            self._listener.start()

    def stop(self) -> None:
        """Close the queue after the listener has written what was on it."""
        if self.queue is not None:
            self.queue.put(None)
            if self._listener is not None:
                self._listener.join(2.0)
            self.queue.close()
            self.queue = None

    def progress(self, job_id: str, stage: str, done: int, total: int) -> None:
        """Persist (throttled) and notify."""
        now = time.monotonic()
        key = f"{job_id}:{stage}"
        with self._lock:
            if stage != "done" and now - self._last.get(key, 0.0) < self.min_interval_s and 0 < done < total:
                return
            self._last[key] = now
        self.write(job_id, progress_doc(stage, done, total))
        if self.notify is not None:
            self.notify(job_id)

    def forget(self, job_id: str) -> None:
        """Drop a finished job's throttle state."""
        with self._lock:
            for k in [k for k in self._last if k.startswith(job_id + ":")]:
                del self._last[k]

    def _listen(self) -> None:
        sink = self.queue
        while True:
            try:
                item = sink.get()
            except (EOFError, OSError, ValueError):
                return
            if item is None:
                return
            self.progress(*item)


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
