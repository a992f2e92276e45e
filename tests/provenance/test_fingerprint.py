"""The picture fingerprint: compact, keyed, round-trips, and tells a picture's copies from other pictures."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ProvenanceInputError
from tastemaker.provenance import fingerprint as fpr

from .imaging import SHARE_EDITS, crop_area, jpeg, resize

SEED = 1234


@pytest.fixture(scope="module")
def prints(natural_images: dict[str, np.ndarray]) -> dict[str, fpr.Fingerprint]:
    return {name: fpr.compute(img, SEED) for name, img in natural_images.items()}


def test_round_trip_and_size(prints: dict[str, fpr.Fingerprint]) -> None:
    for fp in prints.values():
        text = fp.encode()
        back = fpr.Fingerprint.decode(text)
        assert (back.height, back.width, back.cell) == (fp.height, fp.width, fp.cell)
        assert np.array_equal(back.bits, fp.bits) and np.array_equal(back.informative, fp.informative)
        assert np.array_equal(back.glob, fp.glob)
        assert len(text) < 1200  # a record stays small (1024 px: 16x16 cells)


@pytest.mark.parametrize("bad", ["", "fp1:", "fp9:AAAA", "fp1:!!!!", "fp1:" + "A" * 40])
def test_damaged_fingerprints_are_refused(bad: str) -> None:
    with pytest.raises(ProvenanceInputError):
        fpr.Fingerprint.decode(bad)


def test_keyed_and_colour_blind(natural_images: dict[str, np.ndarray], prints: dict[str, fpr.Fingerprint]) -> None:
    img = natural_images["cafe@1024"]
    other = fpr.compute(img, SEED + 1)
    assert not np.array_equal(other.bits, prints["cafe@1024"].bits)  # another store's key: other bits
    grey = np.dstack([fpr.luma(img).round().clip(0, 255).astype(np.uint8)] * 3)
    agree = fpr.compute(grey, SEED).bits == prints["cafe@1024"].bits
    assert agree.mean() > 0.97  # luma only: a grey copy keeps (almost) every bit


def test_copies_match_and_other_pictures_do_not(
    natural_images: dict[str, np.ndarray], prints: dict[str, fpr.Fingerprint]
) -> None:
    rng = np.random.default_rng(5)
    for name, img in natural_images.items():
        fp = prints[name]
        full = [jpeg(img, 50), *(f(img, None) for k, f in SHARE_EDITS.items() if k != "rotate5")]
        for copy in full:
            m = fpr.match(fp, fpr.luma(copy), SEED)
            assert m.same, (name, m)
        # a crop, lined up the way the watermark lines it up (its offset modulo the 128 px tile)
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
        m = fpr.match(fp, fpr.luma(img[y:, x:]), SEED, offset=(y % 128, x % 128))
        assert m.same and m.offset == ((y + (-y) % fp.cell) // fp.cell, (x + (-x) % fp.cell) // fp.cell), (name, m)
        small = resize(crop_area(img, 0.5, rng), 0.5)
        assert not fpr.match(fp, fpr.luma(small), SEED).same  # wrong scale, no geometry: no false match
        for other, oimg in natural_images.items():
            if other != name:
                m = fpr.match(fp, fpr.luma(oimg), SEED, offset=(0.0, 0.0))
                assert m.different and m.z < fpr.Z_MATCH, (name, other, m)
