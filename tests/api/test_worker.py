"""Jobs: restart recovery, graceful shutdown, failures (refund + audit), and the process pool (crash
isolation). No job is ever left queued/running without a process working on it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import tastemaker.worker as worker
from tastemaker.api.app import create_app
from tastemaker.store.models import AuditEntry, JobImage

from .conftest import Api, make_settings, upload_board

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]


def submit(api: Api, headers: dict[str, str], selfie: bytes, board_id: str, wait: int = 0) -> dict[str, Any]:
    h = {**headers, **({"Prefer": f"wait={wait}"} if wait else {})}
    r = api.client.post(
        "/v1/generations",
        data={"board_id": board_id, "consent": "true", "n": "1", "size": "256", "seed": "2"},
        files={"selfie": ("me.jpg", selfie, "image/jpeg")},
        headers=h,
    )
    assert r.status_code in (200, 202), r.text
    doc: dict[str, Any] = r.json()
    return doc


def wait_status(api: Api, headers: dict[str, str], job_id: str, statuses: tuple[str, ...], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        doc = api.client.get(f"/v1/generations/{job_id}", headers=headers).json()
        if doc["status"] in statuses or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def finished(api: Api) -> dict[str, str]:
    with api.services.store.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "generation.finished")).all()
        return {e.objects["generation"]: e.outcome for e in rows}


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    event = threading.Event()
    real = worker.task_generate

    def held(*args: Any, **kw: Any) -> Any:
        event.wait(20)
        return real(*args, **kw)

    monkeypatch.setattr(worker, "task_generate", held)
    yield event
    event.set()


def test_restart_fails_interrupted_jobs_explicitly(make_api: Any, selfie_bytes: bytes, gate: threading.Event) -> None:
    first = make_api()
    headers = first.key("pro")
    b = upload_board(first, headers, names=SMALL_BOARD)
    running = submit(first, headers, selfie_bytes, b["id"])
    queued = submit(first, headers, selfie_bytes, b["id"])
    assert wait_status(first, headers, running["id"], ("running",))["status"] == "running"
    assert first.client.get(f"/v1/generations/{queued['id']}", headers=headers).json()["status"] == "queued"

    # the process "dies" (its lifespan never ends); a new one starts on the same database
    second = make_api()
    for job_id in (running["id"], queued["id"]):
        doc = second.client.get(f"/v1/generations/{job_id}", headers=headers).json()
        assert doc["status"] == "failed" and doc["finished_at"] is not None
        assert doc["error"]["code"] == "interrupted" and doc["error"]["retryable"] is True
        assert "never stored" in doc["error"]["message"]
    usage = second.client.get("/v1/usage", headers=headers).json()
    assert usage["images"]["used"] == 0 and usage["generations"] == 2  # quota given back
    assert finished(second) == {running["id"]: "interrupted", queued["id"]: "interrupted"}

    # the old process wakes up and finishes its render: too late, the job stays failed, nothing is attached
    gate.set()
    time.sleep(1.0)
    assert second.client.get(f"/v1/generations/{running['id']}", headers=headers).json()["status"] == "failed"
    with second.services.store.session() as s:
        assert s.scalars(select(JobImage).where(JobImage.job_id == running["id"])).all() == []
        assert second.services.audit.verify(s).ok


def test_shutdown_fails_what_it_cannot_finish(tmp_path: Any, selfie_bytes: bytes, gate: threading.Event) -> None:
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
        worker,
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
    real = worker.task_generate

    def flaky(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(worker, "task_generate", flaky)
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    bad = submit(api, headers, selfie_bytes, b["id"], wait=20)
    assert bad["status"] == "failed" and bad["error"]["code"] == "internal_error" and "boom" not in str(bad)
    good = submit(api, headers, selfie_bytes, b["id"], wait=20)
    assert good["status"] == "succeeded"  # the worker thread survived


def test_progress_is_persisted_while_running(make_api: Any, selfie_bytes: bytes, gate: threading.Event) -> None:
    api = make_api()
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    job = submit(api, headers, selfie_bytes, b["id"])
    doc = wait_status(api, headers, job["id"], ("running",))
    assert doc["progress"]["stage"] == "starting" and doc["started_at"] is not None
    gate.set()
    doc = wait_status(api, headers, job["id"], ("succeeded", "failed"))
    assert doc["status"] == "succeeded" and doc["progress"] == {"stage": "done", "done": 1, "total": 1, "fraction": 1.0}


def test_a_job_over_its_time_limit_is_failed_and_refunded(
    make_api: Any, selfie_bytes: bytes, gate: threading.Event
) -> None:
    api = make_api(job_timeout_seconds=0.5)
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    job = submit(api, headers, selfie_bytes, b["id"])  # held by the gate: it cannot finish in 0.5 s
    doc = wait_status(api, headers, job["id"], ("succeeded", "failed"), timeout=10)
    assert doc["status"] == "failed" and doc["error"]["code"] == "job_timeout", doc
    assert "longer than 0.5 s" in doc["error"]["message"] and not doc["error"]["retryable"]
    assert api.client.get("/v1/usage", headers=headers).json()["images"]["used"] == 0  # given back
    gate.set()  # the held render now finishes in its thread; its result must be dropped, not stored
    time.sleep(1.0)
    again = api.client.get(f"/v1/generations/{job['id']}", headers=headers).json()
    assert again["status"] == "failed" and again["images"] == []
    assert finished(api)[job["id"]] == "job_timeout"


@pytest.mark.slow
def test_process_pool_stops_a_job_over_its_time_limit(tmp_path: Any, selfie_bytes: bytes) -> None:
    """In process mode the stuck worker process is replaced, and the next job runs on a fresh one."""
    settings = make_settings(tmp_path, job_executor="process", job_timeout_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        before = api.services.runner.worker_pids()
        r = client.post(  # four 1024 px images: several seconds of work, far over 0.2 s
            "/v1/generations",
            data={"board_id": b["id"], "consent": "true", "n": "4", "size": "1024", "seed": "2"},
            files={"selfie": ("me.jpg", selfie_bytes, "image/jpeg")},
            headers=headers,
        )
        assert r.status_code == 202, r.text
        doc = wait_status(api, headers, r.json()["id"], ("succeeded", "failed"), timeout=30)
        assert doc["status"] == "failed" and doc["error"]["code"] == "job_timeout", doc
        deadline = time.monotonic() + 30  # the job is failed first, then its pool replaced: wait for that
        while True:
            after = api.services.runner.worker_pids()
            if (after and not set(after) & set(before)) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert after and not set(after) & set(before)
        for pid in before:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        api.services.runner.job_timeout_s = 120.0
        ok = submit(api, headers, selfie_bytes, b["id"], wait=60)
        assert wait_status(api, headers, ok["id"], ("succeeded", "failed"), timeout=60)["status"] == "succeeded"


@pytest.mark.slow
def test_process_pool_generates_and_survives_a_crash(tmp_path: Any, selfie_bytes: bytes) -> None:
    """The default executor: work runs in spawned processes; killing one fails its job, not the server;
    and no worker process outlives the server."""
    settings = make_settings(tmp_path, job_executor="process")
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        headers = api.key("pro")
        b = upload_board(api, headers, names=SMALL_BOARD)
        victim = submit(api, headers, selfie_bytes, b["id"])
        wait_status(api, headers, victim["id"], ("running", "succeeded"), timeout=30)
        pids = api.services.runner.worker_pids()
        assert pids and os.getpid() not in pids
        for pid in pids:  # kill the generation workers mid-job
            os.kill(pid, signal.SIGKILL)
        doc = wait_status(api, headers, victim["id"], ("succeeded", "failed"), timeout=60)
        if doc["status"] == "failed":  # the kill can land just after the render finished; both are honest
            assert doc["error"]["code"] == "worker_crashed" and doc["error"]["retryable"]
        again = submit(api, headers, selfie_bytes, b["id"], wait=60)
        assert again["status"] == "succeeded", again  # pools were rebuilt
        survivors = api.services.runner.worker_pids()
        assert survivors and not set(survivors) & set(pids)
    for pid in survivors:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
