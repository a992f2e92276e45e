"""``POST /v1/verify``: every verdict is a 200 with the report; other accounts' ids are redacted; bad input gets
the core error codes; verifying has its own rate-limit bucket and leaves hash-only audit entries."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from tastemaker.api.settings import TierLimits
from tastemaker.store.sql.models import AuditEntry

from .conftest import DEMO, TEST_TIERS, Api, generate, upload_board


@pytest.fixture(scope="module")
def owner(shared_api: Api) -> dict[str, str]:
    return shared_api.key("pro", "vera")


@pytest.fixture(scope="module")
def stranger(shared_api: Api) -> dict[str, str]:
    return shared_api.key("free", "sam")


@pytest.fixture(scope="module")
def output(shared_api: Api, owner: dict[str, str], selfie_bytes: bytes) -> bytes:
    """One PNG the service generated for ``owner`` (watermarked, C2PA-signed, logged)."""
    board = upload_board(shared_api, owner, names=["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"])
    job = generate(shared_api, owner, selfie_bytes, board_id=board["id"], output_format="png").json()
    assert job["status"] == "succeeded", job
    r = shared_api.client.get(job["images"][0]["url"], headers=owner)
    assert r.status_code == 200
    return r.content


def verify(api: Api, headers: dict[str, str], data: bytes, *, as_json: bool = False) -> Any:
    if as_json:
        return api.client.post("/v1/verify", json={"image": base64.b64encode(data).decode()}, headers=headers)
    return api.client.post("/v1/verify", files={"image": ("x.png", data, "image/png")}, headers=headers)


def account_id(api: Api, headers: dict[str, str]) -> str:
    aid: str = api.client.get("/v1/usage", headers=headers).json()["account_id"]
    return aid


def test_own_image_is_verified_with_its_record_and_proof(shared_api: Api, owner: dict[str, str], output: bytes) -> None:
    me = account_id(shared_api, owner)
    for as_json in (False, True):
        r = verify(shared_api, owner, output, as_json=as_json)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["verdict"] == "verified", doc["problems"]
        assert doc["record_owner"] == "you" and doc["record"]["account"] == me
        assert doc["image_sha256"] == hashlib.sha256(output).hexdigest()
        assert doc["c2pa"]["state"] == "valid" and doc["c2pa"]["trusted"]
        assert doc["c2pa"]["record"]["account"] == me
        assert doc["watermark"]["id"] == f"{doc['record']['record_id']:010x}" and doc["watermark"]["confidence"] > 0.5
        log = doc["log"]
        assert log["proof_ok"] and log["index"] is not None and log["tree_size"] >= 1 and len(log["root"]) == 64
        assert doc["record"]["schema"] == "tastemaker.record/v2"


def test_other_accounts_see_a_redacted_account(
    shared_api: Api, owner: dict[str, str], stranger: dict[str, str], output: bytes
) -> None:
    me = account_id(shared_api, owner)
    first = verify(shared_api, stranger, output)
    assert first.status_code == 200
    doc = first.json()
    assert doc["verdict"] == "verified" and doc["record_owner"] == "another_account"
    redacted = doc["record"]["account"]
    assert redacted.startswith("redacted:") and len(redacted) == len("redacted:") + 16
    assert doc["c2pa"]["record"]["account"] == redacted  # the manifest's copy too
    assert me not in first.text and me.split("_")[1] not in first.text
    again = verify(shared_api, stranger, output, as_json=True).json()
    assert again["record"]["account"] == redacted  # stable: the same account always hashes the same
    assert doc["record"]["image_sha256"] == verify(shared_api, owner, output).json()["record"]["image_sha256"]


def test_stripped_tampered_and_foreign_images_are_all_200(
    shared_api: Api, owner: dict[str, str], output: bytes
) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(output)).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=80)  # no metadata, re-encoded
    stripped = verify(shared_api, owner, buf.getvalue())
    assert stripped.status_code == 200
    assert stripped.json()["verdict"] == "verified" and stripped.json()["c2pa"]["state"] == "absent"
    assert stripped.json()["record"] is not None

    tampered = bytearray(output)
    tampered[len(tampered) // 2] ^= 0xFF
    r = verify(shared_api, owner, bytes(tampered))
    assert r.status_code == 200 and r.json()["verdict"] == "tampered" and r.json()["problems"]

    foreign = verify(shared_api, owner, (DEMO / "board" / "meadow.jpg").read_bytes())
    assert foreign.status_code == 200
    doc = foreign.json()
    assert doc["verdict"] == "not_ours" and doc["record"] is None and doc["record_owner"] is None
    assert doc["watermark"]["id"] is None and doc["log"]["proof_ok"] is False


def bomb_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buf, "PNG")  # 36 Mpx, a few KB: over the test cap of 4 Mpx
    return buf.getvalue()


def test_bad_input_gets_the_core_error_codes(shared_api: Api, owner: dict[str, str]) -> None:
    c = shared_api.client
    cases = [
        (
            c.post("/v1/verify", files={"image": ("x.png", b"not an image", "image/png")}, headers=owner),
            422,
            "image_unreadable",
        ),
        (c.post("/v1/verify", files={"image": ("x.png", b"", "image/png")}, headers=owner), 422, "image_unreadable"),
        (
            c.post("/v1/verify", files={"image": ("x.png", bomb_png(), "image/png")}, headers=owner),
            422,
            "image_too_many_pixels",
        ),
        (c.post("/v1/verify", files={"photo": ("x.png", b"x", "image/png")}, headers=owner), 422, "invalid_request"),
        (
            c.post("/v1/verify", data={"image": "text"}, files={"other": ("a", b"", "text/plain")}, headers=owner),
            400,
            "file_part_expected",  # the image came as a text field
        ),
        (c.post("/v1/verify", json={"image": "***"}, headers=owner), 422, "invalid_request"),
        (c.post("/v1/verify", json={}, headers=owner), 422, "invalid_request"),
        (c.post("/v1/verify", json={"image": "aGk=", "extra": 1}, headers=owner), 422, "invalid_request"),
        (
            c.post("/v1/verify", content=b"{oops", headers={**owner, "Content-Type": "application/json"}),
            422,
            "invalid_request",
        ),
        (
            c.post("/v1/verify", content=b"raw", headers={**owner, "Content-Type": "image/png"}),
            415,
            "unsupported_media_type",
        ),
        (
            c.post("/v1/verify", content=b"x" * 6_000_000, headers={**owner, "Content-Type": "image/png"}),
            413,
            "request_too_large",
        ),
        (c.post("/v1/verify", files={"image": ("x.png", b"x", "image/png")}), 401, "missing_api_key"),
    ]
    for r, status, code in cases:
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        assert "Traceback" not in r.text


def test_verify_is_audited_with_hashes_only(shared_api: Api, owner: dict[str, str], output: bytes) -> None:
    me = account_id(shared_api, owner)
    verify(shared_api, owner, output)
    with shared_api.services.store.session() as s:
        entries = list(s.orm.scalars(select(AuditEntry).where(AuditEntry.action == "provenance.verified")))
    mine = [e for e in entries if e.account_id == me]
    assert mine and mine[-1].outcome == "verified" and mine[-1].detail["record_owner"] == "you"
    assert mine[-1].detail["image_sha256"] == hashlib.sha256(output).hexdigest()
    assert len(json.dumps([e.objects | e.detail for e in entries])) < 300 * len(entries)


def test_verify_has_its_own_rate_limit_bucket(make_api: Any) -> None:
    tiers = {
        **TEST_TIERS,
        "verify2": TierLimits(
            requests_per_minute=100, styleembed_per_minute=5, images_per_month=5, max_active_jobs=1, verify_per_minute=2
        ),
    }
    api = make_api(tiers=tiers)
    h = api.key("verify2")
    pin = (DEMO / "board" / "night-grass.jpg").read_bytes()
    for _ in range(2):
        r = verify(api, h, pin)
        assert r.status_code == 200 and r.json()["verdict"] == "not_ours"
        assert '"verify";q=2' in r.headers["ratelimit-policy"]
    r = verify(api, h, pin)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    assert '"verify";r=0' in r.headers["ratelimit"]
    usage = api.client.get("/v1/usage", headers=h).json()  # other calls still go through
    assert usage["rate_limits"]["verify"] == {**usage["rate_limits"]["verify"], "limit": 2, "remaining": 0}
    with api.services.store.session() as s:
        denied = list(s.orm.scalars(select(AuditEntry).where(AuditEntry.action == "request.denied")))
    assert any(e.detail.get("bucket") == "verify" for e in denied)


def test_a_copied_mark_is_forged_and_no_raw_account_id_travels(
    shared_api: Api, owner: dict[str, str], stranger: dict[str, str], output: bytes
) -> None:
    """Issue 11 #1 and #9: a victim's record id written into another photo verified as the victim's output, and
    every manifest carried the raw account id."""
    from tastemaker.media import encode_image
    from tastemaker.pipeline import provenance_for
    from tastemaker.provenance import watermark as wm

    me = account_id(shared_api, owner)
    assert me.encode() not in output  # the manifest names the account by its pseudonym only
    doc = verify(shared_api, owner, output).json()
    rid = doc["record"]["record_id"]
    assert doc["c2pa"]["record"]["account"] == me  # the owner sees their own id
    prov = provenance_for(shared_api.settings.data_dir, shared_api.settings.provenance_secret)
    assert prov.key != wm.DEFAULT_KEY
    photo = np.asarray(Image.open(DEMO / "board" / "brick-wall.jpg").convert("RGB"))
    forged = encode_image(wm.embed(photo, rid, key=prov.key), "jpeg")
    for who in (owner, stranger):
        got = verify(shared_api, who, forged).json()
        assert got["verdict"] == "forged", got["problems"]
        assert got["watermark"]["id"] == f"{rid:010x}" and got["record"] is None and got["record_owner"] is None
        assert got["match"]["fingerprint_z"] < 7
    # the real picture, stripped of its metadata, is still found (by its mark) and matches its fingerprint
    pixels = np.asarray(Image.open(io.BytesIO(output)).convert("RGB"))
    again = verify(shared_api, stranger, encode_image(pixels[:, ::-1].copy(), "jpeg")).json()
    assert again["verdict"] == "verified" and again["match"]["by"] == "watermark"
    assert again["match"]["fingerprint_z"] >= 7 and again["record"]["account"].startswith("redacted:")


def test_the_log_proves_it_extends_a_head_the_client_kept(
    shared_api: Api, owner: dict[str, str], output: bytes
) -> None:
    """Issue 11 #12: the tree head and a consistency proof are in the answer; a kept head is checked."""
    from tastemaker.provenance.ledger import SignedTreeHead, verify_consistency

    first = verify(shared_api, owner, output).json()["log"]
    head = SignedTreeHead.from_note(first["tree_head"])
    assert head.size == first["tree_size"] and head.root.hex() == first["root"]
    assert first["consistency"]["ok"] and first["consistency"]["to_size"] == head.size
    url = f"/v1/verify?since_size={head.size}&since_root={head.root.hex()}"
    r = shared_api.client.post(url, files={"image": ("x.png", output, "image/png")}, headers=owner)
    assert r.status_code == 200 and r.json()["verdict"] == "verified"
    c = r.json()["log"]["consistency"]
    assert c["ok"] and c["from_size"] == head.size
    later = r.json()["log"]
    verify_consistency(head.size, later["tree_size"], head.root, bytes.fromhex(later["root"]),
                       [bytes.fromhex(p) for p in c["proof"]])
    rewritten = f"/v1/verify?since_size={head.size}&since_root={'ab' * 32}"
    r = shared_api.client.post(rewritten, files={"image": ("x.png", output, "image/png")}, headers=owner)
    assert r.status_code == 200 and r.json()["verdict"] == "tampered"
    assert not r.json()["log"]["consistency"]["ok"]
    half = shared_api.client.post(f"/v1/verify?since_size={head.size}", files={"image": ("x.png", output, "image/png")},
                                  headers=owner)
    assert half.status_code == 422 and half.json()["code"] == "incomplete_tree_head"


