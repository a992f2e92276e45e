"""Issue 11 #1, #9, #12: verification that cannot be forged or laundered, keyed store secrets, log history.

Each test stamps real (output-sized) pictures into a fresh store and attacks them the way the audit did:
a victim's mark copied onto another photo, a real output re-marked or stripped, a manifest signed by a
stranger's CA, a log whose history no longer matches a head someone kept.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tastemaker.errors import LedgerError
from tastemaker.media import encode_image
from tastemaker.provenance import watermark as wm
from tastemaker.provenance.c2pa import create_signing_identity, sign_image
from tastemaker.provenance.ledger import SignedTreeHead, sign_tree_head
from tastemaker.provenance.service import VERDICT_EXIT, Provenance, Stamped

from .conftest import DEMO
from .imaging import SHARE_EDITS, THUMBNAIL, crop_area, fit_long_side, jpeg, load_rgb, resize, synthetic

STAMP = dict(prompt="a portrait in the rain", profile_hash="sha256:p", engine="look", engine_version="2",
             seed=3, account="acct_victim")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Provenance:
    return Provenance(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def outputs(store: Provenance, natural_images: dict[str, np.ndarray]) -> dict[str, Stamped]:
    return {name: store.stamp(img, fmt="png", **STAMP) for name, img in natural_images.items()}  # type: ignore[arg-type]


def photo(name: str, long_side: int) -> np.ndarray:
    """A board photo that is not an output of the store."""
    return fit_long_side(load_rgb(DEMO / "board" / name), long_side)


def png(pixels: np.ndarray) -> bytes:
    return encode_image(pixels, "png")


def test_the_watermark_key_is_a_per_store_secret(tmp_path: Path, store: Provenance) -> None:
    """The key was a public constant: anyone could write a victim's record id into any picture."""
    other = Provenance(tmp_path / "other")
    assert store.key != wm.DEFAULT_KEY and other.key != store.key
    key_file = store.dir / "store.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert Provenance(store.dir.parent).key == store.key  # stable across opens
    # a deployment derives its keys from its secret: same secret, same keys; another secret is refused
    a, b = Provenance(tmp_path / "a", secret="s" * 40), Provenance(tmp_path / "b", secret="s" * 40)
    assert a.key == b.key != store.key and a.pseudonym("x") == b.pseudonym("x")
    with pytest.raises(LedgerError, match="another secret"):
        Provenance(tmp_path / "a", secret="t" * 40)


def test_a_mark_written_with_the_public_default_key_is_not_read(store: Provenance, outputs: dict[str, Stamped]) -> None:
    forged = wm.embed(photo("latte-close.jpg", 800), outputs["selfie@1024"].record.record_id, key=wm.DEFAULT_KEY)
    report = store.verify(png(forged))
    assert report.watermark_id is None and report.verdict == "not_ours"


def test_a_copied_mark_on_another_picture_is_forged(
    store: Provenance, outputs: dict[str, Stamped], natural_images: dict[str, np.ndarray]
) -> None:
    """Read a victim's record id, write it into any photo: that was `verified`, attributed to the victim."""
    victim = outputs["selfie@1024"]
    for other in (photo("brick-wall.jpg", 1024), photo("night-grass.jpg", 700), synthetic(11)):
        forged = wm.embed(other, victim.record.record_id, key=store.key)  # the key leaked, or the mark was copied
        for data in (png(forged), encode_image(jpeg(forged, 75), "jpeg"), png(forged[:, ::-1].copy())):
            report = store.verify(data)
            assert report.watermark_id == victim.record.record_id
            assert report.verdict == "forged", report.problems
            assert report.record is None and report.match is not None and not report.match.same
            assert any("copied mark" in p for p in report.problems)
    assert VERDICT_EXIT["forged"] == 22


@pytest.mark.parametrize(
    "attack",
    [
        lambda im: jpeg(im, 50),
        lambda im: resize(im, 0.5),
        lambda im: crop_area(im, 0.5, np.random.default_rng(1)),
        lambda im: np.ascontiguousarray(im[:, ::-1]),
        lambda im: np.ascontiguousarray(np.rot90(im)),
        lambda im: np.pad(im, ((120, 40), (30, 150), (0, 0)), constant_values=240),  # a screenshot
        *(lambda im, f=f: f(im, None) for f in SHARE_EDITS.values()),
    ],
    ids=["jpeg50", "resize0.5", "crop50", "mirror", "quarter-turn", "screenshot", *SHARE_EDITS],
)
def test_real_outputs_still_verify_after_what_the_watermark_survives(
    store: Provenance, outputs: dict[str, Stamped], attack: object
) -> None:
    for name, out in outputs.items():
        report = store.verify(png(attack(out.pixels)))  # type: ignore[operator]
        assert report.verdict == "verified", (name, report.problems)
        assert report.record == out.record and report.matched_by == "watermark" and report.match is not None
        assert report.match.same


def test_a_thumbnail_is_recognised_by_its_fingerprint(store: Provenance, outputs: dict[str, Stamped]) -> None:
    """A 0.25x thumbnail saved as JPEG 70 keeps too little of the mark; its picture still finds the record."""
    for name, out in outputs.items():
        report = store.verify(encode_image(THUMBNAIL["thumb0.25+jpeg70"](out.pixels, None), "jpeg"))
        assert report.verdict == "verified" and report.record == out.record, (name, report.problems)


