"""The medium step of a look render: the picture re-drawn from an exemplar pin's patches, the face held.

Step 6 of :mod:`.engine`'s recipe, for modes whose pins are paintings or line work. Separate from the
engine because it is one algorithm with its own constants (how much of the medium the face gets at each
hold, the marks' scale and clip) and its own cache of prepared exemplar pins (:class:`Exemplars`, which
the engine holds). The patch synthesis itself is :mod:`.medium`'s.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import cv2
import numpy as np

from ...media import resize_max_side
from ..base import PinImage
from .medium import Exemplar, band_profile, match_bands, prepare_exemplar, synthesize

#: longest side of the medium synthesis (the result is upsampled, guided by the full-size render)
SYNTH_SIDE = 448
#: exemplar resolution per medium: line work keeps its marks resolved, paint its strokes
EXEMPLAR_SIDE = {"line": 900, "paint": 640}
EXEMPLAR_CROP = 640
#: by the identity guard's hold (0, 0.5, 0.8, 1): how much of the medium's marks and colour the face gets;
#: at full hold it gets none
HOLDS = (0.0, 0.5, 0.8, 1.0)
FACE_MEDIUM = (1.0, 0.7, 0.4, 0.0)
FACE_DETAIL = (0.3, 0.55, 0.8, 1.0)
#: the marks' amplitude on the face at hold 0, relative to elsewhere, at most MARK_CLIP L* either way, and
#: full only where the skin is darker than SHADE_FROM L*
FACE_MARKS = 0.8
MARK_CLIP = 22.0
#: the marks' scale in synthesis pixels: an engraver's lines are fine, a painter's strokes broader
MARK_SCALE = {"line": 1.2, "paint": 2.5}
SHADE_FROM = 70.0
#: how far the picture's balance of detail across octaves moves to the exemplar pin's (see ``match_bands``),
#: and the share of that on the face at hold 0
BAND_MATCH = 1.0
BAND_FACE = 0.0
#: how closely the synthesis follows the picture's shading (patch-search guide weight) off and on the face
GUIDE_REST = 1.6
GUIDE_FACE = 4.0


class Exemplars:
    """The prepared exemplars, by pin content, kind and side: built once even when asked twice, the least
    recently used dropped past ``size``. ``lock``: the engine's, which guards its other caches too."""

    def __init__(self, size: int, lock: threading.Lock) -> None:
        self._lock = lock
        self._exemplars: OrderedDict[str, Exemplar] = OrderedDict()
        self._exemplar_cache = size
        self._building: dict[str, threading.Lock] = {}

    def get(self, pin: PinImage, kind: str, synth_side: int) -> Exemplar:
        """The prepared exemplar for a pin (see :meth:`LookEngine.exemplar`)."""
        side = EXEMPLAR_SIDE.get(kind, 640)
        digest = hashlib.sha1(np.ascontiguousarray(pin.image).data).hexdigest()[:20]
        key = f"{digest}:{kind}:{side}"
        with self._lock:
            ex = self._exemplars.get(key)
            if ex is not None:
                self._exemplars.move_to_end(key)
                return ex
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                ex = self._exemplars.get(key)
            if ex is None:
                img = resize_max_side(pin.image, side)
                if kind == "line":
                    img = _busiest_crop(img, EXEMPLAR_CROP)
                ex = prepare_exemplar(img, side=max(img.shape[:2]), key=pin.id)
                whole = resize_max_side(pin.image, synth_side)
                ex.bands = band_profile(cv2.cvtColor(whole.astype(np.float32) * np.float32(1 / 255),
                                                     cv2.COLOR_RGB2Lab)[..., 0])
                with self._lock:
                    self._exemplars[key] = ex
                    while len(self._exemplars) > self._exemplar_cache:
                        self._exemplars.popitem(last=False)
                    self._building.pop(key, None)
        return ex


