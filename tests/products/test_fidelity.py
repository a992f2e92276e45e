"""The product fidelity guard: CIEDE2000 right, a colour shift caught and held, a render it refuses never returned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastemaker.boards import Board
from tastemaker.engines.base import GenerationRequest
from tastemaker.pipeline import provenance_for
from tastemaker.products import ProductFidelityError, ProductPipeline, ciede2000, cut_out
from tastemaker.products.fidelity import FidelityGuard, dominant_colours, to_lab
from tastemaker.products.render import Placed, ProductRenderer
from tastemaker.products.samples import SampleShot
from tastemaker.taste.profile import TasteProfile

from .conftest import NoFaces


def test_ciede2000_reference_pairs() -> None:
    """Pairs from Sharma, Wu & Dalal's published test data."""
    pairs = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
             ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
             ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644)]
    for a, b, want in pairs:
        assert float(ciede2000(np.array(a), np.array(b))) == pytest.approx(want, abs=1e-3)


def test_guard_measures_a_colour_shift_and_passes_the_same(plain_shot: SampleShot) -> None:
    cut = cut_out(plain_shot.image, face_detector=NoFaces())
    centres = dominant_colours(to_lab(cut.rgb), cut.alpha)
    guard = FidelityGuard()
    same = guard.measure(cut.rgb, cut.rgb, cut.alpha, centres)
    assert same.passed and same.delta_e < 0.5 and same.shape_ssim > 0.99
    shifted = np.clip(cut.rgb.astype(np.int16) + np.array([18, -6, -14]), 0, 255).astype(np.uint8)
    bad = guard.measure(shifted, cut.rgb, cut.alpha, centres)
    assert not bad.passed and bad.delta_e > 3
    assert FidelityGuard(restyle=True).measure(shifted, cut.rgb, cut.alpha, centres).passed  # restyle: colour waived
    blurred = np.asarray(__import__("cv2").GaussianBlur(cut.rgb, (0, 0), 3.0))
    assert not guard.measure(blurred, cut.rgb, cut.alpha, centres).passed  # the print's edges are gone


class _ShiftingRenderer(ProductRenderer):
    """Styles the product's colour hard, less as the hold rises (off at full hold): what the guard must catch."""

    def __init__(self, always: bool = False) -> None:
        super().__init__()
        self.always = always

    def render(self, *args: object, **kw: object) -> Placed:  # type: ignore[override]
        placed = super().render(*args, **kw)  # type: ignore[arg-type]
        hold = float(args[2])  # type: ignore[arg-type]
        amount = 1.0 if self.always else 1.0 - hold
        shift = (np.array([40, -10, -30]) * amount).astype(np.int16)
        a = placed.alpha[..., None]
        px = placed.pixels.astype(np.float32)
        px = px + a * shift
        placed.pixels = np.clip(px + 0.5, 0, 255).astype(np.uint8)
        return placed


def _pipeline(tmp_path: Path, renderer: ProductRenderer) -> ProductPipeline:
    return ProductPipeline(provenance_for(tmp_path / "prov"), renderer=renderer)


def test_a_colour_shift_is_held_until_the_product_is_true(tmp_path: Path, plain_shot: SampleShot,
                                                            demo_profile: TasteProfile) -> None:
    cut = cut_out(plain_shot.image, face_detector=NoFaces())
    req = GenerationRequest.create(n=1, size=256, seed=4, background="backdrop")
    res = _pipeline(tmp_path, _ShiftingRenderer())(req, cut, profile=demo_profile)
    im = res.images[0]
    assert im.hold > 0  # without the guard the hold-0 render (ΔE far above 3) would have been returned
    attempts = im.info["fidelity"]["attempts"]
    assert attempts[0]["delta_e"] > 3 and im.delta_e <= 3
    assert im.record()["fidelity"]["passed"] is True


def test_a_render_failing_fully_held_is_an_error_and_nothing_is_logged(
        tmp_path: Path, plain_shot: SampleShot, demo_profile: TasteProfile) -> None:
    cut = cut_out(plain_shot.image, face_detector=NoFaces())
    pipe = _pipeline(tmp_path, _ShiftingRenderer(always=True))
    before = pipe.provenance.ledger.size
    with pytest.raises(ProductFidelityError, match="fully held"):
        pipe(GenerationRequest.create(n=1, size=256, seed=4, background="backdrop"), cut, profile=demo_profile)
    assert pipe.provenance.ledger.size == before


def test_product_outputs_carry_provenance(tmp_path: Path, plain_shot: SampleShot, demo_board: Board) -> None:
    cut = cut_out(plain_shot.image, face_detector=NoFaces())
    pipe = ProductPipeline(provenance_for(tmp_path / "prov"))
    res = pipe(GenerationRequest.create(n=2, size=256, seed=9), cut, board=demo_board)
    for im in res.images:
        report = pipe.provenance.verify(im.data)
        assert report.verdict == "verified"
        assert report.record is not None and report.record.engine == "look-product"
        assert im.delta_e <= 3 and im.shape_ssim >= 0.9
        assert im.info["subject"] == "product" and "fidelity" in im.info