def test_laundered_outputs_are_found_by_their_fingerprint(
    store: Provenance, outputs: dict[str, Stamped], natural_images: dict[str, np.ndarray]
) -> None:
    """Re-marking a real output with an unused id answered `not_ours`; so did stripping its mark."""
    for name, out in outputs.items():
        remarked = wm.embed(out.pixels, 0x12345, key=store.key)
        report = store.verify(encode_image(jpeg(remarked, 80), "jpeg"))
        assert report.verdict == "tampered" and report.record == out.record, (name, report.problems)
        assert report.matched_by == "fingerprint" and any("mark was replaced" in p for p in report.problems)
        # the mark gone entirely (the unmarked picture is what a perfect removal gives back), also mirrored
        for stripped in (natural_images[name], np.ascontiguousarray(natural_images[name][:, ::-1])):
            report = store.verify(encode_image(jpeg(stripped, 75), "jpeg"))
            assert report.watermark_id is None and report.record == out.record, (name, report.problems)
            assert report.verdict == "verified" and report.matched_by == "fingerprint"
    assert store.verify(encode_image(photo("cat-nap.jpg", 800), "jpeg")).verdict == "not_ours"


def test_a_manifest_from_a_stranger_ca_is_untrusted(store: Provenance, outputs: dict[str, Stamped]) -> None:
    """Signing any photo with your own CA and copying a record gave `verified` with `trusted: false`."""
    real = outputs["meadow@896"]
    stranger, _ = create_signing_identity("not this server")
    signed = sign_image(encode_image(photo("brick-wall.jpg", 900), "png"), "png", real.record, stranger)
    report = store.verify(signed)
    assert report.c2pa.state == "valid" and not report.c2pa.trusted
    assert report.verdict == "untrusted", report.problems
    assert VERDICT_EXIT["untrusted"] == 23
    # even the real picture, re-signed by a stranger, is not `verified`
    resigned = sign_image(png(real.pixels), "png", real.record, stranger)
    assert store.verify(resigned).verdict == "untrusted"


def test_records_and_fingerprints_cannot_be_deleted(store: Provenance, outputs: dict[str, Stamped]) -> None:
    db = sqlite3.connect(store.dir / "records.sqlite")
    try:
        for sql in ("DELETE FROM records", "DELETE FROM fingerprints", "UPDATE fingerprints SET glob = x'00'"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()


def test_the_report_carries_the_tree_head_and_a_consistency_proof(
    store: Provenance, outputs: dict[str, Stamped]
) -> None:
    out = outputs["cafe@1024"]
    report = store.verify(out.data)
    assert report.verdict == "verified" and report.tree_head is not None
    head = SignedTreeHead.from_note(report.tree_head)
    head.verify(store.ledger.public_key)
    c = report.consistency
    assert c is not None and c["ok"] and c["from_size"] <= c["to_size"] == head.size
    doc = report.to_dict()
    assert doc["log"]["tree_head"] == report.tree_head and doc["match"]["by"] == "watermark"
    # a head the caller kept: consistent now
    assert store.verify(out.data, known_head=head).verdict == "verified"


def test_a_rewritten_history_is_detected(tmp_path: Path, natural_images: dict[str, np.ndarray]) -> None:
    prov = Provenance(tmp_path / "data")
    first = prov.stamp(natural_images["synthetic"], fmt="png", **STAMP)  # type: ignore[arg-type]
    seen = prov.ledger.tree_head()
    # someone with the log's key publishes a different history of the same size to this verifier
    key = prov.ledger._key
    rewritten = sign_tree_head(key, seen.origin, seen.size, bytes(32))
    report = prov.verify(first.data, known_head=rewritten)
    assert report.verdict == "tampered" and report.consistency is not None and not report.consistency["ok"]
    assert any("not consistent" in p for p in report.problems)
    # and a head from another log is refused
    other = sign_tree_head(sign_key(), seen.origin, seen.size, seen.root)
    assert prov.verify(first.data, known_head=other).verdict == "tampered"


def sign_key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def test_manifest_and_record_hold_no_raw_account_id(store: Provenance, outputs: dict[str, Stamped]) -> None:
    for out in outputs.values():
        assert b"acct_victim" not in out.data and b"a portrait in the rain" not in out.data
        assert out.record.account == store.pseudonym("acct_victim")
        got = np.asarray(Image.open(io.BytesIO(out.data)).convert("RGB"))
        assert np.array_equal(got, out.pixels)


def test_the_records_index_is_versioned_like_the_log(tmp_path: Path) -> None:
    """An index made before it was versioned (user_version 0, its tables already there) opens and is stamped
    version 1 with its records intact; one from a newer Tastemaker is refused and left as it was."""
    from tastemaker.provenance.service import INDEX_MIGRATIONS

    old = tmp_path / "old"
    (old / "provenance").mkdir(parents=True)
    with sqlite3.connect(old / "provenance" / "records.sqlite") as db:
        for statement in INDEX_MIGRATIONS[0]:
            db.execute(statement)
        db.execute("INSERT INTO records (record_id, log_index, record) VALUES (7, 0, '{}')")
    Provenance(old)
    with sqlite3.connect(old / "provenance" / "records.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(INDEX_MIGRATIONS)
        assert db.execute("SELECT record_id FROM records").fetchall() == [(7,)]

    newer = tmp_path / "newer"
    (newer / "provenance").mkdir(parents=True)
    with sqlite3.connect(newer / "provenance" / "records.sqlite") as db:
        db.execute(f"PRAGMA user_version = {len(INDEX_MIGRATIONS) + 1}")
    with pytest.raises(LedgerError, match="newer than"):
        Provenance(newer)
    with sqlite3.connect(newer / "provenance" / "records.sqlite") as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0  # untouched
