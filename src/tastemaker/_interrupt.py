"""Ctrl-C for the command line: one line, exit code 130, nothing half-written, whatever the process is doing.

A command is interrupted while threads render, sign and embed, sometimes inside native code (OpenCV, dlib,
MediaPipe's graph threads, c2pa's Rust library). Letting the interpreter shut down normally then is what
crashes: finalisation tears modules down under threads still running (``Fatal Python error``, a failed
import reported as a missing dependency), and a ``KeyboardInterrupt`` raised inside a Python callback that
Rust called aborts the process (a Rust panic, exit -6). So the CLI's entry point (:func:`install`, main
thread only) handles SIGINT once, itself:

1. The first Ctrl-C raises ``KeyboardInterrupt`` in the main thread, unless the main thread is inside
   c2pa's callbacks (then nothing is raised there). While it unwinds, thread pools are shut down without
   waiting for their running tasks (``ThreadPoolExecutor.shutdown`` is told not to wait once interrupted),
   ``finally`` blocks and ``write_atomic`` remove partial files, and the CLI prints one line.
2. The process then ends with ``os._exit(130)`` after flushing, never through interpreter finalisation.
3. A watcher thread, woken by the signal itself (``signal.set_wakeup_fd``: it runs even while the main
   thread sits in native code), ends the process the same way if the main thread has not done so within
   :data:`GRACE_S` seconds, or at once on a second Ctrl-C (unless a command installed its own SIGINT handler
   since, as ``serve`` does for a graceful shutdown: then SIGINT is left to it): it removes the temporary files
   :func:`~tastemaker.media.write_atomic` has open, stops the face-embedding worker processes, restores the
   terminal's cursor, prints the line and exits 130.

Worker processes started by the CLI ignore SIGINT (:func:`children_ignore_sigint`): a terminal delivers
Ctrl-C to the whole process group, and only the parent decides what happens.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

#: Exit status of an interrupted command (128 + SIGINT, as shells report it).
EXIT_CODE = 130
#: Seconds the main thread gets to unwind after the first Ctrl-C before the process ends without it.
GRACE_S = 2.0
MESSAGE = "Interrupted: stopped at Ctrl-C; no partial files were left."

_state: dict[str, Any] = {
    "installed": False,
    "interrupted": False,  # a SIGINT arrived (set by whichever of the handler and the watcher sees it first)
    "raised": False,  # KeyboardInterrupt was raised in the main thread: it is unwinding
    "announced": False,
    "before_exit": {},
}
_announce_lock = threading.Lock()
_exit_lock = threading.Lock()
_original_shutdown = ThreadPoolExecutor.shutdown


def interrupted() -> bool:
    """Whether this process has been interrupted (SIGINT) since :func:`install`."""
    return bool(_state["interrupted"])


def announce() -> None:
    """Print :data:`MESSAGE` on stderr, once per process (whoever ends the process first says it)."""
    with _announce_lock:
        if _state["announced"]:
            return
        _state["announced"] = True
    text = MESSAGE + "\n"
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a test runner's captured stderr
        sys.stderr.write(text)
        sys.stderr.flush()
        return
    if os.isatty(fd):
        text = "\x1b[?25h\n" + text  # show the cursor a progress bar hid; start below the bar (or the ^C)
    with contextlib.suppress(OSError):
        sys.stderr.flush()
        os.write(fd, text.encode())


def before_exit(key: str, fn: Callable[[], None]) -> None:
    """Run ``fn`` (best effort, for half a second at most) before an interrupted process exits without
    unwinding, e.g. to stop a progress bar; a later call with the same ``key`` replaces it."""
    _state["before_exit"][key] = fn


def exit_now() -> None:
    """End the interrupted process: partial files removed, workers stopped, one line printed, exit 130."""
    _exit_lock.acquire()  # one exit; a second caller waits here until the process is gone
    for fn in list(_state["before_exit"].values()):
        _run_briefly(fn, 0.5)
    announce()
    from .media import TEMP_FILES_LOCK, remove_temp_files

    if TEMP_FILES_LOCK.acquire(timeout=1.0):  # held until the end: no new temporary file can appear
        remove_temp_files()
    _stop_worker_processes()
    _run_briefly(_release_shared_semaphores, 0.5)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(EXIT_CODE)


def _run_briefly(fn: Callable[[], None], timeout: float) -> None:
    def target() -> None:
        with contextlib.suppress(Exception):
            fn()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)


def _stop_worker_processes() -> None:
    """Terminate this process's worker processes (the identity guard's embedding workers): every child
    ``multiprocessing`` started, found through its public API rather than a pool's private fields."""
    import multiprocessing

    for proc in multiprocessing.active_children():
        with contextlib.suppress(Exception):
            proc.terminate()


