"""Pictures and the edits made to them, shared by the provenance tests and ``bench/watermark.py``.

What a copy of an output goes through before someone asks whether it is ours: compression, resizing,
cropping, and what people do to pictures they share (a photo app's sliders, a straighten, a thumbnail).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

Attack = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def fit_long_side(img: np.ndarray, long_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    f = long_side / max(h, w)
    interp = cv2.INTER_CUBIC if f > 1 else cv2.INTER_AREA
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=interp)


def synthetic(seed: int, h: int = 768, w: int = 640) -> np.ndarray:
    """Smooth colour gradients + band-limited texture + sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack(
        [
            120 + 80 * np.sin(2 * np.pi * (x * rng.uniform(0.3, 1.5) + rng.uniform())) + 40 * y,
            100 + 60 * np.cos(2 * np.pi * y * rng.uniform(0.3, 1.5)) + 30 * x,
            140 + 50 * np.sin(2 * np.pi * (x + y) * rng.uniform(0.2, 1.0)),
        ],
        -1,
    )
    tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(1, 4))
    tex = tex / tex.std() * rng.uniform(3, 15)
    img = base + tex[..., None] + rng.normal(0, 2, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def resize(img: np.ndarray, f: float) -> np.ndarray:
    return cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)


def crop_area(img: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = fraction**0.5
    ch, cw = round(h * s), round(w * s)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return img[y : y + ch, x : x + cw].copy()


def enhance(img: np.ndarray, *, brightness: float = 1.0, contrast: float = 1.0, colour: float = 1.0,
             blur: float = 0.0) -> np.ndarray:
    """What photo apps do (PIL's ImageEnhance, in that order, then a Gaussian blur)."""
    from PIL import ImageEnhance, ImageFilter

    p = Image.fromarray(img)
    p = ImageEnhance.Brightness(p).enhance(brightness)
    p = ImageEnhance.Contrast(p).enhance(contrast)
    p = ImageEnhance.Color(p).enhance(colour)
    if blur:
        p = p.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(p.convert("RGB")).copy()


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lut[img]


def turn(img: np.ndarray, degrees: float) -> np.ndarray:
    """A phone's "straighten": turn about the centre, then crop to the largest upright frame of the same aspect."""
    h, w = img.shape[:2]
    p = Image.fromarray(img).rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    t = np.deg2rad(abs(degrees))
    f = 1.0 / (np.cos(t) + max(h / w, w / h) * np.sin(t))
    ch, cw = int(h * f), int(w * f)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.asarray(p)[y0 : y0 + ch, x0 : x0 + cw].copy()


ATTACKS: dict[str, Attack] = {
    "none": lambda im, rng: im,
    "jpeg50": lambda im, rng: jpeg(im, 50),
    "jpeg75": lambda im, rng: jpeg(im, 75),
    "resize0.5": lambda im, rng: resize(im, 0.5),
    "crop50": lambda im, rng: crop_area(im, 0.5, rng),
    "jpeg75+resize0.75+crop80": lambda im, rng: crop_area(resize(jpeg(im, 75), 0.75), 0.8, rng),
}


#: what people do to pictures they share (issue 11 #1); the thumbnail is read by the fingerprint, not the mark
SHARE_EDITS: dict[str, Attack] = {
    "bright+contrast+blur": lambda im, rng: enhance(im, brightness=1.2, contrast=1.3, blur=1.0),
    "rotate5": lambda im, rng: turn(im, 5.0),
    "saturation+30": lambda im, rng: enhance(im, colour=1.3),
    "saturation-30": lambda im, rng: enhance(im, colour=0.7),
    "gamma0.8": lambda im, rng: gamma(im, 0.8),
    "gamma1.25": lambda im, rng: gamma(im, 1.25),
}
THUMBNAIL: dict[str, Attack] = {"thumb0.25+jpeg70": lambda im, rng: jpeg(resize(im, 0.25), 70)}
