"""On-device generation against the server path, on the same machine: 4 images at 1024 px from the demo board.

Starts ``uvicorn`` on 127.0.0.1 (a subprocess with the production defaults: the process-pool job executor, one
job worker, SQLite in a temp dir), uploads the demo board, and warms both sides (one small run each, so model
loading is not counted). Then, ``--repeats`` times each, with the same request (n=4, 1024 px, 4:5, seed 7):

* **server**: ``POST /v1/generations`` with the selfie, followed to the end on its event stream, and the four
  images downloaded — what a client of the server path waits for;
* **on-device**: ``Client.generate_local``: the board's private taste release fetched, the selfie read and the
  four images rendered in this process (the same engine and identity guard), each registered with
  ``POST /v1/records`` (marked, signed, logged by the server) and the marked files received.

Both are wall-clock times seen by the caller. The on-device run is split into render (here) and register
(the server's share). The profile is the board's full profile on the server path and its differentially private
release on the device, and the device has no pins (medium transfer and scenes fall back to the colour grade), so
the two do not draw exactly the same pictures; the table says what each did.

Run: python bench/on_device.py [--repeats N]
Last line: {"server_s": ..., "on_device_s": ..., "on_device_render_s": ..., "on_device_register_s": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import tastemaker
from tastemaker.api.admin import issue_key
from tastemaker.api.settings import ServerSettings, TierLimits
from tastemaker.audit import AuditLog
from tastemaker.client import Client
from tastemaker.store import open_store

DEMO = Path(tastemaker.__file__).parent / "data" / "demo"
SELFIE = DEMO / "selfie.jpg"
REQUEST = dict(n=4, size=1024, aspect="4:5", seed=7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int, secret: str, tiers: dict[str, TierLimits]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TASTEMAKER_DATA_DIR": str(data_dir),
        "TASTEMAKER_SECRET_KEY": secret,
        "TASTEMAKER_TIERS": json.dumps({k: v.model_dump() for k, v in tiers.items()}),
        "TASTEMAKER_GUARD_WORKERS": "0",
        "PYTHONPATH": os.pathsep.join([str(Path(tastemaker.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    cmd = [sys.executable, "-m", "uvicorn", "tastemaker.api:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see its log")
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready in time")


def server_path(tm: Client, board_id: str, **request: Any) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    job = tm.generate(board_id=board_id, selfie=SELFIE, consent=True, **request)
    for im in job.images:
        tm.download(job.id, im.index)
    return time.perf_counter() - t, {"sizes": [f"{im.width}x{im.height}" for im in job.images]}


def on_device(tm: Client, board_id: str, **request: Any) -> tuple[float, dict[str, Any]]:
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "register" and done == 0:
            marks["register_start"] = time.perf_counter()

    t = time.perf_counter()
    result = tm.generate_local(board_id, [SELFIE], progress=progress, **request)
    total = time.perf_counter() - t
    register = total - (marks["register_start"] - t) if "register_start" in marks else 0.0
    return total, {"render_s": total - register, "register_s": register, "timings": result.timings,
                   "sizes": [f"{im.width}x{im.height}" for im in result.images],
                   "registered": sum(im.registered for im in result.images)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    tiers = {"bench": TierLimits(requests_per_minute=10_000, styleembed_per_minute=1_000, images_per_month=100_000,
                                 max_active_jobs=4, records_per_minute=1_000)}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, secret, port = Path(tmp), secrets.token_urlsafe(32), free_port()
        settings = ServerSettings(data_dir=data_dir, secret_key=secret, tiers=tiers)
        store = open_store(settings.db_url, settings.blob_dir)
        store.upgrade()
        key = issue_key(store, AuditLog(secret), settings, name="bench", tier="bench").key
        store.dispose()
        proc = start_server(data_dir, port, secret, tiers)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            with Client(base, key, timeout=600) as tm:
                files = [(p.name, p.read_bytes()) for p in sorted((DEMO / "board").glob("*.jpg"))]
                board = tm.create_board("demo", files)
                server_path(tm, board.id, n=1, size=256, seed=1)  # warm both sides: models, profile, release
                on_device(tm, board.id, n=1, size=256, seed=1)
                rows: dict[str, list[tuple[float, dict[str, Any]]]] = {"server": [], "on-device": []}
                for _ in range(args.repeats):
                    rows["server"].append(server_path(tm, board.id, **REQUEST))
                    rows["on-device"].append(on_device(tm, board.id, **REQUEST))
        finally:
            proc.terminate()
            proc.wait(30)
    server_s = statistics.median(t for t, _ in rows["server"])
    device_s = statistics.median(t for t, _ in rows["on-device"])
    render_s = statistics.median(info["render_s"] for _, info in rows["on-device"])
    register_s = statistics.median(info["register_s"] for _, info in rows["on-device"])
    print(f"{os.cpu_count()} CPUs; n=4, 1024 px (4:5), seed 7; median of {args.repeats}")
    print(f"{'path':<12}{'wall s':>9}  what")
    print(f"{'server':<12}{server_s:>9.2f}  POST /v1/generations + events + 4 downloads; images "
          f"{rows['server'][-1][1]['sizes']}")
    print(f"{'on-device':<12}{device_s:>9.2f}  styleembed + render here {render_s:.2f} s + register 4 "
          f"({register_s:.2f} s); images {rows['on-device'][-1][1]['sizes']}")
    timings = rows["on-device"][-1][1]["timings"]
    print("on-device render stages (last run): " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    print(json.dumps({"server_s": round(server_s, 2), "on_device_s": round(device_s, 2),
                      "on_device_render_s": round(render_s, 2), "on_device_register_s": round(register_s, 2)}))


if __name__ == "__main__":
    main()
