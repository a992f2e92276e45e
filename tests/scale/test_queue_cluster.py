"""Queue mode end to end with real processes on loopback: two API processes and two queue workers on one
PostgreSQL database (database and queue) with Redis rate limits (``tests/scale/cluster.py``).

* a job submitted to API process A streams its server-sent events from API process B;
* 20 generations (n=2, 256 px) submitted through both processes while one worker is killed with SIGKILL in the
  middle of a job: all 20 succeed, the quota holds exactly 20 x 2 images, the provenance log holds exactly 40
  records (one per image, none twice), each job has one ``generation.finished`` audit entry, and the killed
  job was taken over by the other worker.

Skipped, with the reason, without ``TASTEMAKER_TEST_POSTGRES_URL`` and ``TASTEMAKER_TEST_REDIS_URL``
(``.ci/services.sh`` starts both; CI sets them) or without the ``[queue]`` extra.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from .cluster import DEMO, FAST_QUEUE, Cluster, board_files, create_database, demo_pins, sqlalchemy_url, wait_until

PG = os.environ.get("TASTEMAKER_TEST_POSTGRES_URL")
REDIS = os.environ.get("TASTEMAKER_TEST_REDIS_URL")
N_JOBS, N_IMAGES = 20, 2
ADMISSION_TIERS = ("three_images", "one_at_a_time")

pytestmark = [
    pytest.mark.skipif(not PG or not REDIS, reason="queue mode needs TASTEMAKER_TEST_POSTGRES_URL and "
                       'TASTEMAKER_TEST_REDIS_URL (eval "$(.ci/services.sh)" starts both on loopback)'),
    pytest.mark.skipif(importlib.util.find_spec("procrastinate") is None,
                       reason="queue mode needs the [queue] extra (procrastinate)"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    assert PG is not None and REDIS is not None
    root = tmp_path_factory.mktemp("cluster")
    db_url, drop = create_database(PG)
    c = Cluster.make(root, db_url, REDIS, TASTEMAKER_JOB_TIMEOUT_SECONDS="120", **FAST_QUEUE)
    try:
        key = c.key()
        procs = [c.api("api_a"), c.api("api_b"), c.worker("worker_1"), c.worker("worker_2")]
        c.wait_ready(*procs)
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(procs[0].url + "/v1/boards", headers=auth, data={"name": "demo", "pins": demo_pins()},
                       files=board_files(), timeout=120)
        assert r.status_code == 201, r.text
        yield {"cluster": c, "db": sqlalchemy_url(db_url), "auth": auth, "board": r.json()["id"],
               "a": procs[0].url, "b": procs[1].url, "root": root, "keys": {t: c.key(t) for t in ADMISSION_TIERS}}
    except BaseException:
        for p in c.procs.values():
            print(f"--- {p.name}\n{p.tail()}")
        raise
    finally:
        c.stop()
        drop()


def post_generation(ctx: dict[str, Any], base: str, key: str, *, board: str, n: int = 1, size: int = 256,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(base + "/v1/generations", headers={"Authorization": f"Bearer {key}", **(headers or {})},
                      data={"board_id": board, "consent": "true", "n": str(n), "size": str(size)}, timeout=120,
                      files={"selfie": ("selfie.jpg", (DEMO / "selfie.jpg").read_bytes(), "image/jpeg")})


def own_board(ctx: dict[str, Any], key: str) -> str:
    r = httpx.post(ctx["a"] + "/v1/boards", headers={"Authorization": f"Bearer {key}"}, timeout=120,
                   data={"name": "demo", "pins": demo_pins()}, files=board_files())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def submit(ctx: dict[str, Any], base: str, **fields: Any) -> str:
    data = {"board_id": ctx["board"], "consent": "true", "n": str(N_IMAGES), "size": "256", **fields}
    r = httpx.post(base + "/v1/generations", headers=ctx["auth"], data=data, timeout=60,
                   files={"selfie": ("selfie.jpg", (DEMO / "selfie.jpg").read_bytes(), "image/jpeg")})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def query(ctx: dict[str, Any], sql: str, **params: Any) -> list[Any]:
    engine = create_engine(ctx["db"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def test_events_of_a_job_submitted_to_one_process_stream_from_another(cluster: dict[str, Any]) -> None:
    job_id = submit(cluster, cluster["a"])
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{cluster['b']}/v1/generations/{job_id}/events", headers=cluster["auth"],
                      timeout=httpx.Timeout(120, read=60)) as r:
        assert r.status_code == 200
        event = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
    kinds = [e for e, _ in events]
    assert kinds[-1] == "succeeded", kinds
    stages = [doc["progress"]["stage"] for e, doc in events if e == "progress"]
    assert any(stage not in ("queued", "starting") for stage in stages), stages  # progress as it rendered
    fractions = [doc["progress"]["fraction"] for e, doc in events if e == "progress"]
    assert fractions == sorted(fractions)
    assert len(events[-1][1]["images"]) == N_IMAGES


def test_twenty_jobs_through_both_processes_with_a_worker_killed_mid_job(cluster: dict[str, Any]) -> None:
    c: Cluster = cluster["cluster"]
    before = query(cluster, "SELECT count(*) FROM jobs")[0][0]
    ids = [submit(cluster, cluster["a" if i % 2 else "b"]) for i in range(N_JOBS)]
    victim = c.procs["worker_1"].popen.pid

    def rendering_on_victim() -> Any:
        rows = query(cluster, "SELECT id FROM jobs WHERE status = 'running' AND lease_owner LIKE :owner "
                     "AND progress->>'stage' IN ('identity', 'profile', 'render')", owner=f"%:{victim}:%")
        return rows[0][0] if rows else None

    killed_job = wait_until(rendering_on_victim, timeout=90, what="worker_1 to be rendering a job", every=0.05)
    c.kill("worker_1")

    def all_done() -> Any:
        rows = query(cluster, "SELECT status, count(*) FROM jobs WHERE id = ANY(:ids) GROUP BY status", ids=ids)
        return dict(rows) if dict(rows).get("succeeded", 0) + dict(rows).get("failed", 0) == N_JOBS else None

    statuses = wait_until(all_done, timeout=150, what="all 20 jobs to end", every=0.5)
    assert statuses == {"succeeded": N_JOBS}, statuses
    # the killed job was taken over by the other worker
    attempts = dict(query(cluster, "SELECT id, attempts FROM jobs WHERE id = ANY(:ids)", ids=ids))
    assert attempts[killed_job] >= 2, attempts
    survivor = c.procs["worker_2"].popen.pid
    assert query(cluster, "SELECT count(*) FROM jobs WHERE lease_owner NOT LIKE :o AND id = ANY(:ids) "
                 "AND attempts > 1", o=f"%:{survivor}:%", ids=ids)[0][0] == 0
    # quota charged exactly once per image (the events test's job is the one before)
    total = before + N_JOBS
    assert query(cluster, "SELECT sum(images) FROM usage")[0][0] == total * N_IMAGES
    images = query(cluster, "SELECT job_id, k, record FROM job_images")
    assert len(images) == total * N_IMAGES and len({(j, k) for j, k, _ in images}) == len(images)
    # provenance: one logged record per image, none twice, each the one its image names
    prov = Path(cluster["root"]) / "data" / "provenance"
    with sqlite3.connect(prov / "records.sqlite") as db:
        logged = [r[0] for r in db.execute("SELECT record_id FROM records")]
    with sqlite3.connect(prov / "ledger.sqlite") as db:
        entries = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert len(logged) == len(set(logged)) == entries == total * N_IMAGES
    named = {int(rec["record_id"], 16) for _, _, rec in images}
    assert named == set(logged)
    # one finish per job in the audit trail; nothing left sealed in the database; nothing left in the queue
    finished = query(cluster, "SELECT count(*) FROM audit_log WHERE action = 'generation.finished'")[0][0]
    assert finished == total
    assert query(cluster, "SELECT count(*) FROM job_inputs")[0][0] == 0
    wait_until(lambda: query(cluster, "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
               [0][0] == 0, timeout=30, what="the queue to empty (a retried task of the killed worker is a no-op)")
    # and the API reports them as any client sees them, from both processes
    for i, job_id in enumerate(ids[:4]):
        doc = httpx.get(f"{cluster['a' if i % 2 else 'b']}/v1/generations/{job_id}", headers=cluster["auth"]).json()
        assert doc["status"] == "succeeded" and len(doc["images"]) == N_IMAGES


def test_a_running_job_cancelled_through_another_process_stops_and_its_worker_goes_on(cluster: dict[str, Any]) -> None:
    used = query(cluster, "SELECT sum(images) FROM usage")[0][0]
    job_id = submit(cluster, cluster["a"])
    wait_until(lambda: query(cluster, "SELECT status FROM jobs WHERE id = :id", id=job_id)[0][0] == "running",
               timeout=60, what="the job to start", every=0.05)
    r = httpx.post(f"{cluster['b']}/v1/generations/{job_id}/cancel", headers=cluster["auth"], timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert query(cluster, "SELECT sum(images) FROM usage")[0][0] == used  # its images went back at once
    # the worker sees its lease end at the next renewal and stops the render; then it takes the next job
    after = submit(cluster, cluster["b"])
    status = wait_until(lambda: query(cluster, "SELECT status FROM jobs WHERE id = :id AND status IN "
                                      "('succeeded', 'failed')", id=after), timeout=150, what="the next job")
    assert status[0][0] == "succeeded"  # (its render process was replaced: it loads the models first)
    assert query(cluster, "SELECT count(*) FROM job_images WHERE job_id = :id", id=job_id)[0][0] == 0
    assert query(cluster, "SELECT status FROM jobs WHERE id = :id", id=job_id)[0][0] == "cancelled"


def test_quota_limits_and_idempotency_hold_across_api_processes(cluster: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    a, b = cluster["a"], cluster["b"]
    # quota: 3 images a month; six one-image generations at once through both processes -> exactly three
    key = cluster["keys"]["three_images"]
    board = own_board(cluster, key)
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda i: post_generation(cluster, a if i % 2 else b, key, board=board), range(6)))
    accepted = [r for r in codes if r.status_code == 202]
    assert len(accepted) == 3, [(r.status_code, r.text[:80]) for r in codes]
    assert {r.json()["code"] for r in codes if r.status_code != 202} == {"quota_exceeded"}
    account = query(cluster, "SELECT account_id FROM jobs WHERE id = :id", id=accepted[0].json()["id"])[0][0]
    assert query(cluster, "SELECT images FROM usage WHERE account_id = :a", a=account)[0][0] == 3
    # one generation at a time: four long ones at once through both processes -> one admitted
    key = cluster["keys"]["one_at_a_time"]
    board = own_board(cluster, key)
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda i: post_generation(cluster, a if i % 2 else b, key, board=board, n=4,
                                                        size=1024), range(4)))
    accepted = [r for r in codes if r.status_code == 202]
    assert len(accepted) == 1, [(r.status_code, r.text[:80]) for r in codes]
    assert {r.json()["code"] for r in codes if r.status_code != 202} == {"too_many_jobs"}
    httpx.post(f"{a}/v1/generations/{accepted[0].json()['id']}/cancel", headers={"Authorization": f"Bearer {key}"})
    # one Idempotency-Key sent to both processes at once: one job, the other answer replays it
    idem = {"Idempotency-Key": "same-request-twice"}
    with ThreadPoolExecutor(2) as pool:
        twice = list(pool.map(lambda base: post_generation(cluster, base, key, board=board, headers=idem), (a, b)))
    ok = [r for r in twice if r.status_code in (200, 202)]
    ids = {r.json()["id"] for r in ok}
    assert len(ids) == 1 or any(r.status_code == 409 for r in twice), [(r.status_code, r.text[:80]) for r in twice]
    account = query(cluster, "SELECT account_id FROM jobs WHERE id = :id", id=next(iter(ids)))[0][0]
    jobs = query(cluster, "SELECT count(*) FROM jobs WHERE account_id = :a AND request->>'size' = '256'", a=account)
    assert jobs[0][0] == 1
