"""Generation jobs: a persisted state machine, run by an in-process pool behind a bounded queue.

::

    queued ──► running ──► succeeded
       │          │
       └──────────┴──────► failed   (error code + message; quota given back)

* **Persisted**: every move is an atomic compare-and-set ``UPDATE`` (``store.repo.move_job``), so a
  worker, a shutdown and a restart can never both "win" the same job.
* **Bounded**: at most ``workers + queue_size`` jobs are admitted; beyond that :meth:`JobRunner.reserve`
  raises :class:`~tastemaker.errors.QueueFullError` (503 + Retry-After) — nothing piles up.
* **Nothing silently lost**: the selfie lives only in this process's memory (never stored), so a job
  cannot outlive the process. On start, :meth:`JobRunner.recover` fails every job still ``queued`` or
  ``running`` with code ``interrupted``; on shutdown, jobs that do not finish within the grace period
  get the same. Either way the job says so and its images go back to the quota.
* **Isolated**: with ``executor="process"`` (the default) the CPU work — face detection, profile
  building, rendering — runs in spawned worker processes. dlib holds the GIL for ~100 ms at a time,
  which would otherwise stall every API request; a crash in native code fails one job
  (``worker_crashed``) instead of the server. ``executor="thread"`` runs the same functions in threads
  (tests, debugging).

One server process per database: recovery assumes any active job belongs to a process that is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audit import GENERATION_FINISHED, AuditLog
from .errors import (
    ForwardedError,
    InternalError,
    QueueFullError,
    TastemakerError,
    VerifyBusyError,
    VerifyQueueFullError,
    WorkerCrashedError,
)
from .lifeline import die_with_parent
from .store import Store, repo
from .store.models import Job, utcnow

log = logging.getLogger("tastemaker.worker")

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
#: CPU priority (nice) of worker processes: face checks are on a request's path, renders are batch work.
CPU_NICE = 5
JOB_NICE = 10
#: Provenance checks: open to every tier, so the lowest priority of all (see :class:`VerifyPool`).
VERIFY_NICE = 19
INTERRUPTED = "interrupted"
WORKER_CRASHED = "worker_crashed"
JOB_TIMEOUT = "job_timeout"
RETRYABLE = frozenset({INTERRUPTED, WORKER_CRASHED, "internal_error"})
INTERRUPTED_MESSAGE = (
    "the server stopped before this generation finished; the selfie is held only in memory and never "
    "stored, so the job cannot be resumed — submit it again"
)


def progress_doc(stage: str, done: int, total: int) -> dict[str, Any]:
    lo, hi = STAGES.get(stage, (0.0, 0.0))
    frac = lo + (hi - lo) * (done / total if total else 1.0 if stage == "done" else 0.0)
    return {"stage": stage, "done": done, "total": total, "fraction": round(min(1.0, frac), 4)}


# ------------------------------------------------------------------------------------------ worker tasks
# Module-level functions: picklable for spawned processes, and the same code in thread mode. They never
# raise: an outcome is ("ok", value) or ("error", *ForwardedError.of(exc)), because some
# Tastemaker errors take extra constructor arguments and would not survive pickling.

Outcome = tuple[Any, ...]
_SINK: Any = None  # the progress queue, in worker processes


def _init_process(sink: Any, nice: int = 0, parent_pid: int | None = None) -> None:
    """Worker process setup: die with the server, the progress queue, and a lower CPU priority than the API.

    A worker exits as soon as the server process is gone, however it went (``kill -9`` included; see
    :mod:`tastemaker.lifeline`), so a crashed or killed server never leaves idle workers behind. Rendering
    is batch work; request handling is interactive. On a small machine the kernel then gives the API its
    time slices first, which is what keeps cached calls fast during generation.
    """
    global _SINK
    die_with_parent(parent_pid)
    _SINK = sink
    if nice:
        try:
            os.nice(nice)
        except OSError:  # not permitted (some containers): run at normal priority
            pass


def _guard(fn: Callable[[], Any]) -> Outcome:
    try:
        return ("ok", fn())
    except TastemakerError as exc:
        return ("error", *ForwardedError.of(exc))
    except Exception as exc:  # a bug or a native-library failure: log it here, tell the client little
        log.error("worker task failed: %s", "".join(traceback.format_exception(exc)))
        return ("error", *ForwardedError.of(
            InternalError(f"the worker failed unexpectedly ({type(exc).__name__}); the server log has details")
        ))


def unwrap(outcome: Outcome) -> Any:
    """The task's value, or its error raised again in this process with the same code and status."""
    if outcome[0] == "ok":
        return outcome[1]
    raise ForwardedError(*outcome[1:])


