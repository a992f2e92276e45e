"""``POST /v1/feedback`` and ``GET /v1/boards/{id}/profile/history``: reactions move the board's stored profile
toward (save, like) or away from (hide) the mode an image was drawn in, later generations use the new version,
every version is kept in the store, and reactions survive a rebuild after pins are added."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from sqlalchemy import select

from tastemaker.encoders.style import describe, style_distance
from tastemaker.media import decode_image
from tastemaker.store.sql.models import AuditEntry, Board, ProfileVersion
from tastemaker.taste.privacy import Accountant
from tastemaker.taste.profile import TasteProfile

from .conftest import DEMO, Api, board_parts, generate, upload_board


def stored_profile(api: Api, board_id: str) -> TasteProfile:
    """The board's current profile as the store holds it (what the next generation is made from)."""
    with api.services.store.session() as s:
        board = s.orm.get(Board, board_id)
        assert board is not None and board.profile_json
        return TasteProfile.from_json(board.profile_json)


def image_of(api: Api, headers: dict[str, str], job: dict[str, Any]) -> bytes:
    r = api.client.get(job["images"][0]["url"], headers=headers)
    assert r.status_code == 200
    return r.content


def react(api: Api, headers: dict[str, str], **body: Any) -> Any:
    return api.client.post("/v1/feedback", json=body, headers=headers)