def redraw(
    out: np.ndarray, face: np.ndarray, ex: Exemplar, strength: float, hold: float, kind: str,
    prep: dict[str, Any], key: tuple[Any, ...], *, synth_side: int, lock: threading.Lock,
) -> tuple[np.ndarray, float]:
    """Re-draw ``out`` from the exemplar's patches; the face keeps its structure (more with ``hold``).

    The synthesis of a variation is kept for the request: when the identity guard asks for a higher
    hold only the face's blend changes, so a re-render costs no new synthesis: it lives in ``prep`` (the
    engine's per-subject cache) under ``key``, read and written under the engine's ``lock``.
    """
    H, W = out.shape[:2]
    f = min(1.0, synth_side / max(H, W))
    size = (max(16, round(W * f)), max(16, round(H * f)))
    face_s = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
    with lock:
        syn = prep.setdefault("syntheses", {}).get(key)
    if syn is None:
        small = cv2.resize(np.clip(out, 0.0, 1.0), size, interpolation=cv2.INTER_AREA)
        lab_s = cv2.cvtColor(small, cv2.COLOR_RGB2Lab)
        syn = synthesize(lab_s, ex, guide_weight=GUIDE_REST + (GUIDE_FACE - GUIDE_REST) * face_s,
                         tone_match=0.6 * (1.0 - 0.6 * face_s))
        with lock:
            cache = prep["syntheses"]
            if len(cache) >= 16:
                cache.pop(next(iter(cache)))
            cache[key] = syn
    syn_up = cv2.resize(syn, (W, H), interpolation=cv2.INTER_CUBIC)
    if kind == "line":  # crisp the upsampled marks again
        Ls = syn_up[..., 0]
        syn_up[..., 0] = np.clip(Ls + 0.8 * (Ls - cv2.GaussianBlur(Ls, (0, 0), 1.2 / f)), 0.0, 100.0)
    lab = cv2.cvtColor(np.clip(out, 0.0, 1.0), cv2.COLOR_RGB2Lab)
    # the face: the selfie's own structure, every scale of it, with the medium's marks laid over it
    # (a stroke never replaces an eyelid); the rest of the picture is the synthesis itself
    on_face = float(np.interp(hold, HOLDS, FACE_MEDIUM))
    sigma = max(1.0, MARK_SCALE.get(kind, 1.2) / f)
    detail = syn_up - cv2.GaussianBlur(syn_up, (0, 0), sigma)
    marks = np.clip(detail[..., 0], -MARK_CLIP, MARK_CLIP)
    # as an engraver shades a face: marks in its shadows, little on its lit skin
    shade = np.clip((SHADE_FROM - lab[..., 0]) / 35.0, 0.3, 1.0)
    face_lab = lab.copy()
    # the selfie's finest detail (pores, fine wrinkles) is a photograph's, not a painting's: smoothed
    # away edge-aware as far as the hold allows, while eyes, brows and mouth keep their edges
    keep_detail = float(np.interp(hold, HOLDS, FACE_DETAIL))
    if keep_detail < 1.0:
        face_lab[..., 0] = _smooth_face(lab[..., 0], face, f / MARK_SCALE.get(kind, 1.2), keep_detail)
    face_lab[..., 0] += np.float32(FACE_MARKS * on_face) * marks * shade
    face_lab[..., 1:] += (syn_up[..., 1:] - lab[..., 1:]) * np.float32(0.4 * on_face)
    face_lab[..., 1:] += detail[..., 1:] * np.float32(0.6 * on_face)  # the strokes' own colour
    m = face[..., None]
    composed = syn_up + (face_lab - syn_up) * m
    res = lab + (composed - lab) * np.float32(strength)
    if ex.bands is not None and BAND_MATCH > 0:
        # the medium's balance of fine and broad detail (the pin's own, measured on the whole pin at this
        # size): a painting's surface is busy at the finest octaves, a photograph's is not
        Ls = cv2.resize(res[..., 0], size, interpolation=cv2.INTER_AREA)
        amount = np.float32(BAND_MATCH * strength) * (1.0 - face_s * np.float32(1.0 - BAND_FACE * on_face))
        delta = match_bands(Ls, ex.bands, amount) - Ls
        res[..., 0] = np.clip(res[..., 0] + cv2.resize(delta, (W, H), interpolation=cv2.INTER_CUBIC), 0, 100)
    face_strength = float(strength * on_face)
    return cv2.cvtColor(res, cv2.COLOR_Lab2RGB), face_strength


def _smooth_face(L: np.ndarray, face: np.ndarray, f: float, keep: float) -> np.ndarray:
    """``L`` with the face's finest detail reduced to ``keep`` of itself by an edge-aware (guided) filter.

    Only the face's bounding box is filtered; ``f`` is the synthesis scale (the filter's radius follows
    the size of the medium's marks).
    """
    ys, xs = np.nonzero(face > 0.02)
    out = L.copy()
    if len(ys) == 0:
        return out
    pad = max(4, round(4 / f))
    y0, y1 = max(0, ys.min() - pad), min(L.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(L.shape[1], xs.max() + pad + 1)
    crop = np.ascontiguousarray(L[y0:y1, x0:x1])
    radius = max(2, round(1.5 / f))
    guided = getattr(getattr(cv2, "ximgproc", None), "guidedFilter", None)
    if guided is not None:
        smooth = guided(crop, crop, radius, 64.0)
    else:  # a plain OpenCV build: the bilateral filter does the same job, slower
        smooth = cv2.bilateralFilter(crop, 2 * radius + 1, 6.0, float(radius))
    out[y0:y1, x0:x1] = smooth + (crop - smooth) * np.float32(keep)
    return out



def _busiest_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` x ``side`` window with the most marks (edge density): margins and blank paper out."""
    h, w = img.shape[:2]
    if h <= side and w <= side:
        return img
    small_f = 128 / max(h, w)
    g = cv2.cvtColor(cv2.resize(img, None, fx=small_f, fy=small_f, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    e = np.abs(cv2.Laplacian(g.astype(np.float32), cv2.CV_32F))
    cw, ch = max(1, round(min(side, w) * small_f)), max(1, round(min(side, h) * small_f))
    integ = cv2.integral(e)
    best, pos = -1.0, (0, 0)
    for y in range(0, e.shape[0] - ch + 1, 2):
        for x in range(0, e.shape[1] - cw + 1, 2):
            s = integ[y + ch, x + cw] - integ[y, x + cw] - integ[y + ch, x] + integ[y, x]
            if s > best:
                best, pos = float(s), (x, y)
    x0, y0 = round(pos[0] / small_f), round(pos[1] / small_f)
    return np.ascontiguousarray(img[y0 : y0 + min(side, h), x0 : x0 + min(side, w)])

