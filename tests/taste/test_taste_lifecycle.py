"""Feedback, history, portable signed profiles, private export through the CLI, and forget."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.cli import app
from tastemaker.encoders.style import describe
from tastemaker.errors import ProfileError
from tastemaker.taste.feedback import CENTROID_STEP, STEP, apply_feedback
from tastemaker.taste.portable import export_document, import_document, profile_key
from tastemaker.taste.profile import TasteProfile

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


def _look_of(profile: TasteProfile, mode_id: str, demo_board) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A pin image that belongs to ``mode_id`` (stands in for an image generated in that mode)."""
    name = next(p.image for p in profile.pins if p.mode == mode_id)
    return demo_board.thumbs[[p.image for p in demo_board.pins].index(name)]


@pytest.mark.parametrize(("action", "direction"), [("save", 1), ("like", 1), ("hide", -1), ("skip", -1)])
def test_feedback_moves_toward_or_away(demo_profile: TasteProfile, demo_board, action: str, direction: int) -> None:  # type: ignore[no-untyped-def]
    img = describe(_look_of(demo_profile, "m2", demo_board))
    after = apply_feedback(demo_profile, image=img, action=action, mode="m2")
    w0, w1 = demo_profile.mode("m2").weight, after.mode("m2").weight
    assert np.sign(w1 - w0) == direction
    s0 = demo_profile.mode_similarities(img)["m2"]
    s1 = after.mode_similarities(img)["m2"]
    assert np.sign(s1 - s0) == direction  # the mode's look itself moves toward / away from the image
    assert after.version == demo_profile.version + 1
    # bounded: one reaction changes a mode's odds by at most exp(STEP * 1.3)
    odds = (w1 / (1 - w1)) / (w0 / (1 - w0))
    assert np.exp(-STEP * 1.3) - 1e-9 <= odds <= np.exp(STEP * 1.3) + 1e-9
    assert CENTROID_STEP < 0.2


def test_old_feedback_fades(demo_profile: TasteProfile, demo_board) -> None:  # type: ignore[no-untyped-def]
    img = describe(_look_of(demo_profile, "m2", demo_board))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    p = demo_profile
    for i in range(5):
        p = apply_feedback(p, image=img, action="save", mode="m2", now=t0 + timedelta(minutes=i))
    fresh = p.mode("m2").weight
    from tastemaker.taste.feedback import FeedbackEvent, effective

    later = effective(p, [FeedbackEvent.model_validate(e) for e in p.feedback], t0 + timedelta(days=365))
    assert fresh > demo_profile.mode("m2").weight + 0.2
    assert abs(later.mode("m2").weight - demo_profile.mode("m2").weight) < 0.01


def test_feedback_cli_and_history(tmp_path: Path, demo_dir: Path, selfie_path: Path) -> None:
    prof = tmp_path / "p.json"
    assert run("profile", str(demo_dir / "board"), "-o", str(prof))[0] == 0
    out = tmp_path / "out"
    code, text = run("generate", "-s", str(selfie_path), "-p", str(prof), "-n", "2", "--size", "256",
                     "--seed", "1", "-o", str(out))
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    first = manifest["images"][0]
    before = TasteProfile.load(prof).mode(first["mode"]).weight
    code, text = run("feedback", "-p", str(prof), "-i", str(out / first["file"]), "--action", "save",
                     "--dwell-seconds", "30")
    assert code == 0, text
    assert TasteProfile.load(prof).mode(first["mode"]).weight > before
    code, text = run("feedback", "-p", str(prof), "-i", str(out / first["file"]), "--action", "hide")
    assert code == 0
    code, text = run("profile", "history", str(prof))
    assert code == 0 and "built from board" in text and "save" in text and "hide" in text
    assert TasteProfile.load(prof).version == 3
    code, text = run("feedback", "-p", str(prof), "-i", str(out / first["file"]), "--action", "love")
    assert code == 2 and "not one of save, like, skip, hide" in text


def test_signed_export_roundtrip_and_tampering(tmp_path: Path, demo_profile: TasteProfile) -> None:
    key = profile_key(tmp_path)
    doc = export_document(demo_profile, key)
    text = json.dumps(doc)
    for pin in demo_profile.pins:
        assert pin.image not in text and pin.id not in text  # no pins, no medoids
    back, signer = import_document(text)
    assert signer == doc["signature"]["key_id"]
    assert [m.weight for m in back.modes] == [m.weight for m in demo_profile.modes]
    tampered = json.loads(text)
    tampered["profile"]["modes"][0]["weight"] = 0.99
    with pytest.raises(ProfileError, match="file was modified"):
        import_document(json.dumps(tampered))
    unsigned = export_document(demo_profile, None)
    with pytest.raises(ProfileError, match="--allow-unsigned"):
        import_document(json.dumps(unsigned))
    assert import_document(json.dumps(unsigned), allow_unsigned=True)[1] is None
    other_encoder = export_document(demo_profile.model_copy(update={"encoder": {"name": "tastemaker-style",
                                                                                 "version": "9"}}), key)
    with pytest.raises(ProfileError, match="Rebuild the profile"):
        import_document(json.dumps(other_encoder))


