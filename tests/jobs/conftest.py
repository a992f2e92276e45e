"""The job tests run the service: its fixtures (apps on temp databases, API keys, the demo selfie), a gate, and
markers left by worker processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import tastemaker.jobs.tasks as tasks
from tests.api.conftest import make_api, selfie_bytes

from .helpers import MARKERS_ENV, hang_or_generate

__all__ = ["Gate", "gate", "make_api", "markers", "selfie_bytes"]


@dataclass
class Gate:
    """Generations held in their worker thread until :attr:`open` is set.

    :attr:`entered` is released once per job that reached its worker, :attr:`returned` once per job whose
    work (the real render, after the gate) has returned.
    """

    open: threading.Event = field(default_factory=threading.Event)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    returned: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Hold every generation (thread executor) in its worker until the test opens the gate."""
    g = Gate()
    real = tasks.task_generate

    def held(*args: Any, **kw: Any) -> Any:
        g.entered.release()
        try:
            g.open.wait(20)
            return real(*args, **kw)
        finally:
            g.returned.release()

    monkeypatch.setattr(tasks, "task_generate", held)
    yield g
    g.open.set()


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Generations run :func:`~tests.jobs.helpers.hang_or_generate` in the worker processes, which leave their
    markers here (set before the app, so its workers inherit it)."""
    where = tmp_path / "markers"
    where.mkdir()
    monkeypatch.setenv(MARKERS_ENV, str(where))
    monkeypatch.setattr(tasks, "task_generate", hang_or_generate)
    return where
