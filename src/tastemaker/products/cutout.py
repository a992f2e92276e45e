"""The product cut out of its photo without learned weights: a transparent PNG's alpha, or saliency + GrabCut.

A shop's product shot is usually a studio shot on a plain (white, grey, coloured) background, or a PNG that is
already cut out. So:

1. **alpha**: a PNG (or WebP) with transparency *is* the cut-out; its alpha is used as it is (the colour at
   semi-transparent pixels, which decoding composites on white, is un-composited exactly).
2. **photo**: at a working size (<= :data:`WORK_SIDE`), the background is modelled from the photo's border
   (k-means colours in CIE Lab); the colour distance to it and OpenCV's fine-grained static saliency seed
   GrabCut (border = background, far-from-border colours = probable foreground, their core = foreground);
   small specks are dropped and pinholes filled. The binary mask is then refined **by the photo's edges** at
   full size: an edge-aware guided filter (OpenCV ximgproc) with the photo as guide snaps the boundary to the
   product's own edges and gives it a one-pixel anti-aliased rim. Where the rim is soft, the product's own
   colour is pushed outward (normalised convolution from the solid interior), so no background halo travels
   with the cut-out.

What fails, honestly: a busy background whose colours the product shares (saliency and GrabCut then cut parts
of the background or miss parts of the product; the bench reports busy backgrounds separately), glass and
other transparent products, and white products on white. Clear refusals (never a silent bad cut-out):
nothing stands out from the edges (:class:`NoProductFoundError`: a blank photo, or a product filling the
whole frame), a product reaching the frame all round (:class:`ProductFillsFrameError`), a line or speck a
few pixels wide (:class:`ProductTooThinError`), and a face in the photo unless the caller said it is a
product anyway (:class:`AmbiguousSubjectError`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..media import decode_image, resize_max_side
from .errors import AmbiguousSubjectError, NoProductFoundError, ProductFillsFrameError, ProductTooThinError

#: longest side GrabCut runs at (it is O(pixels) per iteration; the edges are refined at full size after)
WORK_SIDE = 320
#: the border strip taken as background, as a fraction of the working image's shorter side
BORDER = 0.03
#: a cut-out this thin (its widest point, in full-size pixels) is a line, not a product
MIN_WIDTH_PX = 4
#: a cut-out covering more of the frame than this leaves no background to cut it from
MAX_COVER = 0.88
#: GrabCut iterations
ITERATIONS = 3
#: background colours modelled from the border (a busy background needs more than a sweep)
K_BORDER = 8


@dataclass
class Cutout:
    """A product and its matte: ``rgb`` uint8 (H, W, 3) with the halo removed, ``alpha`` float32 (H, W) 0..1.

    ``source`` is "alpha" (a transparent image's own) or "grabcut"; ``box`` the tight box of ``alpha > 0.5``
    (x0, y0, x1, y1); ``notes`` what a person should know (a face found and accepted, a soft matte).
    """

    rgb: np.ndarray
    alpha: np.ndarray
    source: str
    box: tuple[int, int, int, int]
    name: str = "product"
    notes: list[str] = field(default_factory=list)
    #: per-cut-out caches (dominant colours, fitted LUTs), filled by the guard and the renderer
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def coverage(self) -> float:
        """The share of the photo the product covers."""
        return float((self.alpha > 0.5).mean())

    def info(self) -> dict[str, Any]:
        """What the manifest records about the cut-out."""
        x0, y0, x1, y1 = self.box
        return {"source": self.source, "box": [x0, y0, x1, y1], "coverage": round(self.coverage, 4),
                **({"notes": list(self.notes)} if self.notes else {})}


def decode_product(data: bytes, *, name: str = "product", max_pixels: int = 40_000_000,
                   max_bytes: int = 50 * 1024 * 1024) -> np.ndarray:
    """The photo's bytes as uint8 RGB, or RGBA when it has transparency (upright, limits checked first)."""
    rgb = decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes)  # limits, EXIF, ICC
    with Image.open(io.BytesIO(data)) as im:
        has_alpha = im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info)
        if not has_alpha:
            return rgb
        im.seek(0)
        upright = ImageOps.exif_transpose(im) or im
        alpha = np.asarray(upright.convert("RGBA").getchannel("A"), np.uint8)
    if alpha.shape != rgb.shape[:2]:
        return rgb
    return np.dstack([rgb, alpha])