def test_published_schemas_match_the_code(demo_profile: TasteProfile, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import export_schemas
    finally:
        sys.path.pop(0)
    for name, text in export_schemas.render().items():
        assert (ROOT / "schemas" / name).read_text() == text, f"run scripts/export_schemas.py ({name} is stale)"
    profile_schema = json.loads((ROOT / "schemas" / "tastemaker.profile.v1.json").read_text())
    jsonschema.validate(json.loads(demo_profile.to_json()), profile_schema)
    doc = export_document(demo_profile, profile_key(tmp_path))
    export_schema = json.loads((ROOT / "schemas" / "tastemaker.taste-export.v1.json").read_text())
    registry_schema = {**export_schema, "properties": {**export_schema["properties"], "profile": profile_schema}}
    jsonschema.validate(doc, registry_schema)


def test_cli_export_import_private_and_budget(tmp_path: Path, demo_dir: Path) -> None:
    prof = tmp_path / "p.json"
    assert run("profile", "build", str(demo_dir / "board"), "-o", str(prof))[0] == 0
    code, text = run("profile", "export", str(prof), "-o", str(tmp_path / "t.json"))
    assert code == 0 and "signed by key" in text
    code, text = run("profile", "import", str(tmp_path / "t.json"), "-o", str(tmp_path / "back.json"))
    assert code == 0 and "signature valid" in text
    doc = json.loads((tmp_path / "t.json").read_text())
    doc["profile"]["modes"][0]["look"]["grain"] += 1
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    code, text = run("profile", "import", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.json"))
    assert code == 2 and "modified after it was exported" in text and not (tmp_path / "x.json").exists()
    code, text = run("profile", "export", str(prof), "--private", "--epsilon", "3", "-o", str(tmp_path / "priv.json"))
    assert code == 0, text
    priv = json.loads((tmp_path / "priv.json").read_text())["profile"]
    assert priv["privacy"]["epsilon"] == 3 and priv["pins"] == []
    assert all(not m["titles"] and not m["tags"] for m in priv["modes"])
    code, text = run("profile", "export", str(prof), "--private", "--epsilon", "3", "-o", str(tmp_path / "p2.json"))
    assert code == 5 and "privacy budget spent" in text and not (tmp_path / "p2.json").exists()


def test_forget_removes_every_trace(tmp_path: Path, demo_dir: Path, demo_profile: TasteProfile) -> None:
    import os

    data_dir = Path(os.environ["TASTEMAKER_DATA_DIR"])
    prof = tmp_path / "mine.json"
    assert run("profile", str(demo_dir / "board"), "-o", str(prof))[0] == 0
    pid = TasteProfile.load(prof).id
    img = tmp_path / "img.png"
    from tastemaker.media import encode_image

    img.write_bytes(encode_image(np.full((64, 64, 3), 120, np.uint8), "png"))
    assert run("feedback", "-p", str(prof), "-i", str(img), "--action", "like")[0] == 0
    assert run("profile", "export", str(prof), "--private", "-o", str(tmp_path / "e.json"))[0] == 0
    assert any(pid in str(p) for p in data_dir.rglob("*"))
    code, text = run("forget", "--yes")
    assert code == 0, text
    assert not prof.exists()
    names = {p.name for p in demo_dir.joinpath("board").iterdir()}
    for path in data_dir.rglob("*"):
        assert pid not in str(path)
        if path.is_file() and "provenance" not in path.parts and "c2pa" not in path.parts:
            content = path.read_bytes()
            assert pid.encode() not in content and not any(n.encode() in content for n in names), path
    leftovers = {p.relative_to(data_dir).parts[0] for p in data_dir.rglob("*")}
    assert leftovers <= {"provenance", "c2pa"}


def test_forget_removes_the_clis_own_traces(tmp_path: Path, demo_dir: Path, selfie_path: Path) -> None:
    """Identity files, outputs and contact sheets (the selfie is on them) and exports go; what the CLI did not
    write, or what changed since it wrote it, stays (issue 11, item 8)."""
    import os
    import stat

    data_dir = Path(os.environ["TASTEMAKER_DATA_DIR"])
    ident = tmp_path / "me.json"
    assert run("identity", str(selfie_path), "-o", str(ident))[0] == 0
    out = tmp_path / "out"
    code, text = run("generate", "--selfie", str(selfie_path), "--board", str(demo_dir / "board"), "-n", "1",
                     "--size", "256", "--seed", "2", "-o", str(out))
    assert code == 0, text
    made = sorted(p.name for p in out.iterdir())
    assert "contact_sheet.png" in made and "manifest.json" in made and any(n.endswith(".png") for n in made)
    # item 11: whatever holds a face is 0600 in a 0700 folder
    for p in [ident, *out.iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    prof = tmp_path / "p.json"
    assert run("profile", str(demo_dir / "board"), "-o", str(prof))[0] == 0
    export = tmp_path / "e.json"
    assert run("profile", "export", str(prof), "-o", str(export))[0] == 0
    mine = out / "notes.txt"
    mine.write_text("mine")  # not the CLI's: stays
    other = tmp_path / "other-out"
    code, _ = run("generate", "--selfie", str(selfie_path), "--board", str(demo_dir / "board"), "-n", "1",
                  "--size", "256", "--seed", "3", "-o", str(other))
    assert code == 0
    edited = other / "manifest.json"
    edited.write_text("{}")  # changed since the CLI wrote it: not ours any more, stays
    code, text = run("forget", "--yes")
    assert code == 0, text
    assert not ident.exists() and not prof.exists() and not export.exists()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in other.iterdir()) == ["manifest.json"] and "changed since" in text
    assert not (data_dir / "traces.json").exists()


def test_forget_refuses_a_server_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Server data goes through DELETE /v1/me; forget must not delete every account's blobs and ledgers."""
    from tastemaker.forget import mark_server_store

    data = tmp_path / "server-data"
    (data / "blobs" / "ab" / "cd").mkdir(parents=True)
    blob = data / "blobs" / "ab" / "cd" / ("abcd" + "0" * 60)
    blob.write_bytes(b"someone's pin")
    (data / "privacy").mkdir()
    ledger = data / "privacy" / "board-brd_x.json"
    ledger.write_text('{"releases": []}')
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data))
    code, text = run("forget", "--yes")
    assert code != 0 and "DELETE /v1/me" in text and blob.exists() and ledger.exists()
    blob.unlink()
    mark_server_store(data)  # a server that has stored nothing yet is still a server
    code, text = run("forget", "--yes")
    assert code != 0 and "server" in text and ledger.exists()


