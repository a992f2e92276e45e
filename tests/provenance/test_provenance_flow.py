"""Provenance on every output, end to end: generate -> files -> verify, and fail-closed behaviour."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tastemaker import errors
from tastemaker.cli import app
from tastemaker.engines.base import GenerationRequest, Subject
from tastemaker.pipeline import GenerationResult, default_provenance, generate, prepare_subject, save_result
from tastemaker.provenance.service import Provenance
from tastemaker.taste.profile import TasteProfile

runner = CliRunner()


@pytest.fixture(scope="module")
def subject(selfie_path: Path) -> Subject:
    return prepare_subject([selfie_path])


@pytest.fixture
def store(tmp_path: Path) -> Provenance:
    return Provenance(tmp_path / "data")


@pytest.fixture
def result(store: Provenance, subject: Subject, demo_profile: TasteProfile) -> GenerationResult:
    return generate(GenerationRequest(n=2, size=384, seed=2, format="jpeg", prompt="golden film"),
                    subject=subject, profile=demo_profile, provenance=store, account="acct-42")


def test_every_output_is_marked_signed_and_logged(result: GenerationResult, store: Provenance) -> None:
    for img in result.images:
        report = store.verify(img.data)
        assert report.verdict == "verified", report.problems
        assert report.c2pa.state == "valid" and report.c2pa.trusted
        assert report.record is not None and report.record.id_hex == img.record_id
        assert report.record.account == store.pseudonym("acct-42") != "acct-42"
        assert report.record.seed == result.request.seed
        assert report.proof_ok and report.tree_size == store.ledger.size
        assert "golden film" not in json.dumps(report.c2pa.manifest)  # no prompt text without opt-in


def test_stripped_metadata_still_resolves_via_watermark(result: GenerationResult, store: Provenance) -> None:
    img = result.images[0]
    pixels = np.asarray(Image.open(io.BytesIO(img.data)).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((300, 375)).save(buf, "JPEG", quality=75)  # no metadata, recompressed, resized
    report = store.verify(buf.getvalue())
    assert report.c2pa.state == "absent"
    assert report.verdict == "verified" and report.record is not None
    assert report.record.id_hex == img.record_id


def test_one_changed_byte_is_tampering(result: GenerationResult, store: Provenance) -> None:
    data = bytearray(result.images[0].data)
    data[len(data) // 2] ^= 0xFF
    assert store.verify(bytes(data)).verdict == "tampered"


def test_forged_log_record_fails_the_proof(result: GenerationResult, store: Provenance) -> None:
    img = result.images[0]
    db = sqlite3.connect(store.dir / "records.sqlite")
    db.execute("DROP TRIGGER records_no_update")
    rec = json.loads(db.execute("SELECT record FROM records WHERE log_index = 0").fetchone()[0])
    rec["account"] = "someone-else"
    db.execute("UPDATE records SET record = ? WHERE log_index = 0", (json.dumps(rec, sort_keys=True),))
    db.commit()
    db.close()
    reports = [store.verify(i.data) for i in result.images]
    forged = [r for r in reports if r.log_index == 0][0]
    assert forged.verdict == "tampered" and not forged.proof_ok
    assert any("inclusion proof failed" in p or "differs" in p for p in forged.problems)
    assert img.record_id  # the other image still verifies
    assert [r.verdict for r in reports if r.log_index != 0] == ["verified"]


def test_someone_elses_image_is_not_ours(store: Provenance, selfie_path: Path) -> None:
    assert store.verify(selfie_path.read_bytes()).verdict == "not_ours"


def test_pipeline_refuses_to_return_unmarked_images(
    monkeypatch: pytest.MonkeyPatch, store: Provenance, subject: Subject, demo_profile: TasteProfile
) -> None:
    from tastemaker.provenance import watermark

    def broken(*a: object, **k: object) -> None:
        raise errors.WatermarkError("embedding failed its self-check")

    monkeypatch.setattr(watermark, "embed", broken)
    with pytest.raises(errors.WatermarkError):
        generate(GenerationRequest(n=1, size=256, seed=1), subject=subject, profile=demo_profile, provenance=store)


def test_save_refuses_images_without_provenance(result: GenerationResult, tmp_path: Path) -> None:
    result.images[0].data = b""
    with pytest.raises(errors.ProvenanceError, match="no provenance"):
        save_result(result, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_verify_cli_exit_codes(tmp_path: Path, selfie_path: Path, subject: Subject, demo_profile: TasteProfile) -> None:
    res = generate(GenerationRequest(n=1, size=256, seed=4, format="png"), subject=subject, profile=demo_profile,
                   provenance=default_provenance())
    out = tmp_path / "img.png"
    out.write_bytes(res.images[0].data)
    r = runner.invoke(app, ["verify", str(out)])
    assert r.exit_code == 0 and "verified" in r.output, r.output
    r = runner.invoke(app, ["verify", str(selfie_path), "--json"])
    assert r.exit_code == 20 and json.loads(r.output)["verdict"] == "not_ours"
    bad = bytearray(out.read_bytes())
    bad[len(bad) // 2] ^= 0x55
    (tmp_path / "bad.png").write_bytes(bytes(bad))
    r = runner.invoke(app, ["verify", str(tmp_path / "bad.png")])
    assert r.exit_code == 21, r.output


def test_outputs_the_guard_rejects_leave_no_log_entry(
    store: Provenance, subject: Subject, demo_profile: TasteProfile
) -> None:
    """Provenance is prepared while the guard runs, but only committed for images that pass it."""
    before = store.ledger.size
    with pytest.raises(errors.IdentityGuardError):
        generate(GenerationRequest(n=2, size=256, seed=1), subject=subject, profile=demo_profile, provenance=store,
                 identity_threshold=-1.0)
    assert store.ledger.size == before and not store._reserved
    ok = generate(GenerationRequest(n=2, size=256, seed=1), subject=subject, profile=demo_profile, provenance=store)
    assert store.ledger.size == before + 2 and [i.log_index for i in ok.images] == [before, before + 1]


def test_verify_cli_forged_exit_code_and_checkpoint(
    tmp_path: Path, selfie_path: Path, subject: Subject, demo_profile: TasteProfile
) -> None:
    """Issue 11 #1 and #12: a copied mark exits 22; ``--checkpoint`` keeps a tree head and checks the log
    still extends it."""
    from tastemaker.media import encode_image
    from tastemaker.provenance import watermark as wm
    from tastemaker.provenance.ledger import sign_tree_head

    prov = default_provenance()
    res = generate(GenerationRequest(n=1, size=320, seed=5, format="png"), subject=subject, profile=demo_profile,
                   provenance=prov)
    out = tmp_path / "img.png"
    out.write_bytes(res.images[0].data)
    rid = int(res.images[0].record_id, 16)
    photo = np.asarray(Image.open(selfie_path).convert("RGB"))[::-1].copy()  # not an output: upside down
    (tmp_path / "forged.png").write_bytes(encode_image(wm.embed(photo, rid, key=prov.key), "png"))
    r = runner.invoke(app, ["verify", str(tmp_path / "forged.png")])
    assert r.exit_code == 22 and "forged" in r.output, r.output

    cp = tmp_path / "head.txt"
    r = runner.invoke(app, ["verify", str(out), "--checkpoint", str(cp)])
    assert r.exit_code == 0 and cp.exists(), r.output
    assert runner.invoke(app, ["verify", str(out), "--checkpoint", str(cp)]).exit_code == 0
    head = prov.ledger.tree_head()
    cp.write_text(sign_tree_head(prov.ledger._key, head.origin, head.size, bytes(32)).to_note())  # another history
    r = runner.invoke(app, ["verify", str(out), "--checkpoint", str(cp), "--json"])
    assert r.exit_code == 21 and not json.loads(r.output)["log"]["consistency"]["ok"], r.output
    cp.write_text("not a head")
    assert runner.invoke(app, ["verify", str(out), "--checkpoint", str(cp)]).exit_code == 2