def cut_out(img: np.ndarray, *, name: str = "product", allow_face: bool = False,
            face_detector: Any = None) -> Cutout:
    """Cut the product out of ``img`` (uint8 RGB, or RGBA whose alpha is the cut-out).

    ``allow_face``: the caller confirmed the photo is a product even if a face is in it (``--subject
    product``); otherwise a face refuses the photo. ``face_detector``: an object with ``detect(rgb)`` returning
    faces with a ``box`` (the identity encoder; built on demand).
    """
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
        raise NoProductFoundError(f"{name}: expected an 8-bit RGB or RGBA image")
    if min(img.shape[:2]) < 16:
        raise ProductTooThinError(f"{name}: the photo is {img.shape[1]}x{img.shape[0]} px; a product photo "
                                  "needs at least 16 px a side (64 or more to be useful)")
    notes: list[str] = []
    cache: dict[str, Any] = {}
    if img.shape[2] == 4 and int(img[..., 3].min()) < 250:
        rgb, alpha, source = _from_alpha(img, name)
    else:
        rgb = np.ascontiguousarray(img[..., :3])
        alpha, source = _grabcut(rgb, name, notes), "grabcut"
        cache["photo"] = rgb  # the photo as it was: a "keep" background shows it
        rgb = _defringe(rgb, alpha)
    box = _check(alpha, name, source)
    faces = _faces(rgb, face_detector)
    if faces:
        x0, y0, x1, y1 = faces[0]
        where = f"a face at x {x0}-{x1}, y {y0}-{y1}"
        if not allow_face:
            raise AmbiguousSubjectError(
                f"{name}: this product photo shows a person ({where}). Say which subject you mean: "
                "`--subject product` (API: subject=product with consent=true) renders what was cut out as a "
                "product, the person in it kept as photographed; for a person in the board's look, give the "
                "photo as a selfie (--selfie) instead")
        notes.append(f"{where} was found; rendered as a product as asked (subject=product)")
    return Cutout(rgb=rgb, alpha=alpha, source=source, box=box, name=name, notes=notes, cache=cache)


