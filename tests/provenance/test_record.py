"""Provenance record: validated, canonical bytes, round trip, leaf hash."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tastemaker.errors import ProvenanceInputError
from tastemaker.provenance.ledger import leaf_hash
from tastemaker.provenance.record import ProvenanceRecord, pixels_sha256, sha256_hex

PIXELS = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)


def make(**kw: object) -> ProvenanceRecord:
    args: dict[str, object] = dict(
        account="local:ada",
        prompt="a portrait in the rain",
        profile_hash="sha256:abc",
        engine="look",
        engine_version="0.1.0",
        seed=7,
        pixels=PIXELS,
        record_id=0x12_3456_789A,
        created_at="2026-01-31T12:00:00.000Z",
    )
    args.update(kw)
    return ProvenanceRecord.create(**args)  # type: ignore[arg-type]


def test_canonical_json_is_sorted_compact_and_stable() -> None:
    rec = make()
    raw = rec.canonical_json()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert b"rain" not in raw  # only the prompt's hash is recorded
    assert json.loads(raw)["prompt_sha256"] == sha256_hex("a portrait in the rain")
    assert ProvenanceRecord.from_json(raw) == rec
    assert leaf_hash(raw) == leaf_hash(make().canonical_json())
    assert rec.id_hex == "123456789a"


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