def task_warm(engine: str | None = None) -> bool:
    """Load the models and the configured engine once per worker process, before the first request needs them.

    The engine instance is the process's shared one (:func:`tastemaker.engines.get_engine`), so jobs reuse
    it — its caches and, for the diffusion engine, its weights.
    """
    from .encoders.identity import warm_models
    from .engines import get_engine

    warm_models()
    if engine is not None:
        get_engine(engine)
    return True


def task_prepare_subject(
    data: bytes, name: str, max_pixels: int, max_bytes: int, min_face_px: int, face_index: int | None
) -> Outcome:
    """Decode a selfie and find and embed its face: (Face, IdentityEmbedding). Pixels are not returned."""

    def run() -> Any:
        from .encoders.identity import IdentityEncoder
        from .errors import MultipleFacesError
        from .media import decode_image
        from .pipeline import prepare_subject

        img = decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes)
        try:
            subject = prepare_subject(
                [img], encoder=IdentityEncoder(min_face_px=min_face_px), face_index=face_index, max_pixels=max_pixels
            )
        except MultipleFacesError as exc:  # the core names the CLI's option; an API caller sends a field
            exc.message = exc.message.replace("--face-index", "the face_index field (0 = the largest face)")
            raise
        return subject.face, subject.identity

    return _guard(run)


def task_build_profile(
    name: str,
    pins: list[tuple[Any, str]],
    max_pixels: int,
    max_bytes: int,
    max_modes: int,
    half_life_days: float,
) -> Outcome:
    """Build a board's taste profile from its pins and blob paths; returns the profile JSON."""

    def run() -> str:
        from dataclasses import replace
        from pathlib import Path

        from .boards import build_board
        from .taste.profile import ProfileConfig, build_profile
        from .taste.weights import WeightConfig

        items = [(replace(pin, sha256=""), Path(path).read_bytes()) for pin, path in pins]
        board = build_board(name, items, max_pixels=max_pixels, max_bytes=max_bytes)
        config = ProfileConfig(max_modes=max_modes, weights=WeightConfig(half_life_days=half_life_days))
        return build_profile(board, config).to_json()

    return _guard(run)


def task_describe(data: bytes, name: str, max_pixels: int, max_bytes: int) -> Outcome:
    """Decode an image and describe its style (``POST /v1/feedback``); returns the StyleDescriptor."""

    def run() -> Any:
        from .encoders.style import describe
        from .media import decode_image

        return describe(decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes))

    return _guard(run)


