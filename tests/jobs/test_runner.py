"""Jobs: restart recovery, graceful shutdown, failures (refund + audit), time limits, and the process pool
(crash isolation; a stuck job stopped alone). No job is ever left queued/running without a process working on it.

Nothing here sleeps to let something happen: a test waits on the event itself (the gate's semaphores, a job's
order in the one generation thread) or polls a state through :func:`~tests.jobs.helpers.wait_until`, which
fails the test when its deadline passes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import tastemaker.jobs.tasks as tasks
from tastemaker.api.app import create_app
from tastemaker.store.sql.models import AuditEntry, JobImage
from tests.api.conftest import Api, make_settings, upload_board

from .conftest import Gate
from .helpers import HANG_SEED, alive, hung_pids, wait_until

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]


def submit(
    api: Api, headers: dict[str, str], selfie: bytes, board_id: str, wait: int = 0, seed: int = 2
) -> dict[str, Any]:
    h = {**headers, **({"Prefer": f"wait={wait}"} if wait else {})}
    r = api.client.post(
        "/v1/generations",
        data={"board_id": board_id, "consent": "true", "n": "1", "size": "256", "seed": str(seed)},
        files={"selfie": ("me.jpg", selfie, "image/jpeg")},
        headers=h,
    )
    assert r.status_code in (200, 202), r.text
    doc: dict[str, Any] = r.json()
    return doc


def job_doc(api: Api, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = api.client.get(f"/v1/generations/{job_id}", headers=headers).json()
    return doc


def wait_status(
    api: Api, headers: dict[str, str], job_id: str, statuses: tuple[str, ...], timeout: float = 30
) -> dict[str, Any]:
    """The job's document once its status is one of ``statuses``; fails the test after ``timeout`` s."""

    def reached() -> dict[str, Any] | None:
        doc = job_doc(api, headers, job_id)
        return doc if doc["status"] in statuses else None

    return wait_until(reached, timeout, what=f"job {job_id} to be {' or '.join(statuses)}")


def finished(api: Api) -> dict[str, str]:
    with api.services.store.session() as s:
        rows = s.orm.scalars(select(AuditEntry).where(AuditEntry.action == "generation.finished")).all()
        return {e.objects["generation"]: e.outcome for e in rows}


def test_restart_fails_interrupted_jobs_explicitly(make_api: Any, selfie_bytes: bytes, gate: Gate) -> None:
    first = make_api()
    headers = first.key("pro")
    b = upload_board(first, headers, names=SMALL_BOARD)
    running = submit(first, headers, selfie_bytes, b["id"])
    queued = submit(first, headers, selfie_bytes, b["id"])
    assert gate.entered.acquire(timeout=30)  # the first job is in the one generation worker
    assert job_doc(first, headers, running["id"])["status"] == "running"
    assert job_doc(first, headers, queued["id"])["status"] == "queued"

    # the process "dies" (its lifespan never ends); a new one starts on the same database
    second = make_api()
    for job_id in (running["id"], queued["id"]):
        doc = job_doc(second, headers, job_id)
        assert doc["status"] == "failed" and doc["finished_at"] is not None
        assert doc["error"]["code"] == "interrupted" and doc["error"]["retryable"] is True
        assert "never stored" in doc["error"]["message"]
    usage = second.client.get("/v1/usage", headers=headers).json()
    assert usage["images"]["used"] == 0 and usage["generations"] == 2  # quota given back
    assert finished(second) == {running["id"]: "interrupted", queued["id"]: "interrupted"}

    # the old process wakes up and finishes its render: too late, the job stays failed, nothing is attached
    gate.open.set()
    assert gate.returned.acquire(timeout=60)
    wait_until(lambda: first.services.runner.stats()["active"] == 0, what="the old runner to be done with both jobs")
    assert job_doc(second, headers, running["id"])["status"] == "failed"
    with second.services.store.session() as s:
        assert s.orm.scalars(select(JobImage).where(JobImage.job_id == running["id"])).all() == []
        assert second.services.audit.verify(s).ok


