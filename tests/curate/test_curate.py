"""Curation: consent rules (strict YAML), C2PA training-and-mining opt-outs, faces, quality, near-duplicates
(most engaged kept), byte-identical WebDataset shards, the Parquet table and datasheet, and the refusals."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tastemaker.cli.app import app
from tastemaker.curate import CurateSettings, curate, parse_rules
from tastemaker.curate.analyse import training_uses
from tastemaker.curate.rules import ConsentRules
from tastemaker.errors import ConsentRulesError, EmptyDatasetError, OutputError
from tastemaker.media import encode_image

from ..conftest import DEMO

ALLOW_ALL = "rules:\n  - match: {}\n    allow: true\n    basis: test images\n    licence: CC0-1.0\n"


def scene(seed: int, side: int = 320) -> np.ndarray:
    """A textured picture unlike the others (distinct perceptual hashes)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 6, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)).astype(np.float32)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def c2pa_not_allowed(data: bytes) -> bytes:
    import c2pa

    from tastemaker.provenance.c2pa import create_signing_identity

    ident, _ = create_signing_identity()
    manifest = {"claim_generator_info": [{"name": "test", "version": "1"}], "title": "t", "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType":
                                                        "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}},
        {"label": "cawg.training-mining", "data": {"entries": {"cawg.ai_training": {"use": "notAllowed"}}}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, ident.chain_pem, ident.key_pem,
                                                       None))
    out = io.BytesIO()
    c2pa.Builder(manifest).sign(signer, "image/jpeg", io.BytesIO(data), out)
    return out.getvalue()


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    art, copies, private, people = root / "art", root / "copies", root / "private", root / "people"
    for d in (art, copies, private, people):
        d.mkdir(parents=True)
    for i in range(4):
        (art / f"a{i}.png").write_bytes(encode_image(scene(i), "png"))
    (art / "pins.csv").write_text("image,saves,title,tags\n" + "".join(
        f"a{i}.png,{10 + i},Picture {i},art;test\n" for i in range(4)))
    (copies / "a0-copy.jpg").write_bytes(encode_image(scene(0), "jpeg", quality=75))  # less engaged copy
    (copies / "a1-small.png").write_bytes(encode_image(np.asarray(Image.fromarray(scene(1)).resize((160, 160))),
                                                       "png"))
    (art / "blank.png").write_bytes(encode_image(np.full((320, 320, 3), 128, np.uint8), "png"))
    (art / "tiny.png").write_bytes(encode_image(scene(9, 64), "png"))
    (art / "optout.jpg").write_bytes(c2pa_not_allowed(encode_image(scene(7), "jpeg")))
    (art / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (private / "p0.png").write_bytes(encode_image(scene(20), "png"))
    (people / "selfie.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    return root


RULES = """version: 1
default: exclude
rules:
  - match: {board: private}
    allow: false
    reason: the owner said no
  - match: {board: people}
    allow: true
    basis: model release
  - match: {board: "[ac]*"}
    allow: true
    basis: made for the test
    licence: CC0-1.0
"""


def test_curate_decides_every_image_and_writes_identical_shards(tmp_path: Path, planted: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    rules = parse_rules(RULES, "rules.yaml")
    cfg = CurateSettings(min_side=128, shard_size=2)
    res = curate([planted], tmp_path / "out", rules=rules, settings=cfg)
    by_name = {r.item.path.name: r for r in res.rows}
    assert by_name["p0.png"].excluded_by == "consent" and "the owner said no" in by_name["p0.png"].decisions[
        "consent"].reason
    optout = by_name["optout.jpg"]
    assert optout.excluded_by == "c2pa" and "notAllowed" in optout.decisions["c2pa"].reason
    assert by_name["selfie.jpg"].excluded_by == "faces"  # allowed board, but no consent of the person recorded
    assert by_name["blank.png"].excluded_by == "quality" and "near blank" in by_name["blank.png"].decisions[
        "quality"].reason
    assert by_name["tiny.png"].excluded_by == "quality" and "too small" in by_name["tiny.png"].decisions[
        "quality"].reason
    assert by_name["broken.jpg"].excluded_by == "read"
    # near-duplicates: the pin with engagement is kept, its re-encoded and resized copies go
    assert by_name["a0.png"].kept and by_name["a1.png"].kept
    assert by_name["a0-copy.jpg"].excluded_by == "duplicate" and by_name["a0-copy.jpg"].duplicate_of == by_name[
        "a0.png"].id
    assert by_name["a1-small.png"].excluded_by == "duplicate"
    assert {r.item.path.name for r in res.kept} == {"a0.png", "a1.png", "a2.png", "a3.png"}

    out = tmp_path / "out"
    shards = sorted((out / "shards").glob("*.tar"))
    assert len(shards) == 2
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        assert [n.rsplit(".", 1)[1] for n in names] == ["png", "txt", "json"] * 2
        meta = json.loads(tar.extractfile(names[2]).read())  # type: ignore[union-attr]
        assert meta["consent_basis"] == "made for the test" and meta["licence"] == "CC0-1.0"
        assert hashlib.sha256(tar.extractfile(names[0]).read()).hexdigest() == meta["sha256"]  # type: ignore
    table = pq.read_table(out / "metadata.parquet").to_pylist()
    assert len(table) == len(res.rows) == 12
    row = next(t for t in table if t["path"].endswith("a0-copy.jpg"))
    assert row["duplicate_decision"] == "exclude" and row["duplicate_cluster"] and not row["kept"]
    assert all(t[f"{f}_decision"] in ("pass", "exclude", "skip") for t in table for f in ("read", "consent", "c2pa"))
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["kept"] == 4 and sheet["excluded_by"]["duplicate"] == 2
    assert "## Consent and licences" in (out / "datasheet.md").read_text()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["settings"]["shard_size"] == 2 and settings["rules"]["sha256"]

    again = curate([planted], tmp_path / "again", rules=rules, settings=cfg)
    assert len(again.kept) == 4
    for a, b in zip(shards, sorted((tmp_path / "again" / "shards").glob("*.tar")), strict=True):
        assert a.read_bytes() == b.read_bytes()
    # writing over an earlier dataset replaces it; over another folder is refused
    curate([planted], out, rules=rules, settings=cfg)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError):
        curate([planted], tmp_path / "other", rules=rules, settings=cfg)


def test_faces_pass_where_the_rule_records_consent(tmp_path: Path, planted: Path) -> None:
    rules = parse_rules(RULES.replace("    basis: model release\n", "    basis: model release\n"
                                                                     "    faces_consented: true\n"))
    res = curate([planted / "people"], tmp_path / "out", rules=rules, settings=CurateSettings(min_side=128))
    assert [r.item.path.name for r in res.kept] == ["selfie.jpg"]
    assert "consented" in res.kept[0].decisions["faces"].reason


def test_nothing_kept_is_an_error_and_writes_nothing(tmp_path: Path, planted: Path) -> None:
    with pytest.raises(EmptyDatasetError, match="every one of the 12 images was excluded") as err:
        curate([planted], tmp_path / "out", rules=ConsentRules(), settings=CurateSettings(min_side=128))
    assert "11 by consent, 1 by read" in err.value.message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "problem"), [
    ("rules:\n  - match: {board: a}\n    alow: true\n", "line 3: unknown key 'alow' in rule 1"),
    ("rules:\n  - match: {bord: a}\n    allow: true\n", "line 2: unknown key 'bord' in rule 1's match"),
    ("version: 1\nrulez: []\n", "line 2: unknown key 'rulez'"),
    ("rules:\n  - allow: yes please\n", "line 2: rule 1's allow must be true or false"),
    ("rules:\n  - match: {board: a}\n", "line 2: rule 1 has no 'allow"),
    ("default: maybe\nrules: []\n", "line 1: default must be exclude or include"),
    ("rules: [\n", "not valid YAML"),
])
def test_rules_errors_name_the_line(text: str, problem: str) -> None:
    with pytest.raises(ConsentRulesError) as err:
        parse_rules(text, "consent.yaml")
    assert err.value.message.startswith("consent.yaml") and problem in err.value.message