def verify_input(
    data: bytes, *, decode_side: int, max_pixels: int, max_bytes: int, header_max_pixels: int = 40_000_000
) -> bytes:
    """The image a provenance check reads: a large JPEG decoded reduced, everything capped at ``max_pixels``.

    The watermark and the picture's fingerprint survive a 0.5x resize, so a JPEG longer than ``decode_side``
    is decoded at 1/2, 1/4 or 1/8 (DCT scaling: a fraction of the time and memory of a full decode) and
    handed on losslessly. Not when it carries an APP11 segment, where a C2PA manifest would be: its hard
    binding is over the original bytes, which then go through unchanged. What would be decoded is capped at
    ``max_pixels`` (422 ``image_too_many_pixels``); an unreadable header is left to the verifier, which
    still reads a manifest if there is one.
    """
    from .errors import ImageDecodeError, ImagePixelLimitError
    from .media import check_image, decode_image, encode_image, has_jpeg_app11

    try:
        w, h = check_image(data, name="image", max_pixels=header_max_pixels, max_bytes=max_bytes)
    except ImageDecodeError:
        return data
    reducible = data[:3] == b"\xff\xd8\xff" and max(w, h) > decode_side and not has_jpeg_app11(data)
    if not reducible:
        if w * h > max_pixels:
            raise ImagePixelLimitError(
                f"image: {w}x{h} = {w * h:,} pixels is over the {max_pixels:,}-pixel limit for provenance checks "
                "(send the image at the size it was shared)"
            )
        return data
    try:
        pixels = decode_image(
            data, name="image", max_pixels=header_max_pixels, max_bytes=max_bytes, reduce_longest=decode_side
        )
    except ImageDecodeError:
        return data
    ph, pw = pixels.shape[:2]
    if ph * pw > max_pixels:
        raise ImagePixelLimitError(
            f"image: {w}x{h} is {pw}x{ph} = {pw * ph:,} pixels even decoded reduced, over the {max_pixels:,}-pixel "
            "limit for provenance checks"
        )
    return encode_image(pixels, "png")


def task_verify(
    data: bytes,
    data_dir: str,
    max_pixels: int,
    max_bytes: int,
    verify_max_pixels: int | None = None,
    decode_side: int = 2048,
    provenance_secret: str | None = None,
) -> Outcome:
    """Check an image against the service's provenance store (``POST /v1/verify``); returns the report dict.

    The service's caps are applied from the header first (a bomb is a 413, not a long decode), and a large
    JPEG is read reduced (:func:`verify_input`).
    """

    def run() -> dict[str, Any]:
        from .pipeline import provenance_for

        image = verify_input(
            data, decode_side=decode_side, max_pixels=min(max_pixels, verify_max_pixels or max_pixels),
            max_bytes=max_bytes, header_max_pixels=max_pixels,
        )
        return provenance_for(data_dir, provenance_secret).verify(image).to_dict()

    return _guard(run)


@dataclass
class GeneratedBlob:
    data: bytes
    media_type: str
    width: int
    height: int
    record: dict[str, Any]


def task_generate(
    job_id: str,
    request: dict[str, Any],
    selfie: bytes,
    selfie_name: str,
    face: Any,
    identity: Any,
    profile_json: str,
    engine: str,
    identity_threshold: float,
    max_pixels: int,
    max_bytes: int,
    sink: Callable[[str, str, int, int], None] | None = None,
    account_id: str = "local",
    data_dir: str | None = None,
    pins: list[tuple[Any, str]] | None = None,
    provenance_secret: str | None = None,
) -> Outcome:
    """Render one job and encode its images. Progress goes to ``sink`` (threads) or the process queue.

    ``pins`` are the stored board's pins (core Pin, blob path) the engine may draw from; the bytes are read
    here, in the worker, and live only for this job.
    """

    def report(stage: str, done: int, total: int) -> None:
        if sink is not None:
            sink(job_id, stage, done, total)
        elif _SINK is not None:
            _SINK.put((job_id, stage, done, total))

    def run() -> list[GeneratedBlob]:
        from pathlib import Path

        from .engines.assets import assets_from_bytes
        from .engines.base import GenerationRequest, Subject
        from .media import decode_image
        from .pipeline import default_provenance, generate, provenance_for
        from .taste.profile import TasteProfile

        report("starting", 0, 1)
        req = GenerationRequest.model_validate(request)
        img = decode_image(selfie, name=selfie_name, max_pixels=max_pixels, max_bytes=max_bytes)
        subject = Subject(image=img, face=face, identity=identity, name=selfie_name)
        profile = TasteProfile.from_json(profile_json, name="profile")
        assets = None
        if pins:
            stored = {}
            for pin, path in pins:
                try:
                    stored[pin.id] = (pin, Path(path).read_bytes())
                except OSError:
                    continue  # deleted meanwhile: the engine falls back for that pin and says so
            assets = assets_from_bytes("the stored board", stored, profile, max_pixels=max_pixels,
                                       max_bytes=max_bytes)
        result = generate(
            req,
            subject=subject,
            profile=profile,
            assets=assets,
            engine=engine,
            identity_threshold=identity_threshold,
            guard_workers=0,
            provenance=provenance_for(data_dir, provenance_secret) if data_dir else default_provenance(),
            account=account_id,
            progress=report,
        )
        # the images come back watermarked, C2PA-signed and logged (pipeline provenance); never re-encode them
        media_type = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}[req.format]
        out = []
        for im in result.images:
            h, w = im.pixels.shape[:2]
            out.append(GeneratedBlob(data=im.data, media_type=media_type, width=w, height=h, record=im.record()))
        return out

    return _guard(run)


