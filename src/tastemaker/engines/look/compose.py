"""Face-aware framing: where the crop goes for a given aspect, size and shot type.

The crop is sized from the face (the dlib box height ``fh``) and the shot type, and placed so the
face sits on the upper third line, horizontally centred:

=========  ================  ==========================
framing    crop height       face centre from the top
=========  ================  ==========================
closeup    2.4 x fh          45 %
portrait   3.8 x fh          38 %
half       6.0 x fh          30 %
full       9.5 x fh          22 %
=========  ================  ==========================

A crop that fits inside the photo is slid back inside it (no invented pixels). A crop larger than the
photo along an axis keeps the photo centred there, except vertically when the person reaches the
bottom edge: then the photo's bottom stays at the frame's bottom, so a body is never cut off in
mid-air. Areas outside the photo are filled by the engine (background blur or backdrop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAMING = {"closeup": (2.4, 0.45), "portrait": (3.8, 0.38), "half": (6.0, 0.30), "full": (9.5, 0.22)}
ASPECT_RATIOS = {"1:1": 1.0, "4:5": 0.8, "2:3": 2 / 3, "9:16": 9 / 16}


@dataclass(frozen=True)
class Frame:
    """Crop (x0, y0, width, height) in selfie pixels and the output size (w, h)."""

    x0: float
    y0: float
    cw: float
    ch: float
    out_w: int
    out_h: int

    @property
    def scale(self) -> float:
        return self.out_h / self.ch

    def matrix(self, prescale: float = 1.0) -> np.ndarray:
        """2x3 affine from (prescaled) selfie pixels to output pixels."""
        s = self.scale / prescale
        return np.array([[s, 0.0, -self.x0 * self.scale], [0.0, s, -self.y0 * self.scale]], np.float32)

    def to_output(self, pts: np.ndarray) -> np.ndarray:
        """Map selfie-pixel points (n, 2) to output pixels."""
        return (np.asarray(pts, np.float32) - np.array([self.x0, self.y0], np.float32)) * self.scale

    def valid_box(self, img_w: int, img_h: int) -> tuple[int, int, int, int]:
        """The output-pixel box covered by the photo: left, top, right, bottom."""
        tl = self.to_output(np.array([[0, 0]]))[0]
        br = self.to_output(np.array([[img_w, img_h]]))[0]
        return (
            max(0, int(np.floor(tl[0]))),
            max(0, int(np.floor(tl[1]))),
            min(self.out_w, int(np.ceil(br[0]))),
            min(self.out_h, int(np.ceil(br[1]))),
        )


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
) -> Frame:
    """Place the crop for one variation; ``zoom``/``shift`` are the seed's small jitters."""
    out_w, out_h = output_size(size, aspect, img_w, img_h)
    ratio = out_w / out_h
    left, top, right, bottom = face_box
    fh = max(1.0, float(bottom - top))
    fx, fy = (left + right) / 2, (top + bottom) / 2
    mult, face_y = FRAMING[framing]
    if aspect == "original" and framing == "full":
        ch = float(img_h)
    else:
        ch = mult * fh / zoom
    cw = ch * ratio
    x0 = fx - cw / 2 + shift[0] * cw
    y0 = fy - face_y * ch + shift[1] * ch
    if cw <= img_w:
        x0 = min(max(x0, 0.0), img_w - cw)
    else:
        x0 = (img_w - cw) / 2
    if ch <= img_h:
        y0 = min(max(y0, 0.0), img_h - ch)
    elif touches_bottom:
        y0 = img_h - ch
    else:
        y0 = (img_h - ch) / 2
    return Frame(x0=x0, y0=y0, cw=cw, ch=ch, out_w=out_w, out_h=out_h)
