"""Issue 11, the service side: hostile JSON, private files, scopes, what is charged to the privacy budget,
work done before authentication, idempotency records that outlive what they name, and verify's own pool."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Api, upload_board

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]
DEEP = '{"image": ' + "[" * 50_000 + "]" * 50_000 + "}"
HUGE = '{"image": "aGk=", "n": ' + "9" * 5000 + "}"


@pytest.fixture(scope="module")
def owner(shared_api: Api) -> dict[str, str]:
    return shared_api.key("pro", "owner")


# ------------------------------------------------------------------ item 10: nested JSON, huge integers


@pytest.mark.parametrize("path", ["/v1/verify", "/v1/feedback", "/v1/generations", "/v1/styleembed"])
@pytest.mark.parametrize(("body", "code"), [(DEEP, "json_too_deep"), (HUGE, "json_number_too_large")])
def test_hostile_json_is_a_clear_400(shared_api: Api, owner: dict[str, str], path: str, body: str, code: str) -> None:
    r = shared_api.client.post(path, content=body, headers={**owner, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code


@pytest.mark.parametrize(("text", "code"), [('{"a":' * 5000 + "1" + "}" * 5000, "json_too_deep"),
                                             ('{"schema": ' + "7" * 5000 + "}", "json_number_too_large")])
def test_hostile_profile_form_field(shared_api: Api, owner: dict[str, str], selfie_bytes: bytes, text: str,
                                    code: str) -> None:
    r = shared_api.client.post(
        "/v1/generations",
        data={"consent": "true", "profile": text},
        files={"selfie": ("me.jpg", selfie_bytes, "image/jpeg")},
        headers=owner,
    )
    assert r.status_code == 400 and r.json()["code"] == code, r.text


@pytest.mark.parametrize("pins", [json.dumps([{"image": "meadow.jpg", "saves": 1}])[:-2] + "9" * 5000 + "}]",
                                  '[{"image": "meadow.jpg", "title": ' + "[" * 5000 + "]" * 5000 + "}]"])
def test_hostile_pins_field_is_refused(shared_api: Api, owner: dict[str, str], pins: str) -> None:
    from .conftest import board_parts

    r = shared_api.client.post(
        "/v1/boards", data={"name": "b", "pins": pins}, files=board_parts(["meadow.jpg"]), headers=owner
    )
    assert r.status_code in (400, 422) and r.json()["code"] in (
        "json_too_deep", "json_number_too_large", "invalid_board"), r.text


# ------------------------------------------------------------------ items 2, 3: what styleembed releases and charges


def ledger(api: Api, board_id: str) -> list[dict[str, Any]]:
    from tastemaker.taste.privacy import Accountant

    path = Accountant(api.settings.data_dir, f"board-{board_id}").path
    return json.loads(path.read_text())["releases"] if path.exists() else []


def test_styleembed_releases_nothing_exact(shared_api: Api, owner: dict[str, str]) -> None:
    """No exact hash, no silhouette, no mode count from the exact clustering, nothing per pin."""
    board = upload_board(shared_api, owner)
    exact = shared_api.client.get(f"/v1/boards/{board['id']}", headers=owner)
    doc = shared_api.client.post("/v1/styleembed", json={"board_id": board["id"]}, headers=owner).json()
    exact_hash = shared_api.client.get(f"/v1/boards/{board['id']}", headers=owner).json()["profile"]["hash"]
    assert exact.status_code == 200 and exact_hash not in json.dumps(doc)
    assert "profile_hash" not in doc and "silhouette" not in doc
    assert doc["profile"]["silhouette"] == 0.0 and doc["profile"]["weighting"] == {"kind": "private"}
    assert doc["profile"]["privacy"]["modes"] == shared_api.settings.max_modes  # k is public, not measured
    assert doc["pins"] == [] and all(m["n_pins"] == 0 and m["medoids"] == [] for m in doc["modes"])


def test_only_releases_that_leave_the_store_are_charged(shared_api: Api, owner: dict[str, str],
                                                        selfie_bytes: bytes) -> None:
    from .conftest import board_parts, generate

    board = upload_board(shared_api, owner, names=SMALL_BOARD)
    for name in ("whiskers.jpg", "wet-brick.jpg", "latte-close.jpg"):  # add a pin, generate: never a release
        r = shared_api.client.post(f"/v1/boards/{board['id']}/pins", files=board_parts([name]), headers=owner)
        assert r.status_code == 200
        assert generate(shared_api, owner, selfie_bytes, board_id=board["id"], wait=None).status_code in (200, 202)
    assert ledger(shared_api, board["id"]) == []
    for _ in range(3):  # one release per revision, however often it is asked for
        r = shared_api.client.post("/v1/styleembed", json={"board_id": board["id"]}, headers=owner)
        assert r.status_code == 200
    assert [r["purpose"] for r in ledger(shared_api, board["id"])] == ["styleembed"]


def _spend(api: Api, board_id: str, releases: list[dict[str, Any]]) -> None:
    from tastemaker.taste.privacy import Accountant

    path = Accountant(api.settings.data_dir, f"board-{board_id}").path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"releases": releases}))


def test_spent_daily_budget_says_when_it_resets(shared_api: Api, owner: dict[str, str]) -> None:
    from datetime import UTC, datetime, timedelta

    board = upload_board(shared_api, owner, names=SMALL_BOARD)
    now = datetime.now(UTC)
    _spend(shared_api, board["id"], [{"time": (now - timedelta(hours=2)).isoformat(), "rho": 1.0, "purpose": "x"}])
    r = shared_api.client.post("/v1/styleembed", json={"board_id": board["id"]}, headers=owner)
    assert r.status_code == 429 and r.json()["code"] == "privacy_budget_daily", r.text
    assert 21 * 3600 <= int(r.headers["retry-after"]) <= 22 * 3600 + 1
    resets = datetime.fromisoformat(r.json()["resets_at"])
    assert abs((resets - (now + timedelta(hours=22))).total_seconds()) < 120


def test_spent_lifetime_budget_is_a_clear_refusal(shared_api: Api, owner: dict[str, str]) -> None:
    board = upload_board(shared_api, owner, names=SMALL_BOARD)
    old = [{"time": f"2025-01-{d:02d}T00:00:00+00:00", "rho": 0.2, "purpose": "x"} for d in range(1, 29)]
    _spend(shared_api, board["id"], old)
    r = shared_api.client.post("/v1/styleembed", json={"board_id": board["id"]}, headers=owner)
    assert r.status_code == 403 and r.json()["code"] == "privacy_budget_lifetime", r.text
    assert r.json()["resets_at"] is None and "never resets" in r.json()["message"]


# ------------------------------------------------------------ item 6: idempotency records that outlive what they name


def test_retryable_failure_releases_the_idempotency_key(make_api: Any, selfie_bytes: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tastemaker.jobs.tasks as tasks

    from .conftest import generate

    api = make_api()
    h = api.key("pro")
    board = upload_board(api, h, names=SMALL_BOARD)
    real = tasks.task_generate
    monkeypatch.setattr(tasks, "task_generate", lambda *a, **k: ("error", "InternalError", "internal_error",
                                                                   "the worker failed unexpectedly", None))
    first = generate(api, {**h, "Idempotency-Key": "k1"}, selfie_bytes, board_id=board["id"]).json()
    assert first["status"] == "failed" and first["error"]["retryable"], first
    monkeypatch.setattr(tasks, "task_generate", real)
    again = generate(api, {**h, "Idempotency-Key": "k1"}, selfie_bytes, board_id=board["id"])
    assert again.headers.get("idempotent-replayed") is None and again.json()["id"] != first["id"]


def test_deleting_a_board_releases_its_idempotency_keys(shared_api: Api, owner: dict[str, str]) -> None:
    from .conftest import board_parts, demo_pins

    c = shared_api.client
    pins = json.dumps([p for p in demo_pins() if p["image"] in SMALL_BOARD])
    create = {"name": "again", "pins": pins}
    r1 = c.post("/v1/boards", data=create, files=board_parts(SMALL_BOARD), headers={**owner, "Idempotency-Key": "b1"})
    assert r1.status_code == 201
    bid = r1.json()["id"]
    assert c.delete(f"/v1/boards/{bid}", headers=owner).status_code == 204
    r2 = c.post("/v1/boards", data=create, files=board_parts(SMALL_BOARD), headers={**owner, "Idempotency-Key": "b1"})
    assert r2.status_code == 201 and r2.headers.get("idempotent-replayed") is None
    assert r2.json()["id"] != bid and c.get(f"/v1/boards/{r2.json()['id']}", headers=owner).status_code == 200


# ------------------------------------------------------------------ item 5: no work before authentication


def denied_rows(api: Api) -> list[Any]:
    from sqlalchemy import select

    from tastemaker.store.sql.models import AuditEntry

    with api.services.store.session() as s:
        return list(s.orm.scalars(select(AuditEntry).where(AuditEntry.action == "request.denied")))


def test_the_key_is_checked_before_the_body_is_read(make_api: Any) -> None:
    api = make_api()
    read: list[bytes] = []

    def body() -> Any:
        for chunk in (b"--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nb\r\n", b"--x--\r\n"):
            read.append(chunk)
            yield chunk

    for headers in ({}, {"Authorization": "Bearer tm_nonsense"}):
        r = api.client.post("/v1/boards", content=body(),
                            headers={**headers, "Content-Type": "multipart/form-data; boundary=x"})
        assert r.status_code == 401
    assert read == []  # refused from the headers alone


def test_refused_requests_are_audited_per_client_and_minute(make_api: Any) -> None:
    api = make_api(unauthenticated_per_minute=50)
    for i in range(200):
        headers = {} if i % 2 else {"Authorization": "Bearer nonsense"}
        assert api.client.get("/v1/usage", headers=headers).status_code in (401, 429)
    first = denied_rows(api)
    assert 1 <= len(first) <= 3  # the first refusal of each kind is written at once
    api.services.denials.flush(everything=True)
    rows = denied_rows(api)
    assert len(rows) <= 6, [(r.outcome, r.detail) for r in rows]
    total = sum(1 + r.detail.get("repeated", 0) for r in rows if "repeated" in r.detail) + sum(
        1 for r in rows if "repeated" not in r.detail)
    assert total >= 200 - len(rows)  # nothing is lost: the summary rows count the rest
    assert all(r.detail["client"].startswith("client:") and "testclient" not in json.dumps(r.detail) for r in rows)
    with api.services.store.session() as s:
        assert api.services.audit.verify(s).ok


def test_unauthenticated_callers_are_rate_limited_per_address(make_api: Any) -> None:
    from fastapi.testclient import TestClient

    api = make_api(unauthenticated_per_minute=5)
    codes = [api.client.get("/v1/usage").status_code for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2
    r = api.client.get("/v1/usage")
    assert r.json()["code"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 60
    assert api.client.get("/v1/usage", headers=api.key()).status_code == 200  # a valid key still works
    other = TestClient(api.client.app, client=("198.51.100.7", 4000))
    assert other.get("/v1/usage").status_code == 401  # another address has a budget of its own


# ------------------------------------------------------------------ item 2: scoped keys


def scoped(api: Api, account_of: dict[str, str], *scopes: str) -> dict[str, str]:
    from tastemaker.api.admin import issue_key

    account = api.client.get("/v1/usage", headers=account_of).json()["account_id"]
    svc = api.services
    key = issue_key(svc.store, svc.audit, api.settings, name="third-party", account_id=account, scopes=list(scopes))
    return {"Authorization": f"Bearer {key.key}"}


def test_a_styleembed_key_cannot_read_pins(shared_api: Api, owner: dict[str, str], selfie_bytes: bytes) -> None:
    from .conftest import board_parts, generate

    c = shared_api.client
    board = upload_board(shared_api, owner, names=SMALL_BOARD)
    app_key = scoped(shared_api, owner, "styleembed")
    assert c.post("/v1/styleembed", json={"board_id": board["id"]}, headers=app_key).status_code == 200
    refused = [
        c.get(f"/v1/boards/{board['id']}", headers=app_key),
        c.get(f"/v1/boards/{board['id']}/profile/history", headers=app_key),
        c.post("/v1/boards", data={"name": "x"}, files=board_parts(["meadow.jpg"]), headers=app_key),
        c.delete(f"/v1/boards/{board['id']}", headers=app_key),
        generate(shared_api, app_key, selfie_bytes, board_id=board["id"], wait=None),
        c.post("/v1/verify", json={"image": "aGk="}, headers=app_key),
        c.post("/v1/feedback", json={"board_id": board["id"], "image": "aGk=", "action": "save"}, headers=app_key),
        c.delete("/v1/me", headers=app_key),
    ]
    for r in refused:
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope", r.text
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert c.get("/v1/usage", headers=app_key).status_code == 200
    assert c.get(f"/v1/boards/{board['id']}", headers=owner).status_code == 200  # the full key still can


def test_scopes_are_checked_before_the_body_is_read(shared_api: Api, owner: dict[str, str]) -> None:
    read: list[bytes] = []

    def body() -> Any:
        read.append(b"x")
        yield b"--x--\r\n"

    r = shared_api.client.post("/v1/boards", content=body(), headers={
        **scoped(shared_api, owner, "verify"), "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 403 and read == []


def test_unknown_scope_is_refused(shared_api: Api, owner: dict[str, str]) -> None:
    from tastemaker.errors import InputError

    with pytest.raises(InputError, match="boards:delete"):
        scoped(shared_api, owner, "boards:delete")


# ------------------------------------------------------------------ item 4: verify has a bounded pool of its own


def _jpeg(w: int, h: int, seed: int = 0) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 50 + 1, w // 50 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture
def held_verify(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every verify waits in its worker until the test sets the event."""
    import threading

    import tastemaker.api.routes.verify as route
    import tastemaker.jobs.tasks as tasks

    event, started = threading.Event(), threading.Semaphore(0)
    real = tasks.task_verify

    def held(*args: Any, **kw: Any) -> Any:
        started.release()
        event.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(route, "task_verify", held)
    yield event, started
    event.set()