def _close_pool(pool: Executor) -> None:
    """Shut a pool down without waiting for a render, and make sure no worker process outlives it.

    ``shutdown(wait=False)`` alone can leave an idle spawned worker running after the server exits;
    whatever a worker was doing has already been failed (or finished) by the time this is called.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # ProcessPoolExecutor's workers
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


# ------------------------------------------------------------------------------------------ the runner


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
    #: the stored board's pins the engine may draw from: (core Pin, blob path); empty for a profile upload
    pins: list[tuple[Any, str]] = field(default_factory=list, repr=False)


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


class Watch:
    """An asyncio-side subscription to one job's changes (SSE, ``Prefer: wait``)."""

    def __init__(self, runner: JobRunner, job_id: str) -> None:
        self.runner, self.job_id = runner, job_id
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
        self.runner._unwatch(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JobRunner:
    """Admits, runs, persists and reports generation jobs for one server process."""

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
        self.provenance_secret = provenance_secret
        self.job_timeout_s = job_timeout_s
        self.data_dir = None if data_dir is None else str(data_dir)
        self.workers, self.queue_size = workers, queue_size
        self.executor_kind = executor
        self.engine, self.identity_threshold = engine, identity_threshold
        self.max_pixels, self.max_bytes = max_pixels, max_bytes
        self.capacity = workers + queue_size
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._queue: queue.Queue[tuple[JobPayload, Slot] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._accepting = False
        self._lock = threading.RLock()
        self._admitting: dict[str, int] = {}
        self._active: dict[str, int] = {}  # queued + running jobs per account, in this process
        self._watches: dict[str, set[Watch]] = {}
        self._running: set[str] = set()
        self._durations: deque[float] = deque(maxlen=20)
        self._last_write: dict[str, float] = {}
        self._sink: Any = None
        self._listener: threading.Thread | None = None
        self._cpu: Executor | None = None
        self._gen: Executor | None = None

    # ------------------------------------------------------------------ lifecycle
    def _make_pools(self) -> None:
        if self.executor_kind == "process":
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            if self._sink is None:
                self._sink = ctx.Queue()
                self._listener = threading.Thread(target=self._listen, name="tm-progress", daemon=True)
                self._listener.start()
            self._cpu = self._process_pool(1, CPU_NICE)
            self._gen = self._process_pool(self.workers, JOB_NICE)
            self._cpu.submit(task_warm)  # face checks and profiles: the models, no engine
            for _ in range(self.workers):
                self._gen.submit(task_warm, self.engine)
        else:
            self._cpu = ThreadPoolExecutor(2, thread_name_prefix="tm-cpu")
            self._gen = ThreadPoolExecutor(self.workers, thread_name_prefix="tm-gen")
            self._gen.submit(task_warm, self.engine)

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
        failed = []
        with self.store.session() as s:
            for job in repo.active_jobs(s):
                if self._finish_failed(s, job, INTERRUPTED, INTERRUPTED_MESSAGE, outcome=INTERRUPTED):
                    failed.append(job.id)
                s.commit()
        if failed:
            log.warning("recovered %d interrupted job(s): %s", len(failed), ", ".join(failed))
        return failed

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
            if item is not None:
                leftovers.append(item[0].job_id)
                item[1].release()
                self._done(item[0])
        with self._lock:
            leftovers.extend(self._running)
        with self.store.session() as s:
            for job_id in leftovers:
                job = repo.load_job(s, job_id)
                if job is not None and job.status in repo.ACTIVE:
                    self._finish_failed(s, job, INTERRUPTED, INTERRUPTED_MESSAGE, outcome=INTERRUPTED)
                    s.commit()
                self._notify(job_id)
        for pool in (self._cpu, self._gen):
            if pool is not None:
                _close_pool(pool)
        if self._sink is not None:
            self._sink.put(None)
            if self._listener is not None:
                self._listener.join(2.0)
            self._sink.close()
            self._sink = None
        self._threads.clear()
        return leftovers

    # ------------------------------------------------------------------ admission
    @property
    def accepting(self) -> bool:
        return self._accepting

    def retry_after(self) -> float:
        """A rough wait until a slot frees: recent job time x jobs ahead / workers."""
        avg = sum(self._durations) / len(self._durations) if self._durations else 5.0
        return min(60.0, max(1.0, avg * max(1, self._queue.qsize()) / self.workers))

    def has_capacity(self) -> bool:
        """Advisory (no reservation): lets a request fail fast before doing expensive work."""
        with self._lock:
            admitting = sum(self._admitting.values())
        return self._accepting and self.stats()["active"] + admitting < self.capacity

    def account_load(self, account_id: str) -> int:
        """This account's generations in this process: queued, running, or being admitted. No database read,
        so a flood of requests over the limit is turned away for almost nothing."""
        with self._lock:
            return self._active.get(account_id, 0) + self._admitting.get(account_id, 0)

    def admitting(self, account_id: str) -> int:
        """Generations of this account between "request received" and "job queued" (the face check)."""
        with self._lock:
            return self._admitting.get(account_id, 0)

    def begin_admission(self, account_id: str, active: int, limit: int) -> bool:
        """Count one admission in flight, unless ``active`` + in flight already reaches ``limit``.

        Bounds what a burst from one account can make the CPU pool do; :meth:`end_admission` releases it.
        """
        with self._lock:
            inflight = self._admitting.get(account_id, 0)
            if active + inflight >= limit:
                return False
            self._admitting[account_id] = inflight + 1
            return True

    def end_admission(self, account_id: str) -> None:
        with self._lock:
            left = self._admitting.get(account_id, 0) - 1
            if left > 0:
                self._admitting[account_id] = left
            else:
                self._admitting.pop(account_id, None)

    def reserve(self) -> Slot:
        """Claim a place for one job, or raise 503 queue_full. Release the slot if the job is not submitted."""
        if not self._accepting:
            raise QueueFullError("the server is shutting down and takes no new generations", retry_after_s=5)
        if not self._slots.acquire(blocking=False):
            raise QueueFullError(
                f"all {self.capacity} generation slots are busy; retry later", retry_after_s=self.retry_after()
            )
        return Slot(self._slots)

    def submit(self, slot: Slot, payload: JobPayload) -> None:
        with self._lock:
            self._active[payload.account_id] = self._active.get(payload.account_id, 0) + 1
        self._queue.put((payload, slot))

    def _done(self, payload: JobPayload) -> None:
        with self._lock:
            left = self._active.get(payload.account_id, 0) - 1
            if left > 0:
                self._active[payload.account_id] = left
            else:
                self._active.pop(payload.account_id, None)

    def worker_pids(self) -> list[int]:
        """Process ids of the generation workers (process mode; empty in thread mode). For operators and tests."""
        processes = getattr(self._gen, "_processes", None) or {}
        return sorted(int(pid) for pid in processes)

    def stats(self) -> dict[str, int]:
        with self._lock:
            running = len(self._running)
        queued = self._queue.qsize()
        return {"queued": queued, "running": running, "active": queued + running, "capacity": self.capacity}

    def call(self, fn: Callable[..., Outcome], *args: Any) -> Any:
        """Run a short CPU task (face check, profile build) in the CPU pool and wait for it.

        Called from request threads: in process mode the work happens off the GIL, so other requests
        keep flowing while one waits here.
        """
        assert self._cpu is not None, "runner not started"
        try:
            fut = self._cpu.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):
            self._rebuild_cpu()
            fut = self._cpu.submit(fn, *args)
        try:
            outcome = fut.result()
        except BrokenProcessPool:
            self._rebuild_cpu()
            raise WorkerCrashedError("a worker process crashed while handling this request; retry it") from None
        return unwrap(outcome)

    async def call_async(self, fn: Callable[..., Outcome], *args: Any) -> Any:
        """:meth:`call` for async code: awaits the CPU pool without holding a thread."""
        assert self._cpu is not None, "runner not started"
        try:
            fut = self._cpu.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):
            self._rebuild_cpu()
            fut = self._cpu.submit(fn, *args)
        try:
            outcome = await asyncio.wrap_future(fut)
        except BrokenProcessPool:
            self._rebuild_cpu()
            raise WorkerCrashedError("a worker process crashed while handling this request; retry it") from None
        return unwrap(outcome)

    def _process_pool(self, n: int, nice: int) -> ProcessPoolExecutor:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_process, initargs=(self._sink, nice, os.getpid())
        )

    def _rebuild_cpu(self) -> None:
        with self._lock:
            if isinstance(self._cpu, ProcessPoolExecutor):
                _close_pool(self._cpu)
                self._cpu = self._process_pool(1, CPU_NICE)

    def _rebuild_gen(self, broken: Executor | None) -> None:
        """Replace the generation pool ``broken`` (unless another job already replaced it)."""
        with self._lock:
            if isinstance(self._gen, ProcessPoolExecutor) and self._gen is broken:
                _close_pool(self._gen)
                self._gen = self._process_pool(self.workers, JOB_NICE)
                for _ in range(self.workers):  # start the new workers now, so the next job does not wait
                    self._gen.submit(task_warm, self.engine)

    # ------------------------------------------------------------------ watching
    def watch(self, job_id: str) -> Watch:
        """Subscribe (from async code) to a job's changes; use as a context manager."""
        w = Watch(self, job_id)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(w)
        return w

    def _unwatch(self, w: Watch) -> None:
        with self._lock:
            ws = self._watches.get(w.job_id)
            if ws is not None:
                ws.discard(w)
                if not ws:
                    del self._watches[w.job_id]

    def _notify(self, job_id: str) -> None:
        with self._lock:
            ws = list(self._watches.get(job_id, ()))
        for w in ws:
            w.notify()

    # ------------------------------------------------------------------ running
    def _listen(self) -> None:
        sink = self._sink
        while True:
            try:
                item = sink.get()
            except (EOFError, OSError, ValueError):
                return
            if item is None:
                return
            self._progress(*item)

    def _progress(self, job_id: str, stage: str, done: int, total: int) -> None:
        """Persist progress (stage changes always, otherwise at most 4 writes a second) and notify."""
        now = time.monotonic()
        key = f"{job_id}:{stage}"
        if stage != "done" and now - self._last_write.get(key, 0.0) < 0.25 and 0 < done < total:
            return
        self._last_write[key] = now
        with self.store.session() as s:
            repo.set_progress(s, job_id, progress_doc(stage, done, total))
            s.commit()
        self._notify(job_id)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            payload, slot = item
            try:
                self._run(payload)
            except Exception:  # never let a worker thread die: the job is failed, the thread goes on
                log.exception("job %s: unexpected failure in the runner", payload.job_id)
                self._fail_by_id(payload.job_id, "internal_error", "the job runner failed unexpectedly")
            finally:
                slot.release()
                self._done(payload)
                with self._lock:
                    self._running.discard(payload.job_id)
                    for k in [k for k in self._last_write if k.startswith(payload.job_id + ":")]:
                        del self._last_write[k]
                self._notify(payload.job_id)

    def _run(self, p: JobPayload) -> None:
        with self.store.session() as s:
            job = repo.load_job(s, p.job_id)
            if job is None or job.status != repo.QUEUED:
                return  # failed meanwhile (shutdown, recovery): nothing to do
            if not repo.move_job(s, job, repo.RUNNING, started_at=utcnow(), progress=progress_doc("starting", 0, 1)):
                return
            s.commit()
        with self._lock:
            self._running.add(p.job_id)
        self._notify(p.job_id)
        t0 = time.monotonic()
        sink = self._progress if self.executor_kind == "thread" else None
        pool = self._gen
        assert pool is not None
        try:
            fut: Future[Outcome] = pool.submit(
                task_generate,
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
            )
            images = unwrap(fut.result(timeout=self.job_timeout_s))
        except FutureTimeoutError:
            # Fail it first (the quota goes back), then stop the work: a worker process cannot be told to
            # stop, so the pool is replaced. With job_workers > 1 a job running beside it in that pool
            # fails as worker_crashed (retryable); in thread mode the render finishes and is dropped.
            log.error("job %s: still running after %g s; stopping it", p.job_id, self.job_timeout_s)
            self._fail_by_id(
                p.job_id, JOB_TIMEOUT,
                f"the generation took longer than {self.job_timeout_s:g} s and was stopped; its images went back "
                "to the quota (try fewer or smaller images)",
            )
            fut.cancel()
            self._rebuild_gen(pool)
        except ForwardedError as exc:
            self._fail_by_id(p.job_id, exc.code, exc.message)
        except BrokenProcessPool:
            log.error("job %s: the worker process died", p.job_id)
            self._rebuild_gen(pool)
            self._fail_by_id(p.job_id, WORKER_CRASHED, "the worker process rendering this job crashed; retry it")
        except Exception as exc:  # CancelledError at shutdown, RuntimeError from a closed pool
            self._fail_by_id(
                p.job_id,
                INTERRUPTED if not self._accepting else "internal_error",
                INTERRUPTED_MESSAGE if not self._accepting else f"the job failed ({type(exc).__name__})",
            )
        else:
            self._succeed(p.job_id, images)
        finally:
            self._durations.append(time.monotonic() - t0)

    def _succeed(self, job_id: str, images: list[GeneratedBlob]) -> None:
        self._progress(job_id, "store", 0, len(images))
        with self.store.blobs.lock, self.store.session() as s:
            job = repo.load_job(s, job_id)
            if job is None or job.status != repo.RUNNING:
                return  # failed meanwhile (shutdown grace ran out): the result is dropped
            shas = []
            for k, im in enumerate(images):
                sha = self.store.blobs.put(im.data)
                shas.append(sha)
                repo.add_job_image(
                    s,
                    job,
                    k=k,
                    sha256=sha,
                    media_type=im.media_type,
                    width=im.width,
                    height=im.height,
                    byte_size=len(im.data),
                    record=im.record,
                )
            if not repo.move_job(s, job, repo.SUCCEEDED, finished_at=utcnow(), progress=progress_doc("done", 1, 1)):
                s.rollback()
                return
            self.audit.append(
                s,
                GENERATION_FINISHED,
                account_id=job.account_id,
                objects={"generation": job.id},
                outcome=repo.SUCCEEDED,
                detail={"outputs_sha256": shas},
            )
            s.commit()

    def _fail_by_id(self, job_id: str, code: str, message: str) -> None:
        with self.store.session() as s:
            job = repo.load_job(s, job_id)
            if job is not None and self._finish_failed(s, job, code, message, outcome=code):
                s.commit()

    def _finish_failed(self, s: Any, job: Job, code: str, message: str, *, outcome: str) -> bool:
        """Fail a job inside the caller's transaction: status, quota refund and audit entry together.

        A failure worth retrying (:data:`RETRYABLE`) also releases the job's ``Idempotency-Key``: a retry with
        the same key runs again instead of replaying the failure for as long as the key is remembered.
        """
        if not repo.move_job(s, job, repo.FAILED, error_code=code, error_message=message, finished_at=utcnow()):
            return False
        repo.release_images(s, job.account_id, job.usage_period, job.n_images)
        if code in RETRYABLE:
            repo.release_idempotency_for(s, job.account_id, job.id)
        self.audit.append(
            s, GENERATION_FINISHED, account_id=job.account_id, objects={"generation": job.id}, outcome=outcome
        )
        return True