def test_openapi_documents_every_verdict(shared_api: Api) -> None:
    spec = shared_api.client.get("/openapi.json").json()
    verdict = spec["components"]["schemas"]["VerifyOut"]["properties"]["verdict"]
    assert set(verdict["enum"]) == {"verified", "not_ours", "tampered", "forged", "untrusted"}
    assert "copied mark" in verdict["description"]


def test_the_watermark_key_derives_from_the_deployment_secret(shared_api: Api, output: bytes) -> None:
    """Issue 11 #1: the server's marks are keyed by its secret key (every replica derives the same key), not by
    a public constant nor a key file that differs per machine; another secret opens nothing."""
    from tastemaker.errors import LedgerError
    from tastemaker.provenance import watermark
    from tastemaker.provenance.keys import KEY_FILE, load_store_keys

    store_dir = shared_api.settings.data_dir / "provenance"
    assert not (store_dir / KEY_FILE).exists()  # no machine-local key: the secret is the key
    replica = load_store_keys(store_dir, shared_api.settings.secret_key.get_secret_value())
    pixels = np.asarray(Image.open(io.BytesIO(output)).convert("RGB"))
    mark = watermark.detect(pixels, key=replica.watermark_key)
    assert mark.found and mark.payload is not None
    wrong = load_store_keys(store_dir.parent / "elsewhere", "another-secret-" + "y" * 40)
    assert not watermark.detect(pixels, key=wrong.watermark_key).found
    with pytest.raises(LedgerError, match="another secret"):
        load_store_keys(store_dir, "another-secret-" + "y" * 40)
    with pytest.raises(LedgerError, match="deployment secret"):
        load_store_keys(store_dir)
    assert not (store_dir / KEY_FILE).exists()
