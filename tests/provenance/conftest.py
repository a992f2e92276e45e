"""Natural-looking test images for the provenance tests (demo photos at output sizes + synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastemaker.provenance import fingerprint
from tastemaker.provenance.keys import StoreKeys
from tastemaker.provenance.record import ProvenanceRecord

from .imaging import fit_long_side, load_rgb, synthetic

DEMO = Path(__file__).resolve().parents[2] / "src" / "tastemaker" / "data" / "demo"


#: fixed keys for record-level tests (a store makes its own)
TEST_KEYS = StoreKeys(bytes(range(32)))


def make_record(pixels: np.ndarray, *, prompt: str = "a portrait in the rain", **kw: object) -> ProvenanceRecord:
    """A v2 record of ``pixels`` as a store with :data:`TEST_KEYS` would write it."""
    args: dict[str, object] = dict(
        account=TEST_KEYS.pseudonym("local:ada"),
        prompt_hmac=TEST_KEYS.prompt_hash(prompt),
        profile_hash="sha256:abc",
        engine="look",
        engine_version="0.1.0",
        seed=7,
        pixels=pixels,
        fingerprint=fingerprint.compute(pixels, TEST_KEYS.fingerprint_seed).encode(),
        record_id=0x12_3456_789A,
        created_at="2026-01-31T12:00:00.000Z",
    )
    args.update(kw)
    return ProvenanceRecord.create(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def natural_images() -> dict[str, np.ndarray]:
    """Output-sized images: the selfie and two board photos at 1024 / 896 px, one synthetic."""
    return {
        "selfie@1024": fit_long_side(load_rgb(DEMO / "selfie.jpg"), 1024),
        "cafe@1024": fit_long_side(load_rgb(DEMO / "board" / "cafe-morning.jpg"), 1024),
        "meadow@896": fit_long_side(load_rgb(DEMO / "board" / "meadow.jpg"), 896),
        "synthetic": synthetic(3),
    }
