"""Product shots made on the spot, with known colours and known masks: for the bench, the tests and trying it out.

Simple objects (a bottle, a mug, a box, a ball, a vase) drawn with shading, a label with printed structure and
an anti-aliased outline, on a plain studio background (a gentle sweep, a soft floor shadow, sensor noise) or a
busy one (overlapping blobs and stripes). Nothing is downloaded; the same seed gives the same shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("bottle", "mug", "box", "ball", "vase")
#: body colours (sRGB) the objects are drawn in, cycled by seed
COLOURS = ((196, 38, 48), (32, 92, 170), (236, 180, 40), (40, 140, 90), (120, 60, 150), (230, 110, 40))


@dataclass
class SampleShot:
    """A synthetic product photo: ``image`` uint8 RGB, ``mask`` bool (the product), ``colour`` its body sRGB."""

    image: np.ndarray
    mask: np.ndarray
    colour: tuple[int, int, int]
    kind: str
    busy: bool


def _shape(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """The object's silhouette at 4x supersampling (uint8 0/255), centred, standing on the lower third."""
    s = 4
    m = np.zeros((h * s, w * s), np.uint8)
    cx, base = w * s // 2 + int(rng.uniform(-0.08, 0.08) * w * s), int(0.82 * h * s)
    H = int(rng.uniform(0.45, 0.6) * h * s)
    if kind == "bottle":
        bw = int(0.22 * H)
        cv2.rectangle(m, (cx - bw, base - int(0.62 * H)), (cx + bw, base), 255, -1)
        cv2.ellipse(m, (cx, base - int(0.62 * H)), (bw, int(0.12 * H)), 0, 180, 360, 255, -1)
        nw = int(0.08 * H)
        cv2.rectangle(m, (cx - nw, base - H), (cx + nw, base - int(0.7 * H)), 255, -1)
    elif kind == "mug":
        bw = int(0.42 * H)
        top = base - int(0.8 * H)
        cv2.rectangle(m, (cx - bw, top), (cx + bw, base), 255, -1)
        cv2.ellipse(m, (cx + bw, (top + base) // 2), (int(0.25 * H), int(0.25 * H)), 0, -90, 90, 255,
                    int(0.09 * H))
    elif kind == "box":
        bw = int(0.45 * H)
        box = np.array([[cx - bw, base], [cx + bw, base], [cx + bw, base - int(0.85 * H)],
                        [cx + int(0.7 * bw), base - H], [cx - int(1.3 * bw), base - H],
                        [cx - bw, base - int(0.85 * H)]], np.int32)
        cv2.fillPoly(m, [box], 255)
    elif kind == "ball":
        r = int(0.45 * H)
        cv2.circle(m, (cx, base - r), r, 255, -1)
    else:  # vase
        pts: list[tuple[float, float]] = []
        for t in np.linspace(0, 1, 40):
            r = 0.18 * H + 0.12 * H * np.sin(np.pi * (0.2 + 1.1 * t)) - 0.05 * H * t
            pts.append((cx + r, base - t * H))
        pts += [(2 * cx - x, y) for x, y in reversed(pts)]
        cv2.fillPoly(m, [np.array(pts, np.int32)], 255)
    return m


def make_shot(seed: int, *, size: int = 1024, busy: bool = False, kind: str | None = None) -> SampleShot:
    """One synthetic product shot (``size`` square)."""
    rng = np.random.default_rng(seed)
    kind = kind or KINDS[seed % len(KINDS)]
    colour = COLOURS[seed % len(COLOURS)]
    w = h = size
    big = _shape(kind, w, h, rng)
    cover = cv2.resize(big.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    mask = cover > 0.5
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    # the object: its colour shaded as a cylinder lit from the upper left, a label band with printed stripes
    u = np.clip((xx - x0) / max(1, x1 - x0), 0, 1)
    shade = 0.72 + 0.38 * np.sin(np.pi * (0.15 + 0.8 * u)) - 0.08 * (yy - y0) / max(1, y1 - y0)
    body = np.array(colour, np.float32)[None, None] * shade[..., None]
    label = (yy > y0 + 0.45 * (y1 - y0)) & (yy < y0 + 0.7 * (y1 - y0))
    stripes = label & ((((xx - x0) // max(2, (x1 - x0) // 14)) % 2) == 0) & (yy > y0 + 0.52 * (y1 - y0))
    obj = body.copy()
    obj[label] = (np.array([245, 242, 232], np.float32)[None] * shade[label][:, None])
    obj[stripes] = np.array([30, 30, 34], np.float32)
    # the background
    if busy:
        bg: np.ndarray = np.full((h, w, 3), rng.uniform(60, 200, 3), np.float32)
        for _ in range(40):
            c = rng.uniform(0, 255, 3)
            if rng.random() < 0.5:
                cv2.circle(bg, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(0.03, 0.2) * w),
                           c.tolist(), -1)
            else:
                p = rng.uniform(0, w, 2).astype(int)
                cv2.line(bg, tuple(p), tuple((p + rng.uniform(-0.5, 0.5, 2) * w).astype(int)), c.tolist(),
                         int(rng.uniform(0.005, 0.04) * w))
        bg = cv2.GaussianBlur(bg, (0, 0), 1.2)
    else:
        tone = rng.uniform(200, 248) if rng.random() < 0.7 else rng.uniform(120, 190)
        tint = rng.uniform(-6, 6, 3)
        bg = np.full((h, w, 3), tone, np.float32) + tint[None, None] - 18.0 * (yy / h)[..., None]
        floor = np.exp(-(((xx - (x0 + x1) / 2) / (0.6 * (x1 - x0))) ** 2 + ((yy - y1) / (0.03 * h)) ** 2))
        bg *= (1.0 - 0.35 * floor)[..., None]
    a = cover[..., None]
    img = obj * a + bg * (1 - a)
    img += rng.normal(0, 1.6, img.shape).astype(np.float32)
    return SampleShot(image=np.clip(img + 0.5, 0, 255).astype(np.uint8), mask=mask, colour=colour, kind=kind,
                      busy=busy)
