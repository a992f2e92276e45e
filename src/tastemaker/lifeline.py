"""Worker processes that die with their parent: :func:`die_with_parent`, first thing in a pool initializer.

A spawned pool worker waits on a queue whose pipe it holds both ends of, so when its parent is killed
(``kill -9``, the OOM killer) it never reads EOF and waits forever — and every restart of the parent leaves
one more set behind. Two mechanisms make a worker leave with its parent; either one is enough:

* **Linux: a parent-death signal** (``prctl(PR_SET_PDEATHSIG)``). The kernel sends it when the *thread*
  that spawned the worker ends, not only when the process does; a pool spawned from a request thread that
  later ends would get it with its parent alive. So the signal is :data:`SIGNAL` (SIGUSR2), handled here:
  the handler exits only when the parent process is really gone (``getppid()`` changed); after the end of
  a mere thread the kernel has handed the worker to another thread of the same process and it goes on.
* **Everywhere: a watchdog thread** that compares ``getppid()`` with the parent's pid every ``poll_s``
  seconds — for other systems, and for a worker whose main thread is inside native code when the signal
  comes.

The multiprocessing resource tracker needs neither: it exits when the last holder of its pipe (the
parent and the workers) is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Any

#: ``<linux/prctl.h>``: PR_SET_PDEATHSIG
PR_SET_PDEATHSIG = 1
#: The parent-death signal: caught, so the end of the spawning thread alone does not kill the worker.
SIGNAL = signal.SIGUSR2
#: Seconds between the watchdog's looks at the parent.
POLL_S = 0.5
#: Exit status of a worker that left because its parent died.
EXIT_ORPHANED = 70

_armed_for: int | None = None


def _exit_if_orphaned(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        os._exit(EXIT_ORPHANED)  # no cleanup: whatever the worker held belonged to the dead parent's work


def _set_pdeathsig(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)``; False where there is no such call (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int | None = None, *, poll_s: float = POLL_S) -> None:
    """Make this process exit as soon as ``parent_pid`` (default: the current parent) is gone.

    Call it in the worker (a pool ``initializer``), with the parent's pid taken in the parent
    (``os.getpid()`` in its ``initargs``): a parent that died before the worker got here is then noticed
    too. Idempotent.
    """
    global _armed_for
    parent = os.getppid() if parent_pid is None else parent_pid
    if _armed_for == parent:
        return
    _armed_for = parent
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: Any) -> None:
            _exit_if_orphaned(parent)

        with contextlib.suppress(ValueError, OSError):
            signal.signal(SIGNAL, on_signal)
            _set_pdeathsig(SIGNAL)

    def watch() -> None:
        while True:
            _exit_if_orphaned(parent)
            time.sleep(poll_s)

    threading.Thread(target=watch, name="tm-lifeline", daemon=True).start()
    _exit_if_orphaned(parent)  # it may have died before the signal was armed


__all__ = ["EXIT_ORPHANED", "POLL_S", "SIGNAL", "die_with_parent"]