# ------------------------------------------------------------------------------------------ alpha
def _from_alpha(img: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The alpha as the matte; the colour at soft pixels un-composited from the white decoding put under it."""
    a = img[..., 3].astype(np.float32) * np.float32(1 / 255)
    rgb = img[..., :3].astype(np.float32)
    soft = (a > 0.02) & (a < 0.98)
    if soft.any():
        a3 = a[..., None]
        un = (rgb - (1.0 - a3) * 255.0) / np.maximum(a3, 0.02)
        rgb = np.where(soft[..., None], np.clip(un, 0, 255), rgb)
    rgb8 = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return _defringe(rgb8, a), a, "alpha"


# ------------------------------------------------------------------------------------------ photo
def _grabcut(rgb: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    """The matte of a photo: border colour model + saliency -> GrabCut at work size -> guided filter at full."""
    H, W = rgb.shape[:2]
    work = resize_max_side(rgb, WORK_SIDE)
    h, w = work.shape[:2]
    lab = cv2.cvtColor(work.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    b = max(2, round(BORDER * min(h, w)))
    border = np.zeros((h, w), bool)
    border[:b], border[-b:], border[:, :b], border[:, -b:] = True, True, True, True
    dist, centres = _border_distance(lab, border)
    spread = float(np.quantile(dist[border], 0.95))
    thr = max(9.0, spread + 6.0)
    cand = dist > thr
    # saliency adds what the colour model cannot see on a busy background (only where it is decisive)
    busy = spread > 12.0
    if busy:
        cand |= (_saliency(work) > 0.55) & (dist > 0.5 * thr)  # only here: a plain sweep needs none
        notes.append("the photo's background is busy: the cut-out may hold parts of it or miss parts of the "
                     "product (a plain background or a transparent PNG cuts cleanly); check the contact sheet")
    cand &= ~border & ~_shadow_like(lab, centres)
    big = _largest(cand)
    if big is None or 2.0 * float(cv2.distanceTransform(np.pad(big, 1), cv2.DIST_L2, 3).max()) < 3:
        _thin_at_full_size(rgb, centres, thr, name)  # a line thinner than a working pixel fades out at work size
    if big is None or _extent(big) < 0.05 * max(h, w) or big.sum() < 0.002 * h * w:
        raise NoProductFoundError(
            f"{name}: nothing stands out from the photo's edges: the product fills the whole frame or blends "
            "into its background. Give a photo with some background all round the product (a plain one cuts "
            "best) or a transparent PNG whose alpha is the cut-out")
    _check_width(big > 0, W / w, name)
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    mask[cand] = cv2.GC_PR_FGD
    core = cv2.erode(cand.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    core &= dist > 2.0 * thr if not busy else dist > 1.5 * thr
    mask[core] = cv2.GC_FGD
    mask[border] = cv2.GC_BGD
    # GrabCut only around the candidates (a margin of background all round, its edge certain background): on a
    # studio shot that is a fraction of the frame, and GrabCut's time is per pixel
    ys, xs = np.nonzero(cand)
    m = max(b + 2, round(0.1 * max(h, w)))
    y0, y1 = max(0, int(ys.min()) - m), min(h, int(ys.max()) + m + 1)
    x0, x1 = max(0, int(xs.min()) - m), min(w, int(xs.max()) + m + 1)
    crop = mask[y0:y1, x0:x1].copy()
    crop[[0, -1], :] = cv2.GC_BGD
    crop[:, [0, -1]] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        img = np.ascontiguousarray(cv2.cvtColor(work[y0:y1, x0:x1], cv2.COLOR_RGB2BGR))
        cv2.grabCut(img, crop, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    except cv2.error:  # GrabCut needs both classes; a degenerate seed keeps the colour model's answer
        pass
    mask[:] = cv2.GC_BGD
    mask[y0:y1, x0:x1] = crop
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = _clean(_fill_enclosed(_clean(fg), dist > 0.4 * thr))
    if not fg.any():
        raise NoProductFoundError(f"{name}: no product could be separated from its background; give a photo on a "
                                  "plain background or a transparent PNG")
    soft = cv2.resize(fg.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    return _refine_edges(rgb, soft)


def _fill_enclosed(fg: np.ndarray, differs: np.ndarray) -> np.ndarray:
    """Add the pixels held between product pixels (along their row or their column) whose colour differs at all
    from the background's: a light label band on a light sweep, which GrabCut's colour model gives to the
    background. A handle's hole shows the background itself, so it stays open."""
    on = fg > 0
    between_x = np.maximum.accumulate(on, axis=1) & np.maximum.accumulate(on[:, ::-1], axis=1)[:, ::-1]
    between_y = np.maximum.accumulate(on, axis=0) & np.maximum.accumulate(on[::-1], axis=0)[::-1]
    return np.asarray((on | ((between_x | between_y) & differs)).astype(np.uint8))


def _border_distance(lab: np.ndarray, border: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's Lab distance to the nearest of the border's k-means colours (the background model), and
    those colours."""
    samples = lab[border].reshape(-1, 3)
    k = min(K_BORDER, max(1, len(samples) // 50))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(samples.astype(np.float32), k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    return _distance(lab, centres), centres


def _distance(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = np.full(lab.shape[:2], np.inf, np.float32)
    for c in np.asarray(centres, np.float32):
        d = np.minimum(d, np.sqrt(((lab - c) ** 2).sum(-1)))
    return d


def _thin_at_full_size(rgb: np.ndarray, centres: np.ndarray, thr: float, name: str) -> None:
    """At full size, refuse an object too thin for the working size to see (a one-pixel line)."""
    lab = cv2.cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    cand = _distance(lab, centres) > thr
    b = max(2, round(BORDER * min(rgb.shape[:2])))
    cand[:b], cand[-b:], cand[:, :b], cand[:, -b:] = False, False, False, False
    big = _largest(cand)
    # one long thin thing (most of what differs from the background, about as many pixels as it is long times
    # its few pixels' width), not the specks of a texture
    if (big is not None and _extent(big) >= 0.05 * max(rgb.shape[:2]) and big.sum() >= 0.5 * cand.sum()
            and big.sum() <= MIN_WIDTH_PX * _extent(big)):
        _check_width(big > 0, 1.0, name)


def _largest(mask: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of ``mask`` (uint8 0/1), or None when it is empty."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == k).astype(np.uint8)


def _extent(mask: np.ndarray) -> int:
    """The longer side of the mask's bounding box, in pixels."""
    ys, xs = np.nonzero(mask)
    return int(max(xs.max() - xs.min(), ys.max() - ys.min())) + 1


def _shadow_like(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Pixels that look like the background in shadow (its chroma, somewhat darker): a studio shot's floor
    shadow is the background's, not the product's. (A light grey product on a white sweep looks the same: a
    known failure.)"""
    out = np.zeros(lab.shape[:2], bool)
    for c in np.asarray(centres, np.float32):
        dab = np.sqrt(((lab[..., 1:] - c[1:]) ** 2).sum(-1))
        drop = c[0] - lab[..., 0]
        out |= (dab < 4.0 + 0.15 * np.maximum(drop, 0)) & (drop > 0) & (drop < 28.0)
    return out


def _saliency(work: np.ndarray) -> np.ndarray:
    """OpenCV's fine-grained static saliency, 0..1 (zeros where the contrib module is missing)."""
    try:
        sal = cv2.saliency.StaticSaliencyFineGrained_create()  # type: ignore[attr-defined]
        ok, m = sal.computeSaliency(cv2.cvtColor(work, cv2.COLOR_RGB2BGR))
    except (AttributeError, cv2.error):
        return np.zeros(work.shape[:2], np.float32)
    if not ok:
        return np.zeros(work.shape[:2], np.float32)
    m = cv2.GaussianBlur(np.asarray(m, np.float32), (0, 0), 2.0)
    top = float(np.quantile(m, 0.995)) + 1e-6
    return np.clip(m / top, 0.0, 1.0)


def _clean(fg: np.ndarray) -> np.ndarray:
    """Specks dropped (components under 10 % of the largest), pinholes (under 0.3 % of the product) filled."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.1 * areas.max()) + 1
    out = np.isin(labels, keep).astype(np.uint8)
    inv = 1 - out
    n2, lab2, st2, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = fg.shape
    limit = 0.003 * float(out.sum())
    for i in range(1, n2):
        x, y, bw, bh, area = st2[i]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches and area <= limit:
            out[lab2 == i] = 1
    return out


def _refine_edges(rgb: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """Snap the upsampled mask to the photo's edges (guided filter), with a one-pixel anti-aliased rim."""
    H, W = soft.shape
    r = max(2, round(0.006 * max(H, W)))
    guide = rgb.astype(np.float32) * np.float32(1 / 255)
    try:
        g = cv2.ximgproc.guidedFilter(guide, soft, r, 1e-4)
    except (AttributeError, cv2.error):
        g = cv2.GaussianBlur(soft, (0, 0), 1.0)
    alpha = np.clip((g - 0.5) * 2.5 + 0.5, 0.0, 1.0)
    # far from the boundary the coarse mask is right; only the band around it is the filter's
    band = cv2.dilate((np.abs(soft - 0.5) < 0.5).astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    alpha = np.where(band, alpha, (soft > 0.5).astype(np.float32))
    return np.asarray(alpha, np.float32)


# ------------------------------------------------------------------------------------------ checks
def _check_width(mask: np.ndarray, scale: float, name: str) -> None:
    """Refuse a line or a speck: the widest point of the largest object under :data:`MIN_WIDTH_PX`."""
    m = mask.astype(np.uint8)
    dt = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3)
    width = 2.0 * float(dt.max()) * scale
    if width < MIN_WIDTH_PX:
        raise ProductTooThinError(
            f"{name}: the object is about {max(1, int(width))} px wide at its widest (a line, a wire, a speck); "
            f"a cut-out needs at least {MIN_WIDTH_PX} px: photograph it closer, or give a transparent PNG")


def _check(alpha: np.ndarray, name: str, source: str) -> tuple[int, int, int, int]:
    """The cut-out's box, after refusing an empty, full-frame or too thin one."""
    solid = alpha > 0.5
    if not solid.any():
        what = "its alpha is transparent everywhere" if source == "alpha" else "nothing stands out"
        raise NoProductFoundError(f"{name}: no product in the photo ({what})")
    cover = float(solid.mean())
    h, w = solid.shape
    sides = sum(float(edge.mean()) > 0.5 for edge in (solid[0], solid[-1], solid[:, 0], solid[:, -1]))
    if cover > MAX_COVER or sides >= 3:
        raise ProductFillsFrameError(
            f"{name}: the product fills the whole frame ({cover:.0%} of it"
            + (f", reaching {sides} of its edges" if sides >= 3 else "")
            + "): there is no background to cut it from, and nothing to place it with. Give a photo with some "
            "margin around the product, or a transparent PNG")
    _check_width(solid, 1.0, name)
    ys, xs = np.nonzero(solid)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _faces(rgb: np.ndarray, detector: Any) -> list[tuple[int, int, int, int]]:
    """Face boxes in the photo (dlib's detector through the identity encoder), largest first."""
    if detector is None:
        from ..encoders.identity import IdentityEncoder

        detector = IdentityEncoder(min_face_px=40)
    faces = detector.detect(rgb)
    return [tuple(int(v) for v in f.box) for f in faces]  # type: ignore[misc]


def _defringe(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The product's own colour pushed outward into its soft rim (normalised convolution from the solid
    interior), so the background's colour in edge pixels does not come along as a halo."""
    solid = (alpha > 0.97).astype(np.float32)
    rim = (alpha > 0.0) & (alpha <= 0.97)
    if not rim.any() or not solid.any():
        return rgb
    f = rgb.astype(np.float32)
    num = cv2.GaussianBlur(f * solid[..., None], (0, 0), 2.0)
    den = cv2.GaussianBlur(solid, (0, 0), 2.0)[..., None]
    inner = num / np.maximum(den, 1e-4)
    ok = (den[..., 0] > 0.02) & rim
    out = f.copy()
    out[ok] = inner[ok]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)

