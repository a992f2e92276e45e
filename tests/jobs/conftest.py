"""The job tests run the service: its fixtures (apps on temp databases, API keys, the demo selfie) and a gate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import tastemaker.jobs.tasks as tasks
from tests.api.conftest import make_api, selfie_bytes

__all__ = ["Gate", "gate", "make_api", "selfie_bytes"]


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
