"""HTTP API under load: latency, throughput, rate limiting and job accounting, against a real server.

Starts ``uvicorn`` on 127.0.0.1 (a subprocess, default process-pool job executor, SQLite in a temp
dir), uploads the demo board, warms its profile, then drives two open-loop phases (requests are sent
on schedule whether or not earlier ones have answered):

* **steady** — ``/v1/styleembed`` and ``/v1/generations`` (n=1, 256 px) at fixed rates below the limits;
* **overload** — ``/v1/styleembed`` at 2x its tier limit, and ``/v1/generations`` at 2x what the
  account may have in flight (``max_active_jobs`` / the steady phase's mean job time).

Then every accepted job is followed to the end: a job that is not ``succeeded``/``failed`` by the
deadline, or that vanished, is **lost**. Targets: 0 5xx, 0 lost, styleembed p99 < 50 ms (cached).

Run: python bench/api_load.py [--quick]
Last line: {"styleembed_p99_ms": ..., "count_5xx": ..., "lost_jobs": ..., "count_429": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import tastemaker
from tastemaker.api.admin import issue_key
from tastemaker.api.settings import ServerSettings, TierLimits
from tastemaker.audit import AuditLog
from tastemaker.store import open_store

DEMO = Path(tastemaker.__file__).parent / "data" / "demo"
TIER = "bench"


@dataclass
class Sample:
    phase: str
    endpoint: str
    status: int
    seconds: float
    code: str = ""


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)  # id -> phase
    errors: Counter[str] = field(default_factory=Counter)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def demo_pins() -> str:
    rows = list(csv.DictReader(io.StringIO((DEMO / "board" / "pins.csv").read_text())))
    return json.dumps([
        {"image": r["image"], "saves": int(r["saves"]), "clicks": int(r["clicks"]),
         "dwell_seconds": float(r["dwell_seconds"]), "pinned_at": r["pinned_at"], "title": r["title"],
         "tags": [t for t in r["tags"].split(";") if t]}
        for r in rows
    ])


async def timed(run: Run, phase: str, endpoint: str, coro: Any) -> httpx.Response | None:
    t = time.perf_counter()
    try:
        r: httpx.Response = await coro
    except httpx.HTTPError as exc:  # connection reset, timeout: counted, never hidden
        run.errors[f"{endpoint}: {type(exc).__name__}"] += 1
        run.samples.append(Sample(phase, endpoint, 0, time.perf_counter() - t, "transport_error"))
        return None
    code = ""
    if r.status_code >= 400:
        try:
            code = r.json().get("code", "")
        except ValueError:
            code = "non_json"
    run.samples.append(Sample(phase, endpoint, r.status_code, time.perf_counter() - t, code))
    return r


async def drive(
    client: httpx.AsyncClient, run: Run, phase: str, seconds: float, se_rate: float, gen_rate: float, board_id: str,
    selfie: bytes,
) -> None:
    """Open loop: each stream fires on its own schedule; responses are awaited in the background."""

    async def styleembed() -> None:
        await timed(run, phase, "styleembed", client.post("/v1/styleembed", json={"board_id": board_id}))

    async def generation() -> None:
        r = await timed(run, phase, "generations", client.post(
            "/v1/generations",
            data={"board_id": board_id, "consent": "true", "n": "1", "size": "256"},
            files={"selfie": ("selfie.jpg", selfie, "image/jpeg")},
        ))
        if r is not None and r.status_code in (200, 202):
            run.jobs[r.json()["id"]] = phase

    async def stream(rate: float, make: Any) -> None:
        if rate <= 0:
            return
        start, k, tasks = time.perf_counter(), 0, []
        while (due := start + k / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(make()))
            k += 1
        await asyncio.gather(*tasks)

    await asyncio.gather(stream(se_rate, styleembed), stream(gen_rate, generation))


async def follow_jobs(client: httpx.AsyncClient, run: Run, deadline_s: float) -> dict[str, str]:
    """Poll every accepted job until it ends or the deadline passes; returns id -> final status."""
    final: dict[str, str] = {}
    pending = set(run.jobs)
    deadline = time.monotonic() + deadline_s
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            r = await client.get(f"/v1/generations/{job_id}")
            if r.status_code == 404:
                final[job_id] = "vanished"
                pending.discard(job_id)
            elif r.status_code == 200 and r.json()["status"] in ("succeeded", "failed"):
                doc = r.json()
                final[job_id] = doc["status"] if doc["status"] == "succeeded" else f"failed:{doc['error']['code']}"
                pending.discard(job_id)
        if pending:
            await asyncio.sleep(0.5)
    for job_id in pending:
        final[job_id] = "unfinished"
    return final


def start_server(data_dir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    cmd = [sys.executable, "-m", "uvicorn", "tastemaker.api:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}; see its log")
            try:
                if (await c.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not become ready in time")


async def bench(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    se_limit = args.styleembed_limit
    tiers = {TIER: TierLimits(requests_per_minute=100_000, styleembed_per_minute=se_limit,
                              images_per_month=1_000_000, max_active_jobs=args.max_active_jobs)}
    secret = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "TASTEMAKER_DATA_DIR": str(data_dir),
        "TASTEMAKER_SECRET_KEY": secret,
        "TASTEMAKER_TIERS": json.dumps({k: v.model_dump() for k, v in tiers.items()}),
        "TASTEMAKER_JOB_EXECUTOR": args.executor,
        "TASTEMAKER_JOB_WORKERS": str(args.workers),
        "TASTEMAKER_JOB_QUEUE_SIZE": str(args.queue_size),
        "TASTEMAKER_GUARD_WORKERS": "0",
        "PYTHONPATH": os.pathsep.join([str(Path(tastemaker.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    settings = ServerSettings(data_dir=data_dir, secret_key=secret, tiers=tiers)
    store = open_store(settings.db_url, settings.blob_dir)
    store.upgrade()
    key = issue_key(store, AuditLog(secret), settings, name="bench", tier=TIER).key
    store.dispose()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(data_dir, port, env)
    run = Run()
    try:
        await wait_ready(base, proc)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                     limits=limits) as client:
            files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((DEMO / "board").glob("*.jpg"))]
            r = await client.post("/v1/boards", data={"name": "demo", "pins": demo_pins()}, files=files)
            r.raise_for_status()
            board_id = r.json()["id"]
            selfie = (DEMO / "selfie.jpg").read_bytes()
            t = time.perf_counter()
            (await client.post("/v1/styleembed", json={"board_id": board_id})).raise_for_status()  # build + cache
            first_profile_s = time.perf_counter() - t
            warm = await client.post("/v1/generations", headers={"Prefer": "wait=60"}, files={"selfie": (
                "selfie.jpg", selfie, "image/jpeg")}, data={"board_id": board_id, "consent": "true", "n": "1",
                                                            "size": "256"})
            warm.raise_for_status()
            run.jobs[warm.json()["id"]] = "warm-up"

            steady_se = args.styleembed_rate or se_limit / 60 / 2
            t0 = time.perf_counter()
            await drive(client, run, "steady", args.steady_s, steady_se, args.gen_rate, board_id, selfie)
            steady_wall = time.perf_counter() - t0
            steady_final = await follow_jobs(client, run, args.job_deadline_s)
            job_times = await job_durations(client, [j for j, p in run.jobs.items() if p == "steady"])
            mean_job = statistics.mean(job_times) if job_times else 2.0
            overload_gen = 2 * args.max_active_jobs / max(mean_job, 0.1)
            overload_se = 2 * se_limit / 60
            t0 = time.perf_counter()
            await drive(client, run, "overload", args.overload_s, overload_se, overload_gen, board_id, selfie)
            overload_wall = time.perf_counter() - t0
            final = {**steady_final, **await follow_jobs(client, run, args.job_deadline_s)}
            health = (await client.get("/healthz")).json()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "run": run, "final": final, "walls": {"steady": steady_wall, "overload": overload_wall},
        "rates": {"steady": (steady_se, args.gen_rate), "overload": (overload_se, overload_gen)},
        "mean_job_s": mean_job, "first_profile_s": first_profile_s, "health": health, "se_limit": se_limit,
    }


async def job_durations(client: httpx.AsyncClient, ids: list[str]) -> list[float]:
    from datetime import datetime

    out = []
    for job_id in ids:
        doc = (await client.get(f"/v1/generations/{job_id}")).json()
        if doc.get("status") == "succeeded" and doc.get("started_at") and doc.get("finished_at"):
            start = datetime.fromisoformat(doc["started_at"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(doc["finished_at"].replace("Z", "+00:00"))
            out.append((end - start).total_seconds())
    return out


def report(res: dict[str, Any]) -> dict[str, Any]:
    run: Run = res["run"]
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in run.samples:
        groups[(s.phase, s.endpoint)].append(s)
    print(f"Tastemaker API load ({os.cpu_count()} cores; styleembed limit {res['se_limit']}/min; mean job "
          f"{res['mean_job_s']:.2f} s; first profile build {res['first_profile_s'] * 1000:.0f} ms)")
    head = (f"{'phase':<9}{'endpoint':<12}{'rate/s':>7}{'sent':>6}{'2xx':>6}{'429':>6}{'5xx':>5}{'other':>6}"
            f"{'p50 ms':>8}{'p99 ms':>8}{'2xx/s':>7}")
    print(head)
    print("-" * len(head))
    for (phase, endpoint), samples in sorted(groups.items(), key=lambda kv: (kv[0][0] != "steady", kv[0][1])):
        ok = [s for s in samples if 200 <= s.status < 300]
        n429 = sum(s.status == 429 for s in samples)
        n5xx = sum(s.status >= 500 for s in samples)
        other = len(samples) - len(ok) - n429 - n5xx
        lat = [s.seconds * 1000 for s in ok]
        rate = res["rates"][phase][0 if endpoint == "styleembed" else 1]
        print(f"{phase:<9}{endpoint:<12}{rate:>7.2f}{len(samples):>6}{len(ok):>6}{n429:>6}{n5xx:>5}{other:>6}"
              f"{percentile(lat, 50):>8.1f}{percentile(lat, 99):>8.1f}{len(ok) / res['walls'][phase]:>7.2f}")
    codes = Counter(s.code for s in run.samples if s.code)
    print("error codes: " + (", ".join(f"{c} x{n}" for c, n in codes.most_common()) or "none"))
    if run.errors:
        print("transport errors: " + ", ".join(f"{k} x{n}" for k, n in run.errors.items()))
    final = res["final"]
    outcome = Counter(final.values())
    lost = [j for j, st in final.items() if st in ("unfinished", "vanished")]
    print(f"jobs accepted {len(run.jobs)}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcome.items()))
          + f"; lost {len(lost)}")
    print(f"server at the end: {res['health']['status']}, jobs {res['health']['jobs']}")
    se_ok = [s.seconds * 1000 for s in run.samples if s.endpoint == "styleembed" and 200 <= s.status < 300]
    return {
        "styleembed_p99_ms": round(percentile(se_ok, 99), 1),
        "count_5xx": sum(s.status >= 500 for s in run.samples),
        "lost_jobs": len(lost) + (len(run.jobs) - len(final)),
        "count_429": sum(s.status == 429 for s in run.samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (~1 min) for CI")
    ap.add_argument("--steady-s", type=float, default=30.0)
    ap.add_argument("--overload-s", type=float, default=75.0, help="> 30 s so 2x the per-minute limit bites")
    ap.add_argument("--styleembed-limit", type=int, default=120, help="styleembed calls per minute for the tier")
    ap.add_argument("--styleembed-rate", type=float, default=0.0, help="steady rate (default: half the limit)")
    ap.add_argument("--gen-rate", type=float, default=0.5, help="steady generations per second")
    ap.add_argument("--max-active-jobs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue-size", type=int, default=8)
    ap.add_argument("--executor", choices=("process", "thread"), default="process")
    ap.add_argument("--job-deadline-s", type=float, default=120.0)
    args = ap.parse_args()
    if args.quick:
        args.steady_s, args.overload_s = 8.0, 36.0
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        try:
            res = asyncio.run(bench(args, Path(tmp)))
        except BaseException:
            log = Path(tmp) / "server.log"
            if log.exists():
                sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        headline = report(res)
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