def test_shutdown_fails_what_it_cannot_finish(tmp_path: Any, selfie_bytes: bytes, gate: Gate) -> None:
    settings = make_settings(tmp_path, shutdown_grace_seconds=0.3)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        jobs = [submit(api, headers, selfie_bytes, b["id"]) for _ in range(2)]
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        for job in jobs:
            doc = client.get(f"/v1/generations/{job['id']}", headers=headers).json()
            assert doc["status"] == "failed" and doc["error"]["code"] == "interrupted"
        assert set(finished(api).values()) == {"interrupted"} and len(finished(api)) == 2


def test_failed_job_refunds_quota_and_is_audited(
    make_api: Any, selfie_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        tasks,
        "task_generate",
        lambda *a, **k: ("error", "IdentityGuardError", "identity_guard", "variation 0 drifted from the selfie", None),
    )
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    doc = submit(api, headers, selfie_bytes, b["id"], wait=20)
    assert doc["status"] == "failed" and doc["error"] == {
        "code": "identity_guard",
        "message": "variation 0 drifted from the selfie",
        "retryable": False,
    }
    assert api.client.get("/v1/usage", headers=headers).json()["images"]["used"] == 0
    assert finished(api) == {doc["id"]: "identity_guard"}


def test_a_bug_in_the_task_fails_the_job_not_the_worker(
    make_api: Any, selfie_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = tasks.task_generate

    def flaky(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(tasks, "task_generate", flaky)
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    bad = submit(api, headers, selfie_bytes, b["id"], wait=20)
    assert bad["status"] == "failed" and bad["error"]["code"] == "internal_error" and "boom" not in str(bad)
    good = submit(api, headers, selfie_bytes, b["id"], wait=20)
    assert good["status"] == "succeeded"  # the worker thread survived


def test_progress_is_persisted_while_running(make_api: Any, selfie_bytes: bytes, gate: Gate) -> None:
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    job = submit(api, headers, selfie_bytes, b["id"])
    assert gate.entered.acquire(timeout=30)  # running, held before its render starts
    doc = job_doc(api, headers, job["id"])
    assert doc["status"] == "running" and doc["progress"]["stage"] == "starting" and doc["started_at"] is not None
    gate.open.set()
    doc = wait_status(api, headers, job["id"], ("succeeded", "failed"))
    assert doc["status"] == "succeeded" and doc["progress"] == {"stage": "done", "done": 1, "total": 1, "fraction": 1.0}


def test_a_job_over_its_time_limit_is_failed_and_refunded(make_api: Any, selfie_bytes: bytes, gate: Gate) -> None:
    api = make_api(job_timeout_seconds=0.5)
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    job = submit(api, headers, selfie_bytes, b["id"])  # held by the gate: it cannot finish in 0.5 s
    doc = wait_status(api, headers, job["id"], ("succeeded", "failed"), timeout=10)
    assert doc["status"] == "failed" and doc["error"]["code"] == "job_timeout", doc
    assert "longer than 0.5 s" in doc["error"]["message"] and not doc["error"]["retryable"]
    assert api.client.get("/v1/usage", headers=headers).json()["images"]["used"] == 0  # given back
    # The held render now finishes in its thread; its result must be dropped, not stored. The next job runs in
    # the same (one) generation thread after it, so once that one has succeeded the late result is in.
    api.services.runner.job_timeout_s = 60.0
    gate.open.set()
    nxt = submit(api, headers, selfie_bytes, b["id"], wait=60)
    assert nxt["status"] == "succeeded", nxt
    assert gate.returned.acquire(timeout=0) and gate.returned.acquire(timeout=0)  # both renders returned
    again = job_doc(api, headers, job["id"])
    assert again["status"] == "failed" and again["images"] == []
    assert finished(api)[job["id"]] == "job_timeout"


@pytest.mark.slow
def test_a_stuck_job_is_stopped_alone(tmp_path: Path, selfie_bytes: bytes, markers: Path) -> None:
    """Two job workers: a job that hangs past its time limit fails with ``job_timeout`` and only its worker is
    stopped (the pool starts another); the job running beside it in the same pool at that moment succeeds."""
    settings = make_settings(tmp_path, job_executor="process", job_workers=2, job_timeout_seconds=120)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        runner = api.services.runner
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        neighbour = submit(api, headers, selfie_bytes, b["id"])  # renders once the stuck job's worker is gone
        [npid] = wait_until(lambda: [int(p.name[4:]) for p in markers.glob("job-*")], 60,
                            what="the neighbour job to start in a worker process")
        runner.job_timeout_s = 1.0  # the limit of jobs that start from now on
        stuck = submit(api, headers, selfie_bytes, b["id"], seed=HANG_SEED)
        [spid] = wait_until(lambda: hung_pids(markers), 60, what="the stuck job to start in the other worker")
        assert spid != npid and {spid, npid} <= set(runner.worker_pids())

        doc = wait_status(api, headers, stuck["id"], ("succeeded", "failed"), timeout=60)
        assert doc["status"] == "failed" and doc["error"]["code"] == "job_timeout", doc
        assert "longer than 1 s" in doc["error"]["message"] and not doc["error"]["retryable"]
        assert finished(api)[stuck["id"]] == "job_timeout"
        done = wait_status(api, headers, neighbour["id"], ("succeeded", "failed"), timeout=120)
        assert done["status"] == "succeeded" and len(done["images"]) == 1, done
        assert not alive(spid)

        def replaced() -> list[int] | None:
            pids = runner.worker_pids()
            return pids if len(pids) == 2 and spid not in pids else None

        pids = wait_until(replaced, 60, what="a new worker in the stuck one's place")
        assert npid in pids  # the neighbour's worker was never replaced


@pytest.mark.slow
def test_process_pool_stops_a_job_over_its_time_limit(tmp_path: Any, selfie_bytes: bytes) -> None:
    """In process mode the stuck worker process is replaced, and the next job runs on a fresh one."""
    settings = make_settings(tmp_path, job_executor="process", job_timeout_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        runner = api.services.runner
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        before = wait_until(runner.worker_pids, 60, what="the generation worker to start")
        r = client.post(  # four 1024 px images: several seconds of work, far over 0.2 s
            "/v1/generations",
            data={"board_id": b["id"], "consent": "true", "n": "4", "size": "1024", "seed": "2"},
            files={"selfie": ("me.jpg", selfie_bytes, "image/jpeg")},
            headers=headers,
        )
        assert r.status_code == 202, r.text
        doc = wait_status(api, headers, r.json()["id"], ("succeeded", "failed"), timeout=30)
        assert doc["status"] == "failed" and doc["error"]["code"] == "job_timeout", doc
        wait_until(lambda: (p := runner.worker_pids()) and not set(p) & set(before), 30,
                   what="a new worker in the stopped one's place")
        for pid in before:
            assert not alive(pid)
        runner.job_timeout_s = 120.0
        ok = submit(api, headers, selfie_bytes, b["id"], wait=60)
        assert wait_status(api, headers, ok["id"], ("succeeded", "failed"), timeout=60)["status"] == "succeeded"


@pytest.mark.slow
def test_process_pool_generates_and_survives_a_crash(tmp_path: Path, selfie_bytes: bytes, markers: Path) -> None:
    """The default executor: work runs in spawned processes; killing the worker of a running job fails that job
    (``worker_crashed``, retryable), not the server; the pool starts a new worker; and no worker process
    outlives the server."""
    settings = make_settings(tmp_path, job_executor="process")
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        victim = submit(api, headers, selfie_bytes, b["id"], seed=HANG_SEED)  # never finishes by itself
        [pid] = wait_until(lambda: hung_pids(markers), 60, what="the job to start in a worker process")
        assert pid != os.getpid() and pid in api.services.runner.worker_pids()
        os.kill(pid, signal.SIGKILL)  # the worker dies mid-job
        doc = wait_status(api, headers, victim["id"], ("succeeded", "failed"), timeout=60)
        assert doc["status"] == "failed", doc
        assert doc["error"]["code"] == "worker_crashed" and doc["error"]["retryable"], doc
        again = submit(api, headers, selfie_bytes, b["id"], wait=60)
        assert again["status"] == "succeeded", again  # on the worker started in its place
        survivors = api.services.runner.worker_pids()
        assert survivors and pid not in survivors
    for p in survivors:
        assert not alive(p)