# ------------------------------------------------------------------------------------------ the verify pool


class VerifyPool:
    """A bounded pool of its own for provenance checks (``POST /v1/verify``), with per-account concurrency.

    Verifying is open to every tier and costs a watermark search over the picture, so it must never queue in
    front of the work the service does for its callers: checks run in their own worker processes at the
    lowest CPU priority (``executor="process"``; threads in tests), at most ``workers`` at once plus
    ``queue_size`` waiting (beyond that 503 ``verify_queue_full``), and at most ``per_account`` in flight for
    one account (beyond that 429 ``verify_busy``). A place is claimed before the request body is read.
    """

    def __init__(
        self, *, workers: int = 1, queue_size: int = 4, per_account: int = 1, executor: str = "process"
    ) -> None:
        self.workers, self.queue_size, self.per_account = workers, queue_size, per_account
        self.executor_kind = executor
        self.capacity = workers + queue_size
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._total = 0
        self._durations: deque[float] = deque(maxlen=20)
        self._pool: Executor | None = None

    def start(self) -> None:
        if self._pool is not None:
            return
        if self.executor_kind == "process":
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_process,
                                             initargs=(None, VERIFY_NICE, os.getpid()))
        else:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tm-verify")

    def stop(self) -> None:
        if self._pool is not None:
            _close_pool(self._pool)
            self._pool = None

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

    def _release(self, account_id: str) -> None:
        with self._lock:
            left = self._inflight.get(account_id, 0) - 1
            if left > 0:
                self._inflight[account_id] = left
            else:
                self._inflight.pop(account_id, None)
            self._total -= 1

    async def run(self, fn: Callable[..., Outcome], *args: Any) -> Any:
        """Run one check (its place claimed) and return its value, or raise its error."""
        assert self._pool is not None, "verify pool not started"
        t0 = time.monotonic()
        try:
            fut = self._pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):
            self._rebuild()
            assert self._pool is not None
            fut = self._pool.submit(fn, *args)
        try:
            outcome = await asyncio.wrap_future(fut)
        except BrokenProcessPool:
            self._rebuild()
            raise WorkerCrashedError("a worker process crashed while checking this image; retry it") from None
        finally:
            self._durations.append(time.monotonic() - t0)
        return unwrap(outcome)

    def _rebuild(self) -> None:
        with self._lock:
            if self._pool is not None:
                _close_pool(self._pool)
            self._pool = None
        self.start()


class VerifySlot:
    """One claimed place in the verify pool; released once (use as a context manager)."""

    def __init__(self, pool: VerifyPool, account_id: str) -> None:
        self.pool, self.account_id = pool, account_id
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self.pool._release(self.account_id)

    def __enter__(self) -> VerifySlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
