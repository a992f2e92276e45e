"""A queue-mode deployment on loopback for the scale tests and ``bench/scale.py``: a PostgreSQL database of its
own (database and queue), Redis rate limits, API processes (``tastemaker serve``) and queue workers
(``tastemaker worker``), each a real subprocess with its own log file. Nothing is mocked.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

import tastemaker

DEMO = Path(tastemaker.__file__).parent / "data" / "demo"
SRC = Path(tastemaker.__file__).parents[1]
TIER = "scale"
#: a tier that never limits what the tests and the benchmark send
TIERS = {
    TIER: {"requests_per_minute": 1_000_000, "styleembed_per_minute": 1_000_000, "images_per_month": 1_000_000,
           "max_active_jobs": 1000, "verify_per_minute": 1000},
    # the cross-process admission tests: three images a month; one generation at a time
    "three_images": {"requests_per_minute": 1000, "styleembed_per_minute": 1000, "images_per_month": 3,
                     "max_active_jobs": 100},
    "one_at_a_time": {"requests_per_minute": 1000, "styleembed_per_minute": 1000, "images_per_month": 1000,
                      "max_active_jobs": 1},
}
#: short queue timings, so a killed worker's job is taken over within seconds
FAST_QUEUE = {"TASTEMAKER_QUEUE_LEASE_SECONDS": "4", "TASTEMAKER_QUEUE_HEARTBEAT_SECONDS": "1",
              "TASTEMAKER_QUEUE_STALLED_SECONDS": "5", "TASTEMAKER_QUEUE_SWEEP_SECONDS": "1",
              "TASTEMAKER_QUEUE_REQUEUE_AFTER_SECONDS": "5"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def create_database(base_url: str, prefix: str = "tm_scale") -> tuple[str, Callable[[], None]]:
    """A new, empty database beside ``base_url``'s (loopback only); returns its URL and a function dropping it."""
    host = base_url.split("@")[-1].split("/")[0].split(":")[0]
    assert host in ("127.0.0.1", "localhost", "::1"), f"scale tests only touch loopback databases, not {host}"
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(sqlalchemy_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base_url.rsplit("/", 1)[0] + "/" + name, drop


def demo_pins() -> str:
    rows = list(csv.DictReader(io.StringIO((DEMO / "board" / "pins.csv").read_text())))
    return json.dumps([
        {"image": r["image"], "saves": int(r["saves"]), "clicks": int(r["clicks"]),
         "dwell_seconds": float(r["dwell_seconds"]), "pinned_at": r["pinned_at"], "title": r["title"],
         "tags": [t for t in r["tags"].split(";") if t]}
        for r in rows
    ])


def board_files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((DEMO / "board").glob("*.jpg"))]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@dataclass
class Cluster:
    """Processes sharing one database, queue, blob folder and Redis (see the module docstring)."""

    root: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path, db_url: str | None, redis_url: str, *, queue: bool = True, **extra: str) -> Cluster:
        """Settings for every process: ``db_url`` None is the embedded default (SQLite, in-process pool)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEMAKER_")}
        env.update({
            "TASTEMAKER_DATA_DIR": str(root / "data"),
            "TASTEMAKER_SECRET_KEY": secrets.token_urlsafe(32),
            "TASTEMAKER_TIERS": json.dumps(TIERS),
            "TASTEMAKER_RATELIMIT_STORAGE_URL": redis_url,
            "TASTEMAKER_GUARD_WORKERS": "0",
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        })
        if db_url is not None:
            env["TASTEMAKER_DATABASE_URL"] = db_url
            if queue:
                env["TASTEMAKER_QUEUE_URL"] = db_url
        env.update(extra)
        return cls(root, env)

    def _spawn(self, name: str, args: list[str], port: int | None = None) -> Proc:
        log = self.root / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - lives as long as the process
        cmd = [sys.executable, "-c", "from tastemaker.cli import main; main()", *args]
        popen = subprocess.Popen(cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        proc = self.procs[name] = Proc(name, popen, log, port)
        return proc

    def api(self, name: str, *, workers: int = 1) -> Proc:
        port = free_port()
        return self._spawn(name, ["serve", "--port", str(port), "--log-level", "warning", "--workers", str(workers)],
                           port)

    def worker(self, name: str, *, threads: int = 1, concurrency: int = 1) -> Proc:
        return self._spawn(name, ["worker", "--threads", str(threads), "--concurrency", str(concurrency),
                                  "--log-level", "warning"])

    def key(self, tier: str = TIER) -> str:
        """An API key of a new account on ``tier``, from ``tastemaker keys create`` (which migrates)."""
        out = subprocess.run(
            [sys.executable, "-c", "from tastemaker.cli import main; main()", "keys", "create", "--name", "scale",
             "--tier", tier], env=self.env, capture_output=True, text=True, timeout=120, check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def wait_ready(self, *procs: Proc, timeout: float = 120.0) -> None:
        """Every API process answers /healthz; every process is still alive."""
        deadline = time.monotonic() + timeout
        pending = [p for p in procs if p.port is not None]
        while pending:
            for p in procs:
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")
            for p in list(pending):
                try:
                    if httpx.get(p.url + "/healthz", timeout=2).status_code == 200:
                        pending.remove(p)
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("not ready in time: " + ", ".join(p.name for p in pending))
            time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[name]
        os.kill(p.popen.pid, sig)
        p.popen.wait(30)

    def stop(self) -> None:
        """SIGTERM everything (SIGKILL what does not end in 20 s), then its whole process group."""
        for p in self.procs.values():
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in self.procs.values():
            try:
                p.popen.wait(20)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)
            try:
                os.killpg(p.popen.pid, signal.SIGKILL)  # render processes a SIGKILL left behind (none expected)
            except (ProcessLookupError, PermissionError):
                pass


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something true (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