def _release_shared_semaphores() -> None:
    """Run multiprocessing's own exit finalisers (unlink and unregister the pools' named semaphores), which
    ``os._exit`` skips: the resource tracker would otherwise warn about "leaked semaphore objects"."""
    if "multiprocessing.util" in sys.modules:
        from multiprocessing import util

        run_finalizers = getattr(util, "_run_finalizers", None)  # private, so looked up: gone = nothing to do
        if run_finalizers is not None:
            run_finalizers(0)


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Processes spawned inside this block ignore SIGINT: an ignored signal stays ignored across fork and exec,
    and Python then installs no KeyboardInterrupt handler. (A blocked signal mask does not survive
    multiprocessing's spawn.) A Ctrl-C during the block, a few milliseconds, is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _inside_foreign_callback(frame: FrameType | None) -> bool:
    """Whether the main thread is running code of a native library's Python bindings (c2pa's stream and
    signer callbacks are called from Rust: an exception raised there aborts the process)."""
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if "/c2pa/" in name:
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Python-level handler (main thread, between bytecodes): raise KeyboardInterrupt once."""
    _state["interrupted"] = True
    if _state["raised"] or _inside_foreign_callback(frame):
        return  # the watcher thread ends the process: at once on a second Ctrl-C, else after GRACE_S
    _state["raised"] = True
    raise KeyboardInterrupt


def _watch(fd: int) -> None:
    """Woken by the C-level signal handler through the wakeup fd, whatever the main thread is doing."""
    seen = 0
    deadline: float | None = None
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            exit_now()  # the main thread did not finish unwinding in time
        try:
            data = os.read(fd, 256)
        except BlockingIOError:
            continue
        if signal.getsignal(signal.SIGINT) is not _on_sigint:
            continue  # a command took SIGINT over (``serve``: uvicorn's graceful shutdown): it is theirs
        seen += data.count(signal.SIGINT)
        if seen and deadline is None:
            _state["interrupted"] = True
            deadline = time.monotonic() + GRACE_S
        if seen >= 2:
            exit_now()


def _shutdown(self: ThreadPoolExecutor, wait: bool = True, *, cancel_futures: bool = False) -> None:
    if _state["raised"]:  # unwinding after Ctrl-C: the process is about to end, do not wait for running tasks
        return _original_shutdown(self, wait=False, cancel_futures=True)
    return _original_shutdown(self, wait=wait, cancel_futures=cancel_futures)


def install() -> None:
    """Take over SIGINT for this process (the CLI's entry point; main thread only; idempotent)."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return  # started with Ctrl-C ignored (nohup, a background job): keep it so
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGINT, _on_sigint)
    ThreadPoolExecutor.shutdown = _shutdown  # type: ignore[method-assign, assignment]
    threading.Thread(target=_watch, args=(read_fd,), name="tm-interrupt", daemon=True).start()
    _state["installed"] = True


__all__ = ["EXIT_CODE", "MESSAGE", "announce", "before_exit", "children_ignore_sigint", "exit_now", "install",
           "interrupted"]
