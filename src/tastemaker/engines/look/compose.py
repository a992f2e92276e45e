"""Face-aware framing in the manner of portrait practice: where the crop goes, and how big it may honestly be.

A shot is defined by two lines on the person, measured in face heights ``fh`` (the dlib box: brows to
chin), never by the photo's edges:

=========  =======================================  ===========================================
framing    bottom line (below the chin)             why there
=========  =======================================  ===========================================
closeup    0.8 fh: the collarbones                  the whole head and the neck's base
portrait   1.9 fh: mid-chest                        head and shoulders, above the elbows
half       4.4 fh: between waist and hip            below the elbows, above the wrists and hips
full       8.2 fh: below the feet                   the whole body with ground under it
=========  =======================================  ===========================================

and a **top line** with headroom above the top of the head (from the person mask when there is one,
else 0.75 fh above the brows): 8 % of the crop for a close-up, 10 % otherwise. The crop never cuts at
a joint (neck, elbows, waist, knees): the bottom lines sit between them. The eyes then fall near the
upper third (measured: 0.31-0.39 of the height). Horizontally the face is centred, shifted a little
by the variation's jitter; a crop that fits inside the photo is slid back inside it.

When the crop reaches past the photo, the missing part is *invented* by the engine (an extension of
the backdrop, or the medium's synthesis) — never mirrored or repeated. A crop past the photo's bottom
edge where the person is cut by that edge ends at the edge instead (no body floating in mid-air).

**Honest size.** A crop is never enlarged by more than ``max_upscale`` (2x by default): beyond that the
output is only magnified blur and JPEG blocks. The frame then comes out smaller than requested (at
least 256 px on its longest side) and says so (``Frame.reduced``); the engine reports it in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: framing -> (bottom line below the chin in face heights, headroom as a share of the crop height)
FRAMING = {"closeup": (0.8, 0.08), "portrait": (1.9, 0.10), "half": (4.4, 0.10), "full": (8.2, 0.10)}
ASPECT_RATIOS = {"1:1": 1.0, "4:5": 0.8, "2:3": 2 / 3, "9:16": 9 / 16, "3:2": 3 / 2}
#: the head's top above the brows when no mask says where the hair ends, in face heights
HEAD_ABOVE_BROWS = 0.75
MAX_UPSCALE = 2.0
MIN_SIDE = 256


@dataclass(frozen=True)
class Frame:
    """Crop (x0, y0, width, height) in selfie pixels and the output size (w, h)."""

    x0: float
    y0: float
    cw: float
    ch: float
    out_w: int
    out_h: int
    #: the (w, h) that was asked for, when the honest size is smaller
    requested: tuple[int, int] | None = None

    @property
    def scale(self) -> float:
        return self.out_h / self.ch

    @property
    def reduced(self) -> bool:
        return self.requested is not None

    def matrix(self, prescale: float = 1.0) -> np.ndarray:
        """2x3 affine from (prescaled) selfie pixels to output pixels."""
        s = self.scale / prescale
        return np.array([[s, 0.0, -self.x0 * self.scale], [0.0, s, -self.y0 * self.scale]], np.float32)

    def to_output(self, pts: np.ndarray) -> np.ndarray:
        """Map selfie-pixel points (n, 2) to output pixels."""
        return (np.asarray(pts, np.float32) - np.array([self.x0, self.y0], np.float32)) * self.scale

    def valid_box(self, img_w: int, img_h: int, content: tuple[int, int, int, int] | None = None
                  ) -> tuple[int, int, int, int]:
        """The output-pixel box covered by the photo (or its ``content`` box): left, top, right, bottom."""
        x0, y0, x1, y1 = content if content is not None else (0, 0, img_w, img_h)
        tl = self.to_output(np.array([[x0, y0]]))[0]
        br = self.to_output(np.array([[x1, y1]]))[0]
        return (
            max(0, int(np.floor(tl[0]))),
            max(0, int(np.floor(tl[1]))),
            min(self.out_w, int(np.ceil(br[0]))),
            min(self.out_h, int(np.ceil(br[1]))),
        )

    def covers(self, img_w: int, img_h: int, content: tuple[int, int, int, int] | None = None) -> bool:
        """True when the photo (or its ``content`` box) covers the whole output (nothing to invent)."""
        vl, vt, vr, vb = self.valid_box(img_w, img_h, content)
        return vl <= 0 and vt <= 0 and vr >= self.out_w and vb >= self.out_h


def content_box(img: np.ndarray, *, max_share: float = 0.15) -> tuple[int, int, int, int]:
    """The photo without letterbox or pillarbox bars: uniform rows/columns at the edges (x0, y0, x1, y1).

    A video still or a screenshot often carries black bars; framed as part of the photo they would show
    as a band across the output. At most ``max_share`` of each side is trimmed.
    """
    h, w = img.shape[:2]
    g = img.astype(np.float32).mean(axis=2) if img.ndim == 3 else img.astype(np.float32)

    def run(lines: np.ndarray, limit: int) -> int:
        n = 0
        ref = float(np.median(lines[0]))
        for line in lines[:limit]:
            if float(line.std()) > 4.0 or abs(float(line.mean()) - ref) > 6.0:
                break
            n += 1
        return n if n >= 2 else 0

    top = run(g, int(h * max_share))
    bottom = run(g[::-1], int(h * max_share))
    left = run(g.T, int(w * max_share))
    right = run(g.T[::-1], int(w * max_share))
    return left, top, w - right, h - bottom


def output_size(size: int, aspect: str, img_w: int, img_h: int) -> tuple[int, int]:
    """(w, h) with the longest side ``size`` for an aspect name ("original" keeps the photo's)."""
    ratio = img_w / img_h if aspect == "original" else ASPECT_RATIOS[aspect]
    if ratio >= 1:
        return size, max(1, round(size / ratio))
    return max(1, round(size * ratio)), size


def frame_subject(
    img_w: int,
    img_h: int,
    face_box: tuple[int, int, int, int],
    *,
    framing: str,
    size: int,
    aspect: str,
    zoom: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    touches_bottom: bool = True,
    head_top: float | None = None,
    max_upscale: float | None = MAX_UPSCALE,
    bounds: tuple[int, int, int, int] | None = None,
) -> Frame:
    """Place the crop for one variation; ``zoom``/``shift`` are the seed's jitters (headroom is kept).

    ``bounds`` is the photo's content box (:func:`content_box`) when it has bars to ignore.
    """
    out_w, out_h = output_size(size, aspect, img_w, img_h)
    bx0, by0, bx1, by1 = bounds if bounds is not None else (0, 0, img_w, img_h)
    ratio = out_w / out_h
    left, top, right, bottom = face_box
    fh = max(1.0, float(bottom - top))
    fx = (left + right) / 2
    below, headroom = FRAMING[framing]
    head = float(top) - HEAD_ABOVE_BROWS * fh
    if head_top is not None:  # the mask knows where the hair ends; never trust it to be far off
        head = float(np.clip(head_top, top - 1.6 * fh, top - 0.2 * fh))
    floor = float(bottom) + below * fh
    cut = touches_bottom and floor > by1
    if cut:
        floor = max(float(by1), float(bottom) + 0.35 * fh)  # the photo cuts the person: end there
    if aspect == "original" and framing == "full":
        ch = float(by1 - by0)
        y0 = float(by0)
    else:
        ch = (floor - head) / (1.0 - headroom) / zoom
        y0 = head - headroom * ch * (1.0 - 0.5 * float(np.clip(shift[1], -1.0, 1.0)))
    cw = ch * ratio
    x0 = fx - cw / 2 + shift[0] * cw
    bw, bh = bx1 - bx0, by1 - by0
    if cw <= bw:
        x0 = min(max(x0, float(bx0)), bx1 - cw)
    else:
        x0 = bx0 + (bw - cw) / 2 + shift[0] * 0.5 * (cw - bw)
    if ch <= bh:
        y0 = min(max(y0, float(by0)), by1 - ch)
        y0 = min(y0, max(float(by0), head - 0.5 * headroom * ch))  # sliding back inside never eats the headroom
    elif cut and y0 + ch > by1:
        y0 = by1 - ch  # a person cut by the photo's edge is never continued below it: more headroom instead
    requested = None
    if max_upscale is not None and out_h / ch > max_upscale:
        f = max(max_upscale * ch / out_h, MIN_SIDE / max(out_w, out_h))
        if f < 1.0:
            requested = (out_w, out_h)
            out_w, out_h = max(1, round(out_w * f)), max(1, round(out_h * f))
    return Frame(x0=x0, y0=y0, cw=cw, ch=ch, out_w=out_w, out_h=out_h, requested=requested)