def test_verify_floods_neither_the_other_pool_nor_other_accounts(make_api: Any, held_verify: Any) -> None:
    import base64
    from concurrent.futures import ThreadPoolExecutor

    event, started = held_verify
    api = make_api(verify_workers=1, verify_queue_size=1, verify_per_account=1)
    flooder, other, third = api.key("free", "flood"), api.key("pro", "other"), api.key("pro", "third")
    img = {"image": base64.b64encode(_jpeg(64, 64)).decode()}
    board = upload_board(api, other, names=SMALL_BOARD)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(api.client.post, "/v1/verify", json=img, headers=flooder)
        assert started.acquire(timeout=10)  # the flooder's verify holds the only verify worker
        busy = api.client.post("/v1/verify", json=img, headers=flooder)
        assert busy.status_code == 429 and busy.json()["code"] == "verify_busy", busy.text
        assert int(busy.headers["retry-after"]) >= 1
        queued = pool.submit(api.client.post, "/v1/verify", json=img, headers=other)  # waits for the worker
        deadline = time.monotonic() + 20
        while api.services.verify_pool.in_flight() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        full = api.client.post("/v1/verify", json=img, headers=third)  # one running, one queued: the pool is full
        assert full.status_code == 503 and full.json()["code"] == "verify_queue_full", full.text
        # a profile build (the CPU pool) is not stuck behind the verifies
        r = pool.submit(api.client.post, "/v1/styleembed", json={"board_id": board["id"]}, headers=other)
        assert r.result(timeout=60).status_code == 200
        event.set()
        assert first.result(timeout=60).status_code == 200 and queued.result(timeout=60).status_code == 200