def test_feedback_moves_the_board_profile_toward_the_images_mode(backend_api: Api, selfie_bytes: bytes) -> None:
    api = backend_api
    h = api.key("pro", "fern")
    board = upload_board(api, h)
    jobs = {m: generate(api, h, selfie_bytes, board_id=board["id"], mode=m).json() for m in ("m1", "m2")}
    assert all(j["status"] == "succeeded" and j["images"][0]["mode"] == m for m, j in jobs.items()), jobs
    desc = {m: describe(decode_image(image_of(api, h, j))) for m, j in jobs.items()}
    v1 = stored_profile(api, board["id"])

    # save an m1 image: m1 gains weight and its centroid moves toward the image's look
    r = react(api, h, generation_id=jobs["m1"]["id"], image_index=0, action="save", dwell_seconds=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["mode"] == "m1" and out["mode_source"] == "generation" and out["version"] == v1.version + 1
    assert out["previous_profile_hash"] == jobs["m1"]["profile_hash"] != out["profile_hash"]
    v2 = stored_profile(api, board["id"])
    assert v2.content_hash() == out["profile_hash"] and v2.version == out["version"]
    assert v2.mode("m1").weight > v1.mode("m1").weight + 0.02
    assert style_distance(v2.mode("m1").vector, desc["m1"]) < style_distance(v1.mode("m1").vector, desc["m1"])
    assert v2.mode("m2").vector.tolist() == v1.mode("m2").vector.tolist()  # the other mode's look is untouched

    # hide an m2 image: m2 loses weight and moves away from that look
    r = react(api, h, generation_id=jobs["m2"]["id"], action="hide")
    assert r.status_code == 200 and r.json()["mode"] == "m2"
    v3 = stored_profile(api, board["id"])
    assert v3.mode("m2").weight < v2.mode("m2").weight - 0.02
    assert style_distance(v3.mode("m2").vector, desc["m2"]) > style_distance(v2.mode("m2").vector, desc["m2"])

    # the next generation from the board is made from the new version
    after = generate(api, h, selfie_bytes, board_id=board["id"]).json()
    assert after["status"] == "succeeded" and after["profile_hash"] == r.json()["profile_hash"]

    # the history, oldest first: what it started from, then one version per reaction
    hist = api.client.get(f"/v1/boards/{board['id']}/profile/history", headers=h).json()
    assert hist["profile_hash"] == r.json()["profile_hash"]
    assert [(v["version"], v["kind"], v["action"], v["mode"]) for v in hist["versions"]] == [
        (1, "built", None, None),
        (2, "feedback", "save", "m1"),
        (3, "feedback", "hide", "m2"),
    ]
    assert hist["versions"][1]["generation_id"] == jobs["m1"]["id"] and hist["versions"][1]["dwell_seconds"] == 30
    with api.services.store.session() as s:
        rows = list(s.orm.scalars(select(ProfileVersion).where(ProfileVersion.board_id == board["id"])))
        assert {TasteProfile.from_json(v.profile_json).content_hash() for v in rows} == {
            v["profile_hash"] for v in hist["versions"]
        }
        audit = [e for e in s.orm.scalars(select(AuditEntry)) if e.action == "profile.feedback"]
    assert [(e.detail["action"], e.detail["mode"]) for e in audit] == [("save", "m1"), ("hide", "m2")]


def test_uploaded_images_count_toward_the_nearest_mode(shared_api: Api) -> None:
    h = shared_api.key("pro", "gil")
    board = upload_board(shared_api, h)
    warm = (DEMO / "board" / "cafe-morning.jpg").read_bytes()  # a pin of the warm mode (m1)
    r = shared_api.client.post(
        "/v1/feedback",
        data={"board_id": board["id"], "action": "like"},
        files={"image": ("cafe.jpg", warm, "image/jpeg")},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "m1" and r.json()["mode_source"] == "nearest" and r.json()["generation_id"] is None
    cool = base64.b64encode((DEMO / "board" / "night-launch.jpg").read_bytes()).decode()
    r = react(shared_api, h, board_id=board["id"], image=cool, action="skip")
    assert r.status_code == 200 and r.json()["mode"] == "m2" and r.json()["version"] == 3


def test_an_uploaded_copy_of_an_output_counts_toward_its_mode(shared_api: Api, selfie_bytes: bytes) -> None:
    h = shared_api.key("pro", "hal")
    board = upload_board(shared_api, h)
    job = generate(shared_api, h, selfie_bytes, board_id=board["id"], mode="m2").json()
    data = image_of(shared_api, h, job)
    r = react(shared_api, h, board_id=board["id"], image=base64.b64encode(data).decode(), action="save")
    assert r.status_code == 200, r.text
    assert (r.json()["mode"], r.json()["mode_source"], r.json()["generation_id"]) == ("m2", "generation", job["id"])


def test_reactions_survive_a_rebuild_after_pins_are_added(shared_api: Api) -> None:
    h = shared_api.key("pro", "ivy")
    names = ["meadow.jpg", "cat-nap.jpg", "cafe-morning.jpg", "night-launch.jpg", "cold-cat.jpg", "night-grass.jpg"]
    board = upload_board(shared_api, h, names=names)
    pin = (DEMO / "board" / "latte-close.jpg").read_bytes()
    for action in ("save", "like"):
        r = react(shared_api, h, board_id=board["id"], image=base64.b64encode(pin).decode(), action=action)
        assert r.status_code == 200, r.text
    r = shared_api.client.post(f"/v1/boards/{board['id']}/pins", files=board_parts(["brick-wall.jpg"]), headers=h)
    assert r.status_code == 200 and r.json()["board"]["revision"] == 2
    se = shared_api.client.post("/v1/styleembed", json={"board_id": board["id"]}, headers=h)
    assert se.status_code == 200 and se.json()["board_revision"] == 2
    rebuilt = stored_profile(shared_api, board["id"])
    assert len(rebuilt.feedback) == 2 and rebuilt.version == 4 and "profile_hash" not in se.json()
    got = shared_api.client.get(f"/v1/boards/{board['id']}", headers=h).json()["profile"]
    assert got == {"hash": rebuilt.content_hash(), "revision": 2, "stale": False}
    warm = rebuilt.modes[max(range(len(rebuilt.modes)), key=lambda i: rebuilt.modes[i].weight)]
    assert {e["mode"] for e in rebuilt.feedback} == {warm.id}  # re-assigned to the new warm mode
    hist = shared_api.client.get(f"/v1/boards/{board['id']}/profile/history", headers=h).json()
    assert [(v["kind"], v["board_revision"]) for v in hist["versions"]] == [
        ("built", 1),
        ("feedback", 1),
        ("feedback", 1),
        ("rebuilt", 2),
    ]
    assert hist["versions"][-1]["replayed"] == 2
    r = react(shared_api, h, board_id=board["id"], image=base64.b64encode(pin).decode(), action="like")
    assert r.status_code == 200 and r.json()["version"] == 5 and r.json()["board_revision"] == 2

    # deleting the board deletes its versions and its privacy ledger too
    ledger = Accountant(shared_api.settings.data_dir, f"board-{board['id']}").path
    assert ledger.exists()
    assert shared_api.client.delete(f"/v1/boards/{board['id']}", headers=h).status_code == 204
    with shared_api.services.store.session() as s:
        assert s.orm.scalars(select(ProfileVersion).where(ProfileVersion.board_id == board["id"])).all() == []
    assert not ledger.exists()


def test_concurrent_reactions_are_applied_one_after_the_other(backend_api: Api) -> None:
    api = backend_api
    h = api.key("pro", "jun")
    board = upload_board(api, h, names=["meadow.jpg", "cat-nap.jpg", "night-launch.jpg", "cold-cat.jpg"])
    assert api.client.get(f"/v1/boards/{board['id']}/profile/history", headers=h).json()["versions"] == []
    pin = base64.b64encode((DEMO / "board" / "meadow.jpg").read_bytes()).decode()
    results: list[Any] = []

    def one() -> None:
        results.append(react(api, h, board_id=board["id"], image=pin, action="save"))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200, 200], [r.text for r in results]
    assert sorted(r.json()["version"] for r in results) == [2, 3, 4]
    assert len(stored_profile(api, board["id"]).feedback) == 3


def test_idempotent_feedback(shared_api: Api) -> None:
    h = shared_api.key("pro", "kai")
    board = upload_board(shared_api, h, names=["meadow.jpg", "cat-nap.jpg", "night-launch.jpg", "cold-cat.jpg"])
    pin = base64.b64encode((DEMO / "board" / "meadow.jpg").read_bytes()).decode()
    hk = {**h, "Idempotency-Key": "like-1"}
    r1 = react(shared_api, hk, board_id=board["id"], image=pin, action="like")
    r2 = react(shared_api, hk, board_id=board["id"], image=pin, action="like")
    assert r1.status_code == r2.status_code == 200 and r1.json() == r2.json()
    assert r2.headers["idempotent-replayed"] == "true"
    assert len(stored_profile(shared_api, board["id"]).feedback) == 1
    r3 = react(shared_api, hk, board_id=board["id"], image=pin, action="hide")
    assert r3.status_code == 422 and r3.json()["code"] == "idempotency_key_reused"


@pytest.fixture(scope="module")
def lee(shared_api: Api) -> dict[str, str]:
    return shared_api.key("pro", "lee")


@pytest.fixture(scope="module")
def lee_job(shared_api: Api, lee: dict[str, str], selfie_bytes: bytes) -> dict[str, Any]:
    board = upload_board(shared_api, lee, names=["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"])
    job = generate(shared_api, lee, selfie_bytes, board_id=board["id"]).json()
    assert job["status"] == "succeeded"
    return job


def test_feedback_bad_input_and_other_accounts(
    shared_api: Api, lee: dict[str, str], lee_job: dict[str, Any], selfie_bytes: bytes
) -> None:
    c = shared_api.client
    other = shared_api.key("free", "mo")
    pin = base64.b64encode((DEMO / "board" / "meadow.jpg").read_bytes()).decode()
    gid, bid = lee_job["id"], lee_job["board_id"]
    profile = c.post("/v1/styleembed", json={"board_id": bid}, headers=lee).json()["profile"]
    inline = c.post(
        "/v1/generations",
        json={
            "profile": profile,
            "selfie": base64.b64encode(selfie_bytes).decode(),
            "consent": True,
            "n": 1,
            "size": 256,
        },
        headers={**lee, "Prefer": "wait=30"},
    ).json()
    assert inline["status"] == "succeeded"
    cases = [
        (react(shared_api, lee, generation_id=gid, action="adore"), 422, "invalid_request"),
        (react(shared_api, lee, action="save"), 422, "invalid_request"),
        (react(shared_api, lee, generation_id=gid, board_id=bid, image=pin, action="save"), 422, "invalid_request"),
        (react(shared_api, lee, image=pin, action="save"), 422, "invalid_request"),
        (react(shared_api, lee, board_id=bid, image="***", action="save"), 422, "invalid_request"),
        (react(shared_api, lee, board_id=bid, image="aGVsbG8=", action="save"), 422, "image_unreadable"),
        (react(shared_api, lee, generation_id=gid, dwell_seconds=-1, action="save"), 422, "invalid_request"),
        (react(shared_api, lee, generation_id=gid, image_index=5, action="save"), 404, "not_found"),
        (react(shared_api, lee, generation_id="gen_nope", action="save"), 404, "not_found"),
        (react(shared_api, lee, generation_id=inline["id"], action="save"), 422, "invalid_request"),
        (react(shared_api, lee, generation_id=gid, board_id="brd_other", action="save"), 422, "invalid_request"),
        (
            c.post("/v1/feedback", content=b"save", headers={**lee, "Content-Type": "text/plain"}),
            415,
            "unsupported_media_type",
        ),
        (react(shared_api, other, generation_id=gid, action="save"), 404, "not_found"),
        (react(shared_api, other, board_id=bid, image=pin, action="save"), 404, "not_found"),
        (c.get(f"/v1/boards/{bid}/profile/history", headers=other), 404, "not_found"),
        (react(shared_api, {}, generation_id=gid, action="save"), 401, "missing_api_key"),
    ]
    for r, status, code in cases:
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    # none of that changed the profile
    assert c.get(f"/v1/boards/{bid}/profile/history", headers=lee).json()["versions"] == []
