"""Helpers for the job tests: waiting on a condition with a deadline that fails the test, and a generation
task for worker *processes* (module-level, so a spawned worker can import it) that can be told to hang."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tastemaker.jobs import tasks

T = TypeVar("T")

#: The directory where :func:`hang_or_generate` leaves its markers (set before the app, and its workers, start).
MARKERS_ENV = "TM_TEST_JOB_MARKERS"
#: A job with this seed never finishes: only stopping its worker process ends it.
HANG_SEED = 13


def wait_until(predicate: Callable[[], T | None], timeout: float = 30.0, *, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)


def hung_pids(markers: Path) -> list[int]:
    """Worker processes that have started a hanging job."""
    return [int(p.name.split("-", 1)[1]) for p in markers.glob("hang-*")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def hang_or_generate(job_id: str, request: dict[str, Any], *args: Any) -> tasks.Outcome:
    """:func:`~tastemaker.jobs.tasks.task_generate` in a worker process, except:

    * a job with seed :data:`HANG_SEED` leaves a marker ``hang-<pid>`` and never finishes;
    * any other job leaves ``job-<pid>``, then waits until a hanging job has started and its worker is gone,
      and renders only then — so it is running, in its own worker, at the moment the stuck one is stopped
      (and fails if that does not happen within a minute).
    """
    markers = Path(os.environ[MARKERS_ENV])
    if request.get("seed") == HANG_SEED:
        (markers / f"hang-{os.getpid()}").write_text(job_id)
        while True:  # stuck (as a render in native code would be)
            time.sleep(60)
    (markers / f"job-{os.getpid()}").write_text(job_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hung = hung_pids(markers)
        if hung and not any(alive(pid) for pid in hung):
            return tasks.task_generate(job_id, request, *args)
        time.sleep(0.02)
    return ("error", "InternalError", "internal_error", "the hanging job's worker was never stopped", None)