def test_verify_decodes_large_jpegs_reduced_and_caps_pixels(make_api: Any) -> None:
    import base64
    import io

    import numpy as np
    from PIL import Image

    api = make_api(max_image_pixels=40_000_000, max_request_bytes=50_000_000, verify_max_pixels=1_000_000,
                   verify_decode_side=512)
    h = api.key("pro")
    big_jpeg = _jpeg(3000, 2000)
    r = api.client.post("/v1/verify", json={"image": base64.b64encode(big_jpeg).decode()}, headers=h)
    assert r.status_code == 200 and r.json()["verdict"] == "not_ours", r.text  # read at 750x500
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1000, 1500, 3), np.uint8)).save(buf, "PNG")  # 1.5 MP, no reduced decode for PNG
    r = api.client.post("/v1/verify", json={"image": base64.b64encode(buf.getvalue()).decode()}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "image_too_many_pixels", r.text


def test_verify_input_is_reduced_only_without_a_manifest() -> None:
    from tastemaker.jobs import verify_input
    from tastemaker.media import decode_image

    big = _jpeg(3000, 2000)
    small = verify_input(big, decode_side=512, max_pixels=1_000_000, max_bytes=50_000_000)
    assert decode_image(small).shape[:2] == (500, 750)
    tiny = _jpeg(300, 200)
    assert verify_input(tiny, decode_side=512, max_pixels=1_000_000, max_bytes=50_000_000) == tiny
    marked = big[:2] + b"\xff\xeb\x00\x10JP" + b"\x00" * 12 + big[2:]  # an APP11 (JUMBF / C2PA) segment
    assert verify_input(marked, decode_side=512, max_pixels=40_000_000, max_bytes=50_000_000) == marked


# ------------------------------------------------------------------ item 11: files with faces or keys are private


def test_server_files_are_private(make_api: Any, tmp_path: Any) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        api = make_api(data_dir=tmp_path / "fresh" / "data")
        upload_board(api, api.key(), names=SMALL_BOARD)
    finally:
        os.umask(old)
    data = api.settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    loose = [p for p in data.rglob("*") if stat.S_IMODE(p.stat().st_mode) & 0o077
             and "provenance" not in p.parts and "c2pa" not in p.parts]
    assert loose == [], [(str(p), oct(p.stat().st_mode)) for p in loose]
    assert any(p.is_file() for p in (data / "blobs").rglob("*")) and (data / "tastemaker.db").exists()
