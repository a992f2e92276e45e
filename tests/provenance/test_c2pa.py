"""C2PA: PNG, JPEG and WebP are signed and read back; one changed byte reads as tampered."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tastemaker.errors import ProvenanceInputError
from tastemaker.provenance import c2pa as cc
from tastemaker.provenance.record import ProvenanceRecord
from tastemaker.provenance.watermark import ALGORITHM

from .conftest import make_record
from .imaging import synthetic

FORMATS = ["png", "jpeg", "webp"]


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> cc.SigningIdentity:
    return cc.ensure_signing_identity(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return synthetic(2, 96, 128)


@pytest.fixture(scope="module")
def record(pixels: np.ndarray) -> ProvenanceRecord:
    return make_record(pixels, prompt="secret prompt", profile_hash="profile-1", seed=5, record_id=0xABCDE12345)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt])
    return buf.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_sign_and_read(
    fmt: str, identity: cc.SigningIdentity, pixels: np.ndarray, record: ProvenanceRecord
) -> None:
    signed = cc.sign_image(encode(pixels, fmt), fmt, record, identity)
    report = cc.read_manifest(signed, fmt, trust_anchor_pem=identity.anchor_pem)
    assert (report.state, report.trusted, report.validation_state) == ("valid", True, "Trusted")
    assert report.record == record.to_dict()
    assert report.soft_binding_id == record.record_id
    labels = {a["label"]: a["data"] for a in report.manifest["assertions"]}
    actions = next(v for k, v in labels.items() if k.startswith("c2pa.actions"))["actions"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"] == cc.TRAINED_ALGORITHMIC_MEDIA
    assert labels["c2pa.soft-binding"]["alg"] == ALGORITHM
    assert report.manifest["signature_info"]["alg"] == "Es256"
    assert b"secret prompt" not in signed
    # still decodes as an image
    assert np.asarray(Image.open(io.BytesIO(signed)).convert("RGB")).shape == pixels.shape
    # without our CA as anchor it is intact but not trusted
    untrusted = cc.read_manifest(signed, fmt)
    assert (untrusted.state, untrusted.trusted) == ("valid", False)


def _image_data_offset(data: bytes, fmt: str) -> int:
    """A byte inside the compressed pixels, away from the manifest."""
    marker = {"png": b"IDAT", "jpeg": b"\xff\xda", "webp": b"VP8"}[fmt]
    return data.rindex(marker) + 24


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_changed_pixel_byte_is_tampered(
    fmt: str, identity: cc.SigningIdentity, pixels: np.ndarray, record: ProvenanceRecord
) -> None:
    signed = bytearray(cc.sign_image(encode(pixels, fmt), fmt, record, identity))
    signed[_image_data_offset(bytes(signed), fmt)] ^= 0x01
    report = cc.read_manifest(bytes(signed), fmt, trust_anchor_pem=identity.anchor_pem)
    assert report.state == "tampered"
    assert any("mismatch" in f["code"] for f in report.failures)


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_changed_manifest_byte_is_tampered(
    fmt: str, identity: cc.SigningIdentity, pixels: np.ndarray, record: ProvenanceRecord
) -> None:
    signed = bytearray(cc.sign_image(encode(pixels, fmt), fmt, record, identity))
    at = bytes(signed).index(record.account.encode())
    signed[at + 5] ^= 0x01  # the account (pseudonym) in the Tastemaker assertion
    assert cc.read_manifest(bytes(signed), fmt, trust_anchor_pem=identity.anchor_pem).state == "tampered"


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsigned_image_is_absent(fmt: str, pixels: np.ndarray) -> None:
    assert cc.read_manifest(encode(pixels, fmt), fmt).state == "absent"


def test_prompt_only_when_opted_in(
    identity: cc.SigningIdentity, pixels: np.ndarray, record: ProvenanceRecord
) -> None:
    signed = cc.sign_image(encode(pixels, "png"), "png", record, identity, prompt="secret prompt")
    assert cc.read_manifest(signed, "png").record["prompt"] == "secret prompt"


def test_identity_created_once_with_private_keys(tmp_path: Path) -> None:
    first = cc.ensure_signing_identity(tmp_path)
    assert cc.ensure_signing_identity(tmp_path) == first
    for name in ("signer-key.pem", "ca-key.pem"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert first.chain_pem.count(b"BEGIN CERTIFICATE") == 2


def test_user_provided_pems(tmp_path: Path, pixels: np.ndarray, record: ProvenanceRecord) -> None:
    made, _ = cc.create_signing_identity("someone else's signer")
    (tmp_path / "chain.pem").write_bytes(made.chain_pem)
    (tmp_path / "key.pem").write_bytes(made.key_pem)
    (tmp_path / "ca.pem").write_bytes(made.anchor_pem or b"")
    ident = cc.ensure_signing_identity(
        tmp_path / "unused",
        chain_pem=tmp_path / "chain.pem",
        key_pem=tmp_path / "key.pem",
        anchor_pem=tmp_path / "ca.pem",
    )
    signed = cc.sign_image(encode(pixels, "jpeg"), "jpeg", record, ident)
    assert cc.read_manifest(signed, "jpeg", trust_anchor_pem=ident.anchor_pem).trusted
    with pytest.raises(ProvenanceInputError):
        cc.ensure_signing_identity(tmp_path, chain_pem=tmp_path / "chain.pem")


def test_a_manifest_claiming_our_record_is_recognised_and_bad_soft_bindings_are_no_id(
    identity: cc.SigningIdentity, pixels: np.ndarray, record: ProvenanceRecord
) -> None:
    report = cc.read_manifest(cc.sign_image(encode(pixels, "png"), "png", record, identity), "png")
    assert report.claims_ours and report.soft_binding_id == record.record_id
    for value in ("***", "", base64.b64encode(b"x" * 9).decode()):
        bad = cc.ManifestReport("valid", manifest={"assertions": [
            {"label": "c2pa.soft-binding", "data": {"alg": ALGORITHM, "blocks": [{"value": value}]}}]})
        assert bad.claims_ours and bad.soft_binding_id is None  # never a crash on a stranger's manifest
    assert not cc.ManifestReport("valid", manifest={"assertions": [{"label": "c2pa.actions", "data": {}}]}).claims_ours


def test_own_chain_without_an_anchor_trusts_its_last_certificate(
    tmp_path: Path, pixels: np.ndarray, record: ProvenanceRecord
) -> None:
    made, _ = cc.create_signing_identity("a deployment's own signer")
    (tmp_path / "chain.pem").write_bytes(made.chain_pem)
    (tmp_path / "key.pem").write_bytes(made.key_pem)
    ident = cc.ensure_signing_identity(tmp_path, chain_pem=tmp_path / "chain.pem", key_pem=tmp_path / "key.pem")
    assert ident.anchor_pem == made.anchor_pem
    signed = cc.sign_image(encode(pixels, "png"), "png", record, ident)
    assert cc.read_manifest(signed, "png", trust_anchor_pem=ident.anchor_pem).trusted


def test_unsupported_format(identity: cc.SigningIdentity, record: ProvenanceRecord) -> None:
    with pytest.raises(ProvenanceInputError, match="png, jpeg, webp, mp4 and gif"):
        cc.sign_image(b"BM", "bmp", record, identity)
