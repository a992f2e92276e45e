"""A real Tastemaker server on loopback for the client tests: uvicorn in a thread on a free port (the startup is
awaited, never slept on), a key, and the demo board uploaded through the API."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tastemaker.api.admin import issue_key
from tastemaker.api.app import create_app

from ..api.conftest import DEMO, TEST_TIERS, demo_pins, make_settings


@dataclass
class LiveServer:
    url: str
    settings: Any
    app: Any

    @property
    def services(self) -> Any:
        return self.app.state.services

    def key(self, tier: str = "free", name: str = "client tester", scopes: list[str] | None = None) -> str:
        return issue_key(self.services.store, self.services.audit, self.settings, name=name, tier=tier,
                         scopes=scopes).key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(settings: Any) -> tuple[LiveServer, Callable[[], None]]:
    import uvicorn

    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    while thread.is_alive() and not server.started:
        ready.wait(0.02)
    assert server.started, "uvicorn did not start"

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return LiveServer(f"http://127.0.0.1:{port}", settings, app), stop


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for a test module (SQLite, thread executor, generous limits; the "tight" tier for limits)."""
    tiers = {**TEST_TIERS}
    server, stop = serve(make_settings(Path(tmp_path_factory.mktemp("live")), tiers=tiers))
    yield server
    stop()


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Servers with settings of their own (stopped at the end of the test)."""
    stops: list[Callable[[], None]] = []

    def start(**overrides: Any) -> LiveServer:
        server, stop = serve(make_settings(tmp_path / f"s{len(stops)}", **overrides))
        stops.append(stop)
        return server

    yield start
    for stop in stops:
        stop()


def board_files() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((DEMO / "board").glob("*.jpg"))]


@pytest.fixture(scope="session")
def selfie_bytes() -> bytes:
    return (DEMO / "selfie.jpg").read_bytes()


__all__ = ["DEMO", "LiveServer", "board_files", "demo_pins"]
