"""A real ``tastemaker serve`` on loopback, for the robustness tests and ``bench/robustness.py``.

A subprocess on a free 127.0.0.1 port with its own data dir and secret; readiness and every later event are
awaited with deadlines (polling), never fixed sleeps. Linux only where process trees are read (``/proc``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: ``tastemaker`` run by this interpreter (no dependence on the console script being on PATH)
TASTEMAKER = [sys.executable, "-c", "import sys; from tastemaker.cli import main; sys.argv[0] = 'tastemaker'; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], deadline_s: float, *, every: float = 0.1, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or raise TimeoutError after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise TimeoutError(f"not within {deadline_s:g} s: {what or predicate}")
        time.sleep(every)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever inherited it, is not alive)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def end(pids: list[int]) -> None:
    """SIGKILL what is still alive of ``pids`` (cleanup after a test that found leftovers)."""
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return sorted(out)


def server_env(data_dir: Path, secret: str | None = None, **settings: Any) -> dict[str, str]:
    """The environment of a server on ``data_dir``: only this project's code, no developer TASTEMAKER_* vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEMAKER_")}
    env.update(
        TASTEMAKER_DATA_DIR=str(data_dir),
        TASTEMAKER_SECRET_KEY=secret or secrets.token_urlsafe(32),
        TASTEMAKER_GUARD_WORKERS="0",
        PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
        HF_HUB_OFFLINE="1",
    )
    env.update({f"TASTEMAKER_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def issue_key(env: dict[str, str], tier: str = "pro", name: str = "robustness") -> str:
    """An API key for the server's store, made in this process (no server needed)."""
    from tastemaker.api.admin import issue_key as _issue
    from tastemaker.api.settings import ServerSettings
    from tastemaker.audit import AuditLog
    from tastemaker.store import open_store

    settings = ServerSettings(data_dir=Path(env["TASTEMAKER_DATA_DIR"]),
                              secret_key=env["TASTEMAKER_SECRET_KEY"])  # type: ignore[arg-type]
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    store = open_store(settings.db_url, settings.blob_dir)
    try:
        store.upgrade()
        return _issue(store, AuditLog(settings.secret_key.get_secret_value()), settings, name=name, tier=tier).key
    finally:
        store.dispose()


def trickle_verify_body(port: int, key: str, limit_s: float) -> tuple[bytes, float]:
    """Start a ``POST /v1/verify`` whose body arrives one byte every 0.2 s (alive, but far too slow) until the
    server answers or closes, or ``limit_s`` passes: (what it answered, seconds it took)."""
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(f"POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".encode())
        s.settimeout(0.2)
        t0, answer = time.monotonic(), b""
        while time.monotonic() - t0 < limit_s:
            try:
                s.sendall(b" ")
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            except TimeoutError:
                continue
            except OSError:
                break
        return answer, time.monotonic() - t0
    finally:
        s.close()


class LiveServer:
    """``tastemaker serve`` as a subprocess; its log (stdout + stderr) goes to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, *, port: int | None = None) -> None:
        self.env, self.log_path = env, log_path
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, deadline_s: float = 120.0) -> LiveServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*TASTEMAKER, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                return httpx.get(self.base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, deadline_s, every=0.2, what="the server's /healthz")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def children(self) -> list[int]:
        return children(self.pid)

    def kill9(self) -> None:
        """SIGKILL the server process alone (not its process group): what the OOM killer or ``kill -9`` does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """Stop it: SIGINT, then SIGKILL after 60 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "TASTEMAKER", "LiveServer", "alive", "children", "end", "free_port", "issue_key", "server_env", "wait_for"
]
