"""``rendered_on: device``: an output registered after being rendered on the person's device says so in its
record and its C2PA manifest; records without it keep their exact bytes."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ProvenanceInputError
from tastemaker.provenance.c2pa import manifest_definition
from tastemaker.provenance.record import ProvenanceRecord, pixels_sha256


def record(**kw: object) -> ProvenanceRecord:
    pixels = np.zeros((4, 4, 3), np.uint8)
    fields: dict[str, object] = dict(account="a", prompt_hmac="0" * 64, profile_hash="p", engine="look",
                                     engine_version="1", seed=1, pixels=pixels, fingerprint="fp1:AAAAAAAA",
                                     record_id=7)
    return ProvenanceRecord.create(**{**fields, **kw})  # type: ignore[arg-type]


def test_rendered_on_round_trips_and_is_signed_into_the_manifest() -> None:
    device = record(rendered_on="device")
    assert ProvenanceRecord.from_json(device.canonical_json()) == device
    assert b'"rendered_on":"device"' in device.canonical_json()
    actions = manifest_definition(device)["assertions"][0]["data"]["actions"]
    assert actions[0]["parameters"]["org.tastemaker.rendered_on"] == "device"
    assert manifest_definition(device)["assertions"][2]["data"]["rendered_on"] == "device"


def test_server_made_records_are_unchanged() -> None:
    made = record()
    assert b"rendered_on" not in made.canonical_json()
    assert ProvenanceRecord.from_json(made.canonical_json()) == made
    assert "parameters" not in manifest_definition(made)["assertions"][0]["data"]["actions"][0]
    assert made.image_sha256 == pixels_sha256(np.zeros((4, 4, 3), np.uint8))


def test_only_known_places_are_accepted() -> None:
    with pytest.raises(ProvenanceInputError, match="rendered_on"):
        record(rendered_on="cloud")