def test_import_trusts_signers_on_first_use_and_refuses_unknown_ones(
    tmp_path: Path, demo_profile: TasteProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tampered profile re-signed with another key passes the signature check: the signer must be trusted
    (first use, --trust KEY, or this installation's own key), or the import is refused (issue 11, item 12)."""
    from tastemaker.taste.portable import key_id

    alice_key, mallory_key = profile_key(tmp_path / "alice"), profile_key(tmp_path / "mallory")
    genuine = tmp_path / "genuine.json"
    genuine.write_text(json.dumps(export_document(demo_profile, alice_key)))
    forged_profile = demo_profile.model_copy(
        update={"modes": [demo_profile.modes[0].model_copy(update={"weight": 0.99}), *demo_profile.modes[1:]]}
    )
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(export_document(forged_profile, mallory_key)))
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path / "bob"))
    code, text = run("profile", "import", str(genuine), "-o", str(tmp_path / "a.json"))
    assert code == 0 and "trusted on first use" in text, text
    alice_id, mallory_id = key_id(alice_key.public_key()), key_id(mallory_key.public_key())
    code, text = run("profile", "import", str(forged), "-o", str(tmp_path / "f.json"))
    assert code == 2 and mallory_id in text and "--trust" in text and not (tmp_path / "f.json").exists()
    code, text = run("profile", "import", str(genuine), "-o", str(tmp_path / "a2.json"))
    assert code == 0 and alice_id in text  # a known signer
    code, text = run("profile", "import", str(forged), "--trust", mallory_id, "-o", str(tmp_path / "f.json"))
    assert code == 0 and (tmp_path / "f.json").exists()  # trusted on purpose
    code, text = run("profile", "import", str(forged), "--trust", "0" * 16, "-o", str(tmp_path / "g.json"))
    assert code == 0  # mallory is in the list now; a --trust for another key changes nothing
    # this installation's own key is always trusted, first use or not
    own = tmp_path / "own.json"
    own.write_text(json.dumps(export_document(demo_profile, profile_key(tmp_path / "bob"))))
    assert run("profile", "import", str(own), "-o", str(tmp_path / "o.json"))[0] == 0
