"""Scale-out on loopback: generations per minute and styleembed latency with queue workers, against the embedded
default; styleembed at 200 calls/s; and batch profile builds on a local Ray instance.

Every configuration is real processes on 127.0.0.1 (``tests/scale/cluster.py``):

* **embedded** — one ``tastemaker serve`` on SQLite with its in-process pool (one job worker), memory limits;
* **queue 1+1** — ``tastemaker serve`` + one ``tastemaker worker --threads 1`` on PostgreSQL (database and
  queue), Redis rate limits;
* **queue 2+2** — ``tastemaker serve --workers 2`` + two ``tastemaker worker --threads 1``.

Each runs ``--duration`` seconds (default 60) of generations (n=1, 256 px) kept ``2 x workers + 1`` in flight,
with styleembed calls at ``--se-rate`` alongside; every accepted job is then followed to its end (one still
unfinished at the deadline, or gone, is **lost**). Then styleembed alone at 200 calls/s for a cached profile
(``--se200-duration``, sent by aiohttp: see :func:`styleembed_load`) on the embedded default (on two API
processes of the queue deployment it was slower still: p50 18 s, p99 28 s over 30 s), and ``tastemaker profile
batch --ray`` over ``--boards``
small boards on a local Ray instance (``ray start --head``). Needs PostgreSQL and Redis
(``eval "$(.ci/services.sh)"`` exports TASTEMAKER_TEST_POSTGRES_URL and TASTEMAKER_TEST_REDIS_URL) and the
``[queue]`` and ``[ray]`` extras.

Run: python bench/scale.py [--duration 60] [--quick]
Last line: {"gen_per_min_1w", "gen_per_min_2w", "scaling_2w", "styleembed_p99_ms", "lost_jobs", "count_5xx",
"styleembed_p99_ms_200rps", "ray_batch_profiles_per_s"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.scale.cluster: the same deployment as tests

from tests.scale.cluster import DEMO, Cluster, board_files, create_database, demo_pins, free_port  # noqa: E402


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    se_latency: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    jobs: dict[str, str] = field(default_factory=dict)  # id -> final status
    finished_in_window: int = 0
    transport_errors: int = 0

    @property
    def gen_per_min(self) -> float:
        return 60.0 * self.finished_in_window / self.seconds if self.seconds else 0.0

    @property
    def lost(self) -> int:
        return sum(st in ("unfinished", "vanished") for st in self.jobs.values())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


async def styleembed_load(base: str, key: str, board: str, rate: float, seconds: float, res: Result) -> None:
    """Open loop: a call every 1/rate s whether or not earlier ones answered.

    Sent with aiohttp, not httpx: at 200 calls/s httpx's client took 80 % of a core of this 2-core machine and
    queued the calls itself (p50 476 ms, p99 2.8 s, while the API process was at 38 % CPU), so the figure was the
    load generator's, not the service's."""
    if rate <= 0:
        return
    import aiohttp

    connector = aiohttp.TCPConnector(limit=400)
    async with aiohttp.ClientSession(base_url=base, headers={"Authorization": f"Bearer {key}"},
                                     connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(record: bool = True) -> None:
            t = time.perf_counter()
            try:
                async with session.post("/v1/styleembed", json={"board_id": board}) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError):
                res.transport_errors += record
                return
            if not record:
                return
            res.statuses[status] += 1
            if status == 200:
                res.se_latency.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(one(record=False) for _ in range(20)))  # open the connection pool
        start, k, tasks = time.perf_counter(), 0, []
        while (due := start + k / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
            k += 1
        await asyncio.gather(*tasks)


async def generation_load(client: httpx.AsyncClient, board: str, inflight: int, seconds: float, res: Result) -> None:
    """Closed loop: keep ``inflight`` generations running; count those that end inside the window."""
    selfie = (DEMO / "selfie.jpg").read_bytes()
    end = time.monotonic() + seconds

    async def lane() -> None:
        while time.monotonic() < end:
            try:
                r = await client.post("/v1/generations", headers={"Prefer": "wait=60"},
                                      data={"board_id": board, "consent": "true", "n": "1", "size": "256"},
                                      files={"selfie": ("selfie.jpg", selfie, "image/jpeg")})
            except httpx.HTTPError:
                res.transport_errors += 1
                continue
            res.statuses[r.status_code] += 1
            if r.status_code not in (200, 202):
                await asyncio.sleep(0.5)
                continue
            doc = r.json()
            res.jobs[doc["id"]] = doc["status"]
            while doc["status"] in ("queued", "running"):
                r = await client.get(f"/v1/generations/{doc['id']}", headers={"Prefer": "wait=30"})
                doc = r.json()
            res.jobs[doc["id"]] = doc["status"]
            if doc["status"] == "succeeded" and time.monotonic() <= end:
                res.finished_in_window += 1

    await asyncio.gather(*(lane() for _ in range(inflight)))


async def follow(client: httpx.AsyncClient, res: Result, deadline_s: float = 120.0) -> None:
    deadline = time.monotonic() + deadline_s
    for job_id, status in list(res.jobs.items()):
        while status in ("queued", "running") and time.monotonic() < deadline:
            r = await client.get(f"/v1/generations/{job_id}")
            status = "vanished" if r.status_code == 404 else r.json()["status"]
            if status in ("queued", "running"):
                await asyncio.sleep(0.5)
        res.jobs[job_id] = "unfinished" if status in ("queued", "running") else status


async def measure(name: str, base: str, key: str, workers: int, args: argparse.Namespace,
                  se_only: float = 0.0) -> Result:
    res = Result(name)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                 limits=limits) as client:
        r = await client.post("/v1/boards", data={"name": "demo", "pins": demo_pins()}, files=board_files())
        r.raise_for_status()
        board = r.json()["id"]
        (await client.post("/v1/styleembed", json={"board_id": board})).raise_for_status()  # build + cache
        if se_only:
            for _ in range(20):  # warm the connection pool and the process
                await client.post("/v1/styleembed", json={"board_id": board})
            t0 = time.perf_counter()
            await styleembed_load(base, key, board, se_only, args.se200_duration, res)
            res.seconds = time.perf_counter() - t0
            return res
        warm = Result("warm")  # every worker renders once before the clock starts
        await generation_load(client, board, workers, 0.1, warm)
        await asyncio.gather(generation_load(client, board, 2 * workers + 1, args.duration, res),
                             styleembed_load(base, key, board, args.se_rate, args.duration, res))
        res.seconds = args.duration
        await follow(client, res)
    return res


def run_config(name: str, root: Path, args: argparse.Namespace, *, queue: bool, api_workers: int, workers: int,
               se_only: float = 0.0) -> Result:
    drop = None
    if queue:
        db_url, drop = create_database(args.pg, prefix="tm_bench")
        c = Cluster.make(root / name, db_url, args.redis, TASTEMAKER_JOB_TIMEOUT_SECONDS="300")
    else:
        c = Cluster.make(root / name, None, "memory://", TASTEMAKER_JOB_WORKERS=str(workers))
    (root / name).mkdir(parents=True, exist_ok=True)
    try:
        key = c.key()
        procs = [c.api("api", workers=api_workers)] + [c.worker(f"worker{i}") for i in range(workers if queue else 0)]
        c.wait_ready(*procs)
        res = asyncio.run(measure(name, procs[0].url, key, workers, args, se_only))
        if any(code >= 500 for code in res.statuses):  # say what failed: the API process's own account of it
            codes = {k: v for k, v in res.statuses.items() if k >= 500}
            sys.stderr.write(f"--- {name}: {codes} from the API; its log:\n{procs[0].tail(6000)}\n")
        return res
    except BaseException:
        for p in c.procs.values():
            sys.stderr.write(f"--- {p.name}\n{p.tail()}\n")
        raise
    finally:
        c.stop()
        if drop is not None:
            drop()


def write_boards(root: Path, n: int) -> None:
    """``n`` small boards (3-5 pins of 48x48 px, crops of the demo pictures with a colour shift per board), as in
    the batch tests."""
    import numpy as np
    from PIL import Image

    pictures = sorted((DEMO / "board").glob("*.jpg"))
    sources = [np.asarray(Image.open(p).convert("RGB").resize((72, 72))) for p in pictures]
    for b in range(n):
        folder = root / f"board-{b:03d}"
        folder.mkdir(parents=True)
        for i in range(3 + b % 3):
            src = sources[(b * 5 + i * 3) % len(sources)].astype(np.int16)
            off = (b + i * 7) % 24
            shift = np.array([(b * 13) % 41 - 20, (b * 7) % 31 - 15, (b * 11) % 37 - 18], np.int16)
            crop = np.clip(src[off:off + 48, 23 - off:71 - off] + shift, 0, 255).astype(np.uint8)
            Image.fromarray(crop).save(folder / f"p{i}.png")


def ray_batch(root: Path, n_boards: int) -> tuple[float, str]:
    """Seconds for ``tastemaker profile batch --ray`` over ``n_boards`` small boards on a local Ray head."""
    boards = root / "boards"
    write_boards(boards, n_boards)
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port = str(free_port())
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--port", port, "--include-dashboard=false",
                    *common], check=True, capture_output=True, timeout=180)
    try:
        cmd = [sys.executable, "-c", "from tastemaker.cli import main; main()", "profile", "batch", str(boards),
               "-o", str(root / "profiles"), "--ray", f"127.0.0.1:{port}"]
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - t
        if out.returncode != 0:
            raise SystemExit(f"profile batch --ray failed ({out.returncode}):\n{out.stderr[-3000:]}")
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
    return seconds, f"{n_boards} boards"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per configuration")
    ap.add_argument("--se-rate", type=float, default=10.0, help="styleembed calls/s beside the generations")
    ap.add_argument("--se200-duration", type=float, default=60.0, help="seconds of styleembed at 200 calls/s")
    ap.add_argument("--boards", type=int, default=50, help="boards for the Ray batch build")
    ap.add_argument("--quick", action="store_true", help="20 s per phase, 20 boards")
    ap.add_argument("--only", choices=("embedded", "queue1", "queue2", "se200", "ray"), action="append")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.se200_duration, args.boards = 20.0, 20.0, 20
    args.pg, args.redis = os.environ.get("TASTEMAKER_TEST_POSTGRES_URL"), os.environ.get("TASTEMAKER_TEST_REDIS_URL")
    if not args.pg or not args.redis:  # skipped, saying why (make bench runs every benchmark)
        print('bench/scale.py: skipped: it needs PostgreSQL and Redis on loopback: eval "$(.ci/services.sh)" exports '
              "TASTEMAKER_TEST_POSTGRES_URL and TASTEMAKER_TEST_REDIS_URL")
        print(json.dumps({"skipped": "no TASTEMAKER_TEST_POSTGRES_URL / TASTEMAKER_TEST_REDIS_URL"}))
        return
    only = set(args.only or ("embedded", "queue1", "queue2", "se200", "ray"))
    results: dict[str, Result] = {}
    ray_s = ray_what = None
    with tempfile.TemporaryDirectory(prefix="tm-scale-") as tmp:
        root = Path(tmp)
        configs = [("embedded", False, 1, 1), ("queue1", True, 1, 1), ("queue2", True, 2, 2)]
        for name, queue, api_workers, workers in configs:
            if name in only:
                results[name] = run_config(name, root, args, queue=queue, api_workers=api_workers, workers=workers)
        if "se200" in only:
            results["se200"] = run_config("se200", root, args, queue=False, api_workers=1, workers=1, se_only=200.0)
        if "ray" in only:
            ray_s, ray_what = ray_batch(root, args.boards)
    print(f"Tastemaker scale-out on loopback ({os.cpu_count()} cores; {args.duration:g} s per configuration; "
          f"generations n=1 at 256 px; workers --threads 1)")
    head = (f"{'configuration':<24}{'gen/min':>8}{'jobs':>6}{'lost':>6}{'se calls':>9}{'se p50 ms':>10}"
            f"{'se p99 ms':>10}{'5xx':>5}{'429':>5}")
    print(head)
    print("-" * len(head))
    labels = {"embedded": "embedded (1 process)", "queue1": "queue 1 API + 1 worker",
              "queue2": "queue 2 API + 2 workers", "se200": "styleembed 200/s (emb.)"}
    for name, res in results.items():
        n5 = sum(v for k, v in res.statuses.items() if k >= 500)
        gen = f"{res.gen_per_min:8.1f}" if not name.startswith("se200") else f"{'-':>8}"
        print(f"{labels[name]:<24}{gen}{len(res.jobs):>6}{res.lost:>6}{len(res.se_latency):>9}"
              f"{percentile(res.se_latency, 50):>10.1f}{percentile(res.se_latency, 99):>10.1f}{n5:>5}"
              f"{res.statuses.get(429, 0):>5}")
    if ray_s is not None:
        print(f"profile batch --ray (local head, 2 CPUs): {ray_what} in {ray_s:.1f} s = {args.boards / ray_s:.2f} "
              "profiles/s (including the driver's start and Ray's connection)")
    g1 = results["queue1"].gen_per_min if "queue1" in results else float("nan")
    g2 = results["queue2"].gen_per_min if "queue2" in results else float("nan")
    load = [r for n, r in results.items() if not n.startswith("se200")]
    headline: dict[str, Any] = {
        "gen_per_min_1w": round(g1, 1),
        "gen_per_min_2w": round(g2, 1),
        "scaling_2w": round(g2 / g1, 2) if g1 == g1 and g1 > 0 else None,
        "styleembed_p99_ms": round(max((percentile(r.se_latency, 99) for r in load), default=float("nan")), 1),
        "lost_jobs": sum(r.lost for r in results.values()),
        "count_5xx": sum(v for r in results.values() for k, v in r.statuses.items() if k >= 500),
        "styleembed_p99_ms_200rps": round(percentile(results["se200"].se_latency, 99), 1) if "se200" in results
        else None,
        "ray_batch_profiles_per_s": round(args.boards / ray_s, 2) if ray_s else None,
    }
    print(json.dumps({k: (None if isinstance(v, float) and v != v else v) for k, v in headline.items()}))


if __name__ == "__main__":
    main()
