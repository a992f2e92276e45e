"""``DELETE /v1/me``: every stored trace of the account goes — rows in every table, its blobs (but not blobs
another account shares), privacy ledgers, rate-limit counters, keys — except hash-only audit entries; another
account's data is untouched. Run on both backends."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from sqlalchemy import select

from tastemaker.api.admin import issue_key
from tastemaker.store.sql.models import ApiKey, AuditEntry, Base
from tastemaker.taste.privacy import Accountant

from .conftest import Api, board_parts, generate, upload_board
from .test_api import png

KEPT_TABLES = {"audit_log", "audit_head"}  # ids and hashes only, by design


def dump_tables(api: Api) -> dict[str, str]:
    """Every row of every table (but the audit log), as text to search for ids and hashes."""
    out = {}
    with api.services.store.session() as s:
        for table in Base.metadata.sorted_tables:
            if table.name in KEPT_TABLES:
                continue
            rows = [dict(r._mapping) for r in s.orm.execute(select(table))]
            out[table.name] = json.dumps(rows, default=str)
    return out


def test_delete_me_removes_every_trace_and_leaves_others_alone(backend_api: Api, selfie_bytes: bytes) -> None:
    api, c = backend_api, backend_api.client
    alice, bob = api.key("pro", "alice"), api.key("pro", "bob")
    me = c.get("/v1/usage", headers=alice).json()["account_id"]
    other = c.get("/v1/usage", headers=bob).json()["account_id"]
    svc = api.services
    extra = issue_key(svc.store, svc.audit, api.settings, name="alice-2", account_id=me).key
    second = {"Authorization": f"Bearer {extra}"}  # a second key of the same account

    # alice: a board with an image of her own and one bob also pinned; a profile (privacy ledger); a generation
    # (with an idempotency key); feedback (profile versions); a provenance check
    unique = png(np.random.default_rng(11).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    parts = [
        *board_parts(["meadow.jpg", "cat-nap.jpg", "night-launch.jpg", "cold-cat.jpg"]),
        ("images", ("mine.png", unique, "image/png")),
    ]
    r = c.post("/v1/boards", data={"name": "alice's"}, files=parts, headers=alice)
    assert r.status_code == 201
    board = r.json()
    assert c.post("/v1/styleembed", json={"board_id": board["id"]}, headers=alice).status_code == 200
    job = generate(api, {**alice, "Idempotency-Key": "g1"}, selfie_bytes, board_id=board["id"]).json()
    assert job["status"] == "succeeded", job
    output = c.get(job["images"][0]["url"], headers=alice).content
    fb = c.post("/v1/feedback", json={"generation_id": job["id"], "action": "save"}, headers=alice)
    assert fb.status_code == 200
    assert c.post("/v1/verify", json={"image": base64.b64encode(output).decode()}, headers=alice).status_code == 200

    # bob: a board sharing meadow.jpg, a profile and a generation
    bob_board = upload_board(api, bob, names=["meadow.jpg", "night-grass.jpg", "whiskers.jpg"])
    assert c.post("/v1/styleembed", json={"board_id": bob_board["id"]}, headers=bob).status_code == 200
    bob_job = generate(api, bob, selfie_bytes, board_id=bob_board["id"]).json()
    assert bob_job["status"] == "succeeded"

    with svc.store.session() as s:
        key_ids = list(s.orm.scalars(select(ApiKey.id).where(ApiKey.account_id == me)))
    assert len(key_ids) == 2
    shas = {p["image"]: p["sha256"] for p in board["pins"]}
    output_sha = job["images"][0]["sha256"]
    ledger = Accountant(api.settings.data_dir, f"board-{board['id']}").path
    bob_ledger = Accountant(api.settings.data_dir, f"board-{bob_board['id']}").path
    assert ledger.exists() and bob_ledger.exists()
    markers = [me, board["id"], job["id"], *key_ids, shas["mine.png"], shas["cat-nap.jpg"], output_sha]
    before = dump_tables(api)
    assert all(any(m in text for text in before.values()) for m in markers)
    audit_before = len(list(_entries(api, me)))

    r = c.delete("/v1/me", headers=alice)
    assert r.status_code == 200, r.text
    gone = r.json()
    assert gone["account_id"] == me
    d = gone["deleted"]
    assert (d["accounts"], d["api_keys"], d["boards"], d["pins"], d["generations"], d["images"]) == (1, 2, 1, 5, 1, 1)
    assert d["profile_versions"] == 2 and d["usage_periods"] == 1 and d["idempotency_keys"] >= 1
    assert d["blobs"] == 5 and d["privacy_ledgers"] == 1  # 4 pins bob does not share + the output; not meadow
    assert gone["kept"]["audit_entries"] == audit_before + 1

    # the account can no longer authenticate, with either key
    for h in (alice, second):
        r = c.get("/v1/usage", headers=h)
        assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"

    # nothing in any table names the account or its objects
    after = dump_tables(api)
    for table, text in after.items():
        for m in markers:
            assert m not in text, (table, m)
    # its blobs are gone, the shared one stays; no file under the data dir holds its unique image
    blobs = svc.store.blobs
    assert not any(blobs.exists(sha) for name, sha in shas.items() if name != "meadow.jpg")
    assert not blobs.exists(output_sha) and blobs.exists(shas["meadow.jpg"])
    assert not any(p.is_file() and p.read_bytes() == unique for p in api.settings.data_dir.rglob("*"))
    assert not ledger.exists()
    # the rate limiter holds no counters for it
    assert (
        svc.limiter.peek(me, api.settings.tier("pro"), "requests").remaining
        == api.settings.tier("pro").requests_per_minute
    )

    # the audit log keeps ids and hashes only, still verifies, and records the deletion
    entries = list(_entries(api, me))
    assert entries[-1].action == "account.deleted" and entries[-1].detail["boards"] == 1
    assert "mine.png" not in json.dumps([e.objects | e.detail for e in entries])
    with svc.store.session() as s:
        assert svc.audit.verify(s).ok

    # bob's data is untouched
    assert c.get(f"/v1/boards/{bob_board['id']}", headers=bob).json()["n_pins"] == 3
    assert c.get(bob_job["images"][0]["url"], headers=bob).status_code == 200
    assert c.post("/v1/styleembed", json={"board_id": bob_board["id"]}, headers=bob).status_code == 200
    assert bob_ledger.exists() and other in after["accounts"]
    # alice's image still verifies (the provenance log is append-only) — for bob, without her account id
    v = c.post("/v1/verify", files={"image": ("x.png", output, "image/png")}, headers=bob).json()
    assert v["verdict"] == "verified" and v["record_owner"] == "another_account" and me not in json.dumps(v)


def _entries(api: Api, account_id: str) -> Any:
    with api.services.store.session() as s:
        q = select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(AuditEntry.seq)
        return list(s.orm.scalars(q))


def test_delete_me_needs_a_valid_key(backend_api: Api) -> None:
    c = backend_api.client
    assert c.delete("/v1/me").status_code == 401
    h = backend_api.key("free", "zed")
    assert c.delete("/v1/me", headers=h).status_code == 200
    r = c.delete("/v1/me", headers=h)
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"


def test_deletions_during_admission_are_clear_errors_not_500s(
    backend_api: Api, selfie_bytes: bytes, monkeypatch: Any
) -> None:
    """The account (or the board) is deleted while the face check runs: the job row cannot be written."""
    from tastemaker.store.sql.models import Board, Job

    api, c = backend_api, backend_api.client
    svc = api.services
    h = api.key("pro", "vanishing")
    me = c.get("/v1/usage", headers=h).json()["account_id"]
    board = upload_board(api, h, names=["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"])
    assert c.post("/v1/styleembed", json={"board_id": board["id"]}, headers=h).status_code == 200
    original = svc.runner.call_async
    doomed: dict[str, str] = {}

    async def face_check_then_delete(*args: Any, **kwargs: Any) -> Any:
        out = await original(*args, **kwargs)
        with svc.store.session() as s:  # what DELETE /v1/boards/{id} or DELETE /v1/me does meanwhile
            if doomed.get("what") == "board":
                s.delete_board(s.get_board(me, board["id"]))
            else:
                s.delete_account(me)
            s.commit()
        return out

    monkeypatch.setattr(svc.runner, "call_async", face_check_then_delete)
    doomed["what"] = "board"
    r = generate(api, h, selfie_bytes, board_id=board["id"])
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert "deleted while the generation was being admitted" in r.json()["message"]

    other = upload_board(api, h, names=["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"])
    doomed["what"] = "account"
    r = generate(api, h, selfie_bytes, board_id=other["id"])
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    assert "account was deleted" in r.json()["message"]
    with svc.store.session() as s:  # nothing half-written: no job, no board left behind
        assert s.orm.scalars(select(Job).where(Job.account_id == me)).first() is None
        assert s.orm.scalars(select(Board).where(Board.account_id == me)).first() is None