def test_training_uses_takes_the_strictest_word() -> None:
    manifest = {"assertions": [
        {"label": "c2pa.training-mining", "data": {"entries": {"c2pa.ai_training": {"use": "allowed"}}}},
        {"label": "cawg.training-mining", "data": {"entries": {"cawg.ai_training": {"use": "notAllowed"},
                                                               "cawg.ai_inference": {"use": "allowed"}}}}]}
    assert training_uses(manifest) == {"ai_training": "notAllowed", "ai_inference": "allowed"}


def test_cli_curate(tmp_path: Path, planted: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALLOW_ALL)
    runner = CliRunner()
    r = runner.invoke(app, ["curate", str(planted / "art"), "-o", str(tmp_path / "ds"), "--consent", str(rules),
                            "--min-side", "128", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "wrote 4 of 8 images" in r.output and (tmp_path / "ds" / "metadata.parquet").is_file()
    r = runner.invoke(app, ["curate", str(planted / "art"), "-o", str(tmp_path / "ds2"), "--workers", "1"])
    assert r.exit_code == 2 and "EmptyDatasetError" in r.output and not (tmp_path / "ds2").exists()
    rules.write_text("rules:\n  - match: {}\n    allow: true\n    faces: true\n")
    r = runner.invoke(app, ["curate", str(planted), "-o", str(tmp_path / "ds3"), "--consent", str(rules)])
    assert r.exit_code == 2 and "rules.yaml, line 4: unknown key 'faces'" in r.output


@pytest.mark.slow
def test_ray_runner_gives_the_same_shards(tmp_path: Path, planted: Path, ray_cluster: str) -> None:
    from functools import partial

    from tastemaker.curate.ray_runner import run_ray

    rules = parse_rules(ALLOW_ALL)
    cfg = CurateSettings(min_side=128)
    local = curate([planted / "art"], tmp_path / "local", rules=rules, settings=cfg)
    remote = curate([planted / "art"], tmp_path / "ray", rules=rules, settings=cfg,
                    measure=partial(run_ray, address=ray_cluster), runner="ray")
    assert [r.id for r in local.kept] == [r.id for r in remote.kept]
    for a, b in zip(sorted((tmp_path / "local" / "shards").glob("*.tar")),
                    sorted((tmp_path / "ray" / "shards").glob("*.tar")), strict=True):
        assert a.read_bytes() == b.read_bytes()
