"""Tiers and limits: per-minute buckets (429 + Retry-After + RateLimit headers), the monthly image quota,
per-account active jobs, and the bounded queue (503). Redis storage when a test Redis is available."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tastemaker.jobs.tasks as tasks

from .conftest import REDIS_URL, Api, upload_board

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]


def gen(api: Api, headers: dict[str, str], selfie: bytes, board_id: str, *, n: int = 1, wait: int = 0) -> Any:
    h = {**headers, **({"Prefer": f"wait={wait}"} if wait else {})}
    return api.client.post(
        "/v1/generations",
        data={"board_id": board_id, "consent": "true", "n": str(n), "size": "256", "seed": "1"},
        files={"selfie": ("me.jpg", selfie, "image/jpeg")},
        headers=h,
    )


def wait_done(api: Api, headers: dict[str, str], url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = api.client.get(url, headers=headers).json()
        if doc["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold every generation in the worker until the test sets the event."""
    event = threading.Event()
    real = tasks.task_generate

    def held(*args: Any, **kw: Any) -> Any:
        event.wait(20)
        return real(*args, **kw)

    monkeypatch.setattr(tasks, "task_generate", held)
    yield event
    event.set()


def test_request_bucket_429_with_headers(make_api: Any) -> None:
    api = make_api()
    headers = api.key("tight")
    remaining = []
    for _ in range(5):
        r = api.client.get("/v1/usage", headers=headers)
        assert r.status_code == 200
        remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert r.headers["ratelimit-policy"] == '"requests";q=5;w=60'
        assert r.headers["x-ratelimit-limit"] == "5"
    assert remaining == [4, 3, 2, 1, 0]
    r = api.client.get("/v1/usage", headers=headers)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert re.fullmatch(r'"requests";r=0;t=\d+', r.headers["ratelimit"])
    assert r.headers["x-ratelimit-remaining"] == "0" and int(r.headers["x-ratelimit-reset"]) > 1_700_000_000
    assert "5 requests per minute" in r.json()["message"]
    # another account is not affected
    assert api.client.get("/v1/usage", headers=api.key("tight")).status_code == 200
    with api.services.store.session() as s:
        from sqlalchemy import select

        from tastemaker.store.sql.models import AuditEntry

        denied = s.orm.scalars(select(AuditEntry).where(AuditEntry.action == "request.denied")).all()
    assert [e.outcome for e in denied] == ["rate_limited"]


def test_styleembed_has_its_own_stricter_bucket(make_api: Any) -> None:
    api = make_api()
    headers = api.key("tight")
    b = upload_board(api, headers, names=SMALL_BOARD)
    for _ in range(2):
        r = api.client.post("/v1/styleembed", json={"board_id": b["id"]}, headers=headers)
        assert r.status_code == 200
    assert r.headers["ratelimit-policy"] == '"requests";q=5;w=60, "styleembed";q=2;w=60'
    assert r.headers["x-ratelimit-resource"] == "styleembed" and r.headers["x-ratelimit-remaining"] == "0"
    r = api.client.post("/v1/styleembed", json={"board_id": b["id"]}, headers=headers)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited" and "styleembed" in r.json()["message"]
    assert "retry-after" in r.headers
    assert api.client.get(f"/v1/boards/{b['id']}", headers=headers).status_code == 200  # plain requests still pass


def test_monthly_image_quota(make_api: Any, selfie_bytes: bytes) -> None:
    api = make_api()
    headers = api.key("tight")  # 2 images a month
    b = upload_board(api, headers, names=SMALL_BOARD)
    assert gen(api, headers, selfie_bytes, b["id"], n=2, wait=30).json()["status"] == "succeeded"
    r = gen(api, headers, selfie_bytes, b["id"])
    assert r.status_code == 429 and r.json()["code"] == "quota_exceeded"
    assert "2 of 2 images" in r.json()["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 31 * 86400  # until the period ends
    usage = api.client.get("/v1/usage", headers=headers).json()
    assert usage["images"] == {"used": 2, "limit": 2, "remaining": 0}


def test_active_jobs_per_account(make_api: Any, selfie_bytes: bytes, gate: threading.Event) -> None:
    api = make_api()
    headers = api.key("tight")  # one active job
    b = upload_board(api, headers, names=SMALL_BOARD)
    assert gen(api, headers, selfie_bytes, b["id"]).status_code == 202
    r = gen(api, headers, selfie_bytes, b["id"])
    assert r.status_code == 429 and r.json()["code"] == "too_many_jobs" and "retry-after" in r.headers
    gate.set()
    # the refused request reserved nothing
    usage = api.client.get("/v1/usage", headers=headers).json()
    assert usage["images"]["used"] == 1


def test_full_queue_is_503_not_a_pile_up(make_api: Any, selfie_bytes: bytes, gate: threading.Event) -> None:
    api = make_api(job_workers=1, job_queue_size=1)  # capacity: 1 running + 1 queued
    headers = api.key("pro")
    b = upload_board(api, headers, names=SMALL_BOARD)
    first = [gen(api, headers, selfie_bytes, b["id"]) for _ in range(2)]
    assert [r.status_code for r in first] == [202, 202]
    r = gen(api, headers, selfie_bytes, b["id"])
    assert r.status_code == 503 and r.json()["code"] == "queue_full" and int(r.headers["retry-after"]) >= 1
    assert api.client.get("/healthz").json()["jobs"] == {"queued": 1, "running": 1, "active": 2, "capacity": 2}
    gate.set()
    for job in first:
        assert wait_done(api, headers, job.json()["links"]["self"])["status"] == "succeeded"
    # slots come back once jobs finish
    final = gen(api, headers, selfie_bytes, b["id"], wait=30)
    assert final.status_code == 200 and final.json()["status"] == "succeeded"


@pytest.mark.skipif(REDIS_URL is None, reason='TASTEMAKER_TEST_REDIS_URL not set (eval "$(.ci/services.sh)")')
def test_redis_storage_limits(make_api: Any) -> None:
    api = make_api(ratelimit_storage_url=REDIS_URL)
    headers = api.key("tight")
    codes = [api.client.get("/v1/usage", headers=headers).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


def test_unreachable_limit_storage_is_a_clean_503(make_api: Any) -> None:
    pytest.importorskip("redis")
    api = make_api(ratelimit_storage_url="redis://127.0.0.1:9/0")  # discard port: nothing listens
    r = api.client.get("/v1/usage", headers=api.key("free"))
    assert r.status_code == 503 and r.json()["code"] == "rate_limiter_unavailable"
