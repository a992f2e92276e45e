"""Cancelling jobs in the runner: a queued job never starts (its slot is free at once), a running job in thread
mode has its late result dropped, and in process mode its worker — that one only — is stopped. Each time the
quota goes back and the cancel is audited.

As in ``test_runner.py``, nothing sleeps: a test waits on the gate's semaphores or polls a state through
:func:`~tests.jobs.helpers.wait_until`, which fails the test when its deadline passes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tastemaker.api.app import create_app
from tastemaker.jobs import WorkerPool
from tastemaker.jobs.tasks import Outcome
from tastemaker.store.sql.models import AuditEntry, JobImage
from tests.api.conftest import Api, make_settings, upload_board

from .conftest import Gate
from .helpers import HANG_SEED, alive, hung_pids, wait_until
from .test_runner import SMALL_BOARD, finished, job_doc, submit, wait_status


def cancel(api: Api, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    r = api.client.post(f"/v1/generations/{job_id}/cancel", headers=headers)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def cancelled(api: Api) -> dict[str, tuple[str, dict[str, Any]]]:
    """``generation.cancelled`` audit entries: job id -> (outcome, detail)."""
    with api.services.store.session() as s:
        rows = s.orm.scalars(select(AuditEntry).where(AuditEntry.action == "generation.cancelled")).all()
        return {e.objects["generation"]: (e.outcome, e.detail) for e in rows}


def images_used(api: Api, headers: dict[str, str]) -> int:
    used: int = api.client.get("/v1/usage", headers=headers).json()["images"]["used"]
    return used


def test_a_cancelled_queued_job_never_runs_and_is_refunded(make_api: Any, selfie_bytes: bytes, gate: Gate) -> None:
    api = make_api()
    runner = api.services.runner
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    running = submit(api, headers, selfie_bytes, b["id"])
    assert gate.entered.acquire(timeout=30)  # the first job holds the one generation worker
    queued = submit(api, headers, selfie_bytes, b["id"], seed=3)
    assert job_doc(api, headers, queued["id"])["status"] == "queued" and images_used(api, headers) == 2

    doc = cancel(api, headers, queued["id"])
    assert doc["status"] == "cancelled" and doc["finished_at"] is not None and doc["images"] == []
    assert doc["error"]["code"] == "cancelled" and not doc["error"]["retryable"]
    assert images_used(api, headers) == 1  # its image went back at once
    with api.services.store.session() as s:
        job = s.load_job(queued["id"])
    assert job is not None and runner.account_load(job.account_id) == 1  # its slot is free now
    assert runner.stats() == {"queued": 0, "running": 1, "active": 1, "capacity": runner.capacity}
    assert cancelled(api) == {queued["id"]: ("cancelled", {"from": "queued"})}

    gate.open.set()
    assert wait_status(api, headers, running["id"], ("succeeded", "failed"))["status"] == "succeeded"
    wait_until(lambda: runner.stats()["active"] == 0, what="the runner to be idle")
    assert gate.returned.acquire(timeout=0)  # the first job's render
    assert not gate.entered.acquire(timeout=0)  # the cancelled job never reached a worker
    assert job_doc(api, headers, queued["id"])["status"] == "cancelled"
    assert queued["id"] not in finished(api) and finished(api)[running["id"]] == "succeeded"
    with api.services.store.session() as s:
        assert api.services.audit.verify(s).ok


def test_a_cancelled_running_job_in_thread_mode_drops_its_result(
    make_api: Any, selfie_bytes: bytes, gate: Gate
) -> None:
    """A thread cannot be stopped: the render finishes, and its images are neither stored nor counted."""
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    job = submit(api, headers, selfie_bytes, b["id"])
    assert gate.entered.acquire(timeout=30)
    assert job_doc(api, headers, job["id"])["status"] == "running"
    doc = cancel(api, headers, job["id"])
    assert doc["status"] == "cancelled" and images_used(api, headers) == 0
    assert cancelled(api) == {job["id"]: ("cancelled", {"from": "running"})}

    gate.open.set()
    assert gate.returned.acquire(timeout=60)  # the render has returned...
    wait_until(lambda: api.services.runner.stats()["active"] == 0, what="the runner to be done with the job")
    again = job_doc(api, headers, job["id"])  # ...and was dropped
    assert again["status"] == "cancelled" and again["images"] == [] and images_used(api, headers) == 0
    with api.services.store.session() as s:
        assert s.orm.scalars(select(JobImage).where(JobImage.job_id == job["id"])).all() == []
    nxt = submit(api, headers, selfie_bytes, b["id"], wait=60)  # the worker thread goes on
    assert nxt["status"] == "succeeded", nxt


def test_cancelling_twice_is_a_clear_conflict(make_api: Any, selfie_bytes: bytes, gate: Gate) -> None:
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    job = submit(api, headers, selfie_bytes, b["id"])
    cancel(api, headers, job["id"])
    r = api.client.post(f"/v1/generations/{job['id']}/cancel", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "job_finished", r.text
    assert "already been cancelled" in r.json()["message"] and "Traceback" not in r.text
    assert images_used(api, headers) == 0  # refunded once, not twice
    assert len(cancelled(api)) == 1


def test_pool_cancel_stops_a_task_that_has_not_started() -> None:
    """Thread mode: a queued task never runs; a running one cannot be stopped and delivers its value."""
    pool = WorkerPool("test", 1, executor="thread")
    pool.start()
    release, started, ran = threading.Event(), threading.Event(), threading.Event()

    def held() -> Outcome:
        started.set()
        release.wait(20)
        return ("ok", "held")

    def second() -> Outcome:
        ran.set()
        return ("ok", "second")

    try:
        first = pool.submit(held)
        assert started.wait(10)
        waiting = pool.submit(second)
        assert pool.cancel(waiting) and waiting.cancelled()
        assert not pool.cancel(first)  # running in a thread
        release.set()
        assert first.result(timeout=20) == "held"
        assert pool.call(held) == "held"  # the one thread is free again, and the cancelled task never ran
        assert not ran.is_set()
        assert not pool.cancel(first)  # settled already
    finally:
        release.set()
        pool.close()


@pytest.mark.slow
def test_a_cancelled_running_job_has_its_worker_stopped_alone(
    tmp_path: Path, selfie_bytes: bytes, markers: Path
) -> None:
    """Two job workers: cancelling a job that would never finish stops its worker process only (the pool starts
    another); the job running beside it at that moment succeeds. (See ``hang_or_generate``: the neighbour
    renders only once the hanging job's worker is gone.)"""
    settings = make_settings(tmp_path, job_executor="process", job_workers=2, job_timeout_seconds=120)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        runner = api.services.runner
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        neighbour = submit(api, headers, selfie_bytes, b["id"])
        [npid] = wait_until(lambda: [int(p.name[4:]) for p in markers.glob("job-*")], 60,
                            what="the neighbour job to start in a worker process")
        stuck = submit(api, headers, selfie_bytes, b["id"], seed=HANG_SEED)
        [spid] = wait_until(lambda: hung_pids(markers), 60, what="the stuck job to start in the other worker")
        assert spid != npid and {spid, npid} <= set(runner.worker_pids())
        assert images_used(api, headers) == 2

        doc = cancel(api, headers, stuck["id"])
        assert doc["status"] == "cancelled" and doc["error"]["code"] == "cancelled", doc
        assert images_used(api, headers) == 1
        assert cancelled(api) == {stuck["id"]: ("cancelled", {"from": "running"})}
        wait_until(lambda: not alive(spid), 60, what="the cancelled job's worker to be stopped")

        done = wait_status(api, headers, neighbour["id"], ("succeeded", "failed"), timeout=120)
        assert done["status"] == "succeeded" and len(done["images"]) == 1, done
        assert job_doc(api, headers, stuck["id"])["status"] == "cancelled"

        def replaced() -> list[int] | None:
            pids = runner.worker_pids()
            return pids if len(pids) == 2 and spid not in pids else None

        pids = wait_until(replaced, 60, what="a new worker in the stopped one's place")
        assert npid in pids  # the neighbour's worker was never replaced
        assert images_used(api, headers) == 1 and finished(api) == {neighbour["id"]: "succeeded"}
