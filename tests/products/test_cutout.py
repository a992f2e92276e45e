"""The product cut-out: clean on a plain background, a transparent PNG's alpha as it is, clear refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tastemaker.products import (
    AmbiguousSubjectError,
    NoProductFoundError,
    ProductFillsFrameError,
    ProductTooThinError,
    cut_out,
    decode_product,
)
from tastemaker.products.samples import SampleShot, make_shot

from .conftest import NoFaces


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("seed", [2, 4, 6])
def test_plain_background_cuts_cleanly(seed: int) -> None:
    shot = make_shot(seed, size=512)
    cut = cut_out(shot.image, face_detector=NoFaces())
    assert cut.source == "grabcut"
    assert _iou(cut.alpha > 0.5, shot.mask) >= 0.9
    # the floor shadow under the product is background, not product
    ys = np.nonzero(shot.mask)[0]
    below = cut.alpha[ys.max() + 6 :]
    assert float(below.max(initial=0.0)) < 0.5


def test_cut_out_has_no_background_halo(plain_shot: SampleShot) -> None:
    cut = cut_out(plain_shot.image, face_detector=NoFaces())
    rim = (cut.alpha > 0.05) & (cut.alpha < 0.95)
    assert rim.any()
    bg = np.median(plain_shot.image[~plain_shot.mask].reshape(-1, 3), 0).astype(np.float32)
    # a soft rim pixel carries the product's colour, not the (light) background's
    dist_bg = np.linalg.norm(cut.rgb[rim].astype(np.float32) - bg, axis=1)
    assert float(np.median(dist_bg)) > 40


def test_transparent_png_alpha_is_the_cutout() -> None:
    shot = make_shot(1, size=256)
    alpha = (shot.mask * 255).astype(np.uint8)
    alpha[0:4] = 0
    buf = io.BytesIO()
    Image.fromarray(np.dstack([shot.image, alpha])).save(buf, format="PNG")
    img = decode_product(buf.getvalue())
    assert img.shape[2] == 4
    cut = cut_out(img, face_detector=NoFaces())
    assert cut.source == "alpha"
    np.testing.assert_allclose(cut.alpha, alpha / 255.0, atol=1e-6)


def test_one_pixel_wide_object_is_refused() -> None:
    img = np.full((400, 400, 3), 235, np.uint8)
    img[60:340, 200] = (20, 20, 200)
    with pytest.raises(ProductTooThinError, match="px wide"):
        cut_out(img, face_detector=NoFaces())


def test_one_pixel_wide_alpha_is_refused() -> None:
    img = np.full((200, 200, 4), 255, np.uint8)
    img[..., 3] = 0
    img[20:180, 100, 3] = 255
    with pytest.raises(ProductTooThinError):
        cut_out(img, face_detector=NoFaces())


def test_product_filling_the_frame_is_refused() -> None:
    fabric = np.full((300, 300, 3), (200, 40, 60), np.uint8)  # a striped scarf photographed edge to edge
    fabric[:, (np.arange(300) // 12) % 2 == 0] = (240, 230, 210)
    with pytest.raises(NoProductFoundError, match="fills the whole frame"):
        cut_out(fabric, face_detector=NoFaces())
    box = np.full((300, 300, 3), 245, np.uint8)  # a box cropped so tight it touches three edges
    box[8:, 4:296] = (30, 90, 170)
    with pytest.raises((ProductFillsFrameError, NoProductFoundError), match="fills the whole frame"):
        cut_out(box, face_detector=NoFaces())
    alpha = np.full((200, 200, 4), 200, np.uint8)
    alpha[..., 3] = 255
    alpha[0, 0, 3] = 0  # a transparent PNG whose product reaches every edge
    with pytest.raises(ProductFillsFrameError, match="fills the whole frame"):
        cut_out(alpha, face_detector=NoFaces())


def test_blank_photo_has_no_product() -> None:
    with pytest.raises(NoProductFoundError, match="stands out"):
        cut_out(np.full((300, 300, 3), 240, np.uint8), face_detector=NoFaces())


class _OneFace:
    def detect(self, img: np.ndarray) -> list[object]:
        class F:
            box = (10, 20, 60, 80)

        return [F()]


def test_a_face_in_the_photo_asks_for_the_subject(plain_shot: SampleShot) -> None:
    with pytest.raises(AmbiguousSubjectError, match="--subject product"):
        cut_out(plain_shot.image, face_detector=_OneFace())
    cut = cut_out(plain_shot.image, face_detector=_OneFace(), allow_face=True)
    assert "rendered as a product as asked" in cut.notes[0]


def test_real_face_detector_finds_the_selfie(selfie: np.ndarray) -> None:
    """The default detector (dlib's) refuses a photo of a person given as a product."""
    with pytest.raises(AmbiguousSubjectError, match="shows a person"):
        cut_out(selfie)


def test_a_busy_background_is_said() -> None:
    cut = cut_out(make_shot(0, size=256, busy=True).image, face_detector=NoFaces())
    assert any("busy" in n for n in cut.notes)
    assert not cut_out(make_shot(0, size=256).image, face_detector=NoFaces()).notes
