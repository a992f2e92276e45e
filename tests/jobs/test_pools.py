"""WorkerPool in thread mode: one submit behind call and call_async (values, forwarded errors), a time limit
that stops the wait, and a shutdown that fails what still waits. Process mode (a stuck worker stopped alone,
a dead worker reported as worker_crashed) is exercised through the service in ``test_runner.py``."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tastemaker.errors import ForwardedError, InputError
from tastemaker.jobs import WorkerPool
from tastemaker.jobs.tasks import Outcome, guard


def double(x: int) -> Outcome:
    return guard(lambda: x * 2)


def refuse(what: str) -> Outcome:
    def run() -> None:
        raise InputError(f"{what}: not usable")

    return guard(run)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool("test", 2, executor="thread")
    p.start()
    yield p
    p.close()


def test_call_and_call_async_give_the_same_values_and_errors(pool: WorkerPool) -> None:
    assert pool.call(double, 21) == 42
    assert asyncio.run(pool.call_async(double, 21)) == 42
    with pytest.raises(ForwardedError) as sync:
        pool.call(refuse, "x")
    with pytest.raises(ForwardedError) as asynchronous:
        asyncio.run(pool.call_async(refuse, "x"))
    for err in (sync.value, asynchronous.value):
        assert (err.name, err.code, err.message) == ("InputError", "invalid_input", "x: not usable")


def test_a_thread_task_over_its_time_limit_stops_the_wait(pool: WorkerPool) -> None:
    release = threading.Event()

    def held() -> Outcome:
        release.wait(20)
        return ("ok", "late")

    with pytest.raises(TimeoutError):
        pool.call(held, timeout=0.05)
    late = pool.submit(held)  # the first one still holds a thread: the pool's other thread runs this
    release.set()
    assert late.result(timeout=20) == "late" and pool.call(double, 1) == 2


def test_close_fails_what_waits_and_refuses_new_work(pool: WorkerPool) -> None:
    release, started = threading.Event(), threading.Event()

    def held() -> Any:
        started.set()
        release.wait(20)
        return ("ok", None)

    waiting = pool.submit(held)
    assert started.wait(10)
    pool.close()
    with pytest.raises(RuntimeError, match="shut down"):
        waiting.result(timeout=10)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.call(double, 1)
    release.set()
    assert pool.pids() == []  # threads: no worker processes


def test_a_task_that_raises_instead_of_returning_an_outcome(pool: WorkerPool) -> None:
    def broken() -> Outcome:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        pool.call(broken)


# ------------------------------------------------------------------ background pools step aside
class _Recorder:
    """Stands in for a background WorkerPool: records pause/resume."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def test_foreground_pauses_background_pools_while_busy_and_never_for_ever() -> None:
    from tastemaker.jobs import Foreground

    fg, bg = Foreground(max_pause_s=0.2), _Recorder()
    fg.add_background(bg)  # type: ignore[arg-type]
    fg.enter()
    fg.enter()  # a second task while the first runs: no second pause
    assert bg.calls == ["pause"] and fg.paused
    fg.exit()
    assert bg.calls == ["pause"]  # one still in flight
    fg.exit()
    assert bg.calls == ["pause", "resume"] and not fg.paused
    # a busy stretch longer than max_pause_s: resumed when the time is up, and not paused again until the
    # foreground has been idle once
    done = threading.Event()
    fg.enter()
    threading.Timer(0.5, done.set).start()
    assert done.wait(5)
    assert bg.calls == ["pause", "resume", "pause", "resume"] and not fg.paused
    fg.enter()
    fg.exit()
    assert bg.calls[-1] == "resume" and len(bg.calls) == 4
    fg.exit()
    fg.enter()  # idle once since: paused again
    assert bg.calls[-1] == "pause"
    fg.exit()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_paused_pool_s_worker_processes_are_stopped_and_continued() -> None:
    from tastemaker.jobs import Foreground

    from .helpers import wait_until

    bg = WorkerPool("bg", 1, executor="process")
    bg.start()
    try:
        assert bg.call(double, 4) == 8
        pid = wait_until(lambda: bg.pids(), what="the worker's pid")[0]
        fg = Foreground()
        fg.add_background(bg)
        fg.enter()
        wait_until(lambda: _state(pid) == "T", 5, what="the worker stopped")  # a signal lands asynchronously
        assert fg.paused
        fg.exit()
        wait_until(lambda: _state(pid) != "T", 5, what="the worker continued")
        assert bg.call(double, 5) == 10
    finally:
        bg.close()
