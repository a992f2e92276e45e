"""Provenance record: validated, canonical bytes, round trip, leaf hash."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tastemaker.errors import ProvenanceInputError
from tastemaker.provenance.keys import StoreKeys
from tastemaker.provenance.ledger import leaf_hash
from tastemaker.provenance.record import SCHEMA, SCHEMA_V1, ProvenanceRecord, pixels_sha256, sha256_hex

from .conftest import TEST_KEYS, make_record

PIXELS = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)


def make(**kw: object) -> ProvenanceRecord:
    return make_record(PIXELS, **kw)


def test_canonical_json_is_sorted_compact_and_stable() -> None:
    rec = make()
    raw = rec.canonical_json()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert b"rain" not in raw  # only the prompt's keyed hash is recorded
    assert ProvenanceRecord.from_json(raw) == rec
    assert leaf_hash(raw) == leaf_hash(make().canonical_json())
    assert rec.id_hex == "123456789a"
    assert json.loads(raw)["schema"] == SCHEMA == "tastemaker.record/v2"


def test_prompt_hash_is_keyed_and_account_is_a_pseudonym() -> None:
    """Issue 11 #9: an unsalted SHA-256 of a short prompt is a dictionary lookup away; the raw account id
    used to be in every record and manifest."""
    rec = json.loads(make().canonical_json())
    assert "prompt_sha256" not in rec and sha256_hex("a portrait in the rain") not in json.dumps(rec)
    assert rec["prompt_hmac"] == TEST_KEYS.prompt_hash("a portrait in the rain")
    assert rec["prompt_hmac"] != StoreKeys(bytes(32)).prompt_hash("a portrait in the rain")  # another store
    assert rec["account"].startswith("acct~") and "ada" not in rec["account"]
    assert rec["account"] == TEST_KEYS.pseudonym("local:ada") != TEST_KEYS.pseudonym("local:bob")
    assert "StoreKeys(id=" in repr(TEST_KEYS) and bytes(range(32)).hex() not in repr(TEST_KEYS)


def test_v1_records_still_parse_byte_for_byte() -> None:
    """Records already in a log keep their exact bytes (and so their inclusion proofs)."""
    v1 = {
        "account": "acct_old", "created_at": "2025-01-31T12:00:00.000Z", "engine": "look", "engine_version": "0.1",
        "image_sha256": "a" * 64, "profile_hash": "p", "prompt_sha256": "b" * 64, "record_id": 5,
        "schema": "tastemaker.record/v1", "seed": 1,
    }
    raw = json.dumps(v1, sort_keys=True, separators=(",", ":")).encode()
    rec = ProvenanceRecord.from_json(raw)
    assert rec.canonical_json() == raw and rec.fingerprint is None and rec.schema == SCHEMA_V1
    with pytest.raises(ProvenanceInputError, match="unknown"):
        ProvenanceRecord.from_json(json.dumps({**v1, "fingerprint": "fp1:AAAA"}))


def test_v2_needs_a_fingerprint() -> None:
    with pytest.raises(ProvenanceInputError, match="fingerprint"):
        make(fingerprint="not-a-fingerprint")


def test_pixel_hash_depends_on_shape_and_content() -> None:
    assert pixels_sha256(PIXELS) != pixels_sha256(PIXELS.reshape(4, 12, 1)[..., 0])
    other = PIXELS.copy()
    other[0, 0, 0] ^= 1
    assert pixels_sha256(PIXELS) != pixels_sha256(other)


@pytest.mark.parametrize(
    "bad",
    [
        dict(record_id=1 << 40),
        dict(seed=-1),
        dict(account=""),
        dict(created_at="yesterday"),
        dict(engine="x" * 300),
    ],
)
def test_invalid_fields_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ProvenanceInputError):
        make(**bad)


def test_from_json_refuses_unknown_or_missing_fields() -> None:
    obj = make().to_dict()
    with pytest.raises(ProvenanceInputError, match="unknown"):
        ProvenanceRecord.from_json(json.dumps({**obj, "selfie": "..."}))
    del obj["seed"]
    with pytest.raises(ProvenanceInputError, match="missing"):
        ProvenanceRecord.from_json(json.dumps(obj))
    with pytest.raises(ProvenanceInputError, match="not valid JSON"):
        ProvenanceRecord.from_json(b"{")


@given(
    seed=st.integers(0, 2**53 - 1), rid=st.integers(0, 2**40 - 1), account=st.text(min_size=1, max_size=40)
)
def test_round_trip(seed: int, rid: int, account: str) -> None:
    rec = make(seed=seed, record_id=rid, account=account)
    assert ProvenanceRecord.from_json(rec.canonical_json()) == rec
