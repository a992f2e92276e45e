"""The composite's first two steps: the person's matte refined, and their colour freed of the old background.

Separate from :mod:`.compositing` because matting is a problem of its own (where the person ends), read
apart from the light and colour that follow; :func:`~.compositing.composite` calls these in order.

1. **matte** (:func:`refine_alpha`, :func:`drop_islands`, :func:`skin_near_face`): where the segmenter
   hesitated (its soft zone, thin slots of background it filled, a band at its edge) a local two-colour
   model decides: foreground and old-background colours from normalised box blurs of the sure pixels
   around, alpha from the projection of the pixel on the line between them, trusted as far as the two
   colours differ; two rounds, the second taking its sure pixels from the first. It adds alpha only next
   to the person, takes less away where the mask was nearly sure and never takes away skin like the
   face's around the head. Where colour cannot tell, the soft zone is narrowed (doubt is not
   transparency: no smoky rims); stray islands far from the person go; then a one-pixel feather.
2. **decontaminate** (:func:`foreground`): the foreground colour at soft pixels is re-estimated with
   blur-fusion (Forte & Pitié 2021, "Approximate fast foreground colour estimation"), which pushes the
   old background out, so hair does not carry a halo of the selfie's background into the scene.
"""

from __future__ import annotations

import cv2
import numpy as np

from .arrays import low, up


def _local_colour(img: np.ndarray, w: np.ndarray, r: int) -> np.ndarray:
    """The local mean colour of ``img`` where ``w``: box-filter normalised convolution over a
    ``r`` window, falling back to 4x and 16x wider ones where the smaller hold none of ``w``."""
    h, wd = w.shape
    both = cv2.merge([img[..., 0] * w, img[..., 1] * w, img[..., 2] * w, w])  # 4 channels: one pass each
    acc = cv2.blur(both, (r, r))
    for k, eps in ((4, 0.02), (16, 4e-4)):  # the wide windows at 1/k resolution (they are smooth)
        small = cv2.resize(both, (max(1, wd // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        acc = cv2.scaleAdd(up(cv2.blur(small, (r, r)), wd, h), eps, acc)
    return np.asarray(acc[..., :3] / np.maximum(acc[..., 3:], 1e-7), np.float32)


def refine_alpha(im: np.ndarray, a: np.ndarray, protect: np.ndarray | None = None) -> np.ndarray:
    """Alpha correction (to add) where the mask is unsure, at the working resolution of ``im``.

    Near the mask's edge (and in thin slots the mask fills), a local two-colour model: foreground
    and old-background colours from normalised box blurs of the sure pixels; alpha from the
    projection of each pixel on the line between them, trusted as far as the two colours differ.
    Elsewhere, and where colour cannot tell, the soft transition is narrowed (0.35..0.75 -> 0..1,
    smoothstep).
    """
    h, w = a.shape
    r = max(3, round(0.025 * max(h, w)))
    k = np.ones((2 * (r // 2) + 1,) * 2, np.uint8)
    hard = (a > 0.5).astype(np.float32)
    near = cv2.GaussianBlur(np.asarray(cv2.dilate(hard, k), np.float32), (0, 0), r / 4)  # within r/2 of it
    band = cv2.GaussianBlur(np.asarray(cv2.dilate(hard, k) - cv2.erode(hard, k), np.float32), (0, 0), r / 4)
    band = np.maximum(band, np.clip(np.minimum(a, 1 - a) / 0.02, 0.0, 1.0))  # and wherever the mask is soft
    # a wide soft zone is the segmenter's doubt, not transparency: where colour cannot decide either
    # (dark hair on a dark background), narrow the transition around 0.55 rather than keep a smoky rim
    sharp = np.clip((a - 0.35) / 0.4, 0.0, 1.0)
    sharp = sharp * sharp * (3 - 2 * sharp)
    ones = np.ones((1, 3), np.float32)
    # the two colour models are smooth: made at half resolution
    hw2, hh2 = max(1, w // 2), max(1, h // 2)
    im2 = cv2.resize(im, (hw2, hh2), interpolation=cv2.INTER_AREA)
    k2 = np.ones((r // 2 * 2 + 1,) * 2, np.uint8) if r >= 4 else k
    cur = a
    for _ in range(2):  # the second round takes its sure pixels from the first round's matte
        c2 = cv2.resize(cur, (hw2, hh2), interpolation=cv2.INTER_AREA)
        sure_f = cv2.erode((c2 > 0.95).astype(np.uint8), k2).astype(np.float32)
        sure_b = cv2.erode((c2 < 0.05).astype(np.uint8), k2).astype(np.float32)
        fg = up(_local_colour(im2, sure_f, max(3, r // 2)), w, h)
        bg = up(_local_colour(im2, sure_b, max(3, r // 2)), w, h)
        d = fg - bg
        den = cv2.transform(d * d, ones)
        proj = cv2.transform((im - bg) * d, ones) / np.maximum(den, 1e-4)
        # the foreground's own texture scatters around its mean: only clear evidence moves alpha
        proj = np.clip((proj - 0.1) / 0.8, 0.0, 1.0)
        conf = np.clip((np.sqrt(den) - 0.12) / 0.2, 0.0, 1.0)
        cur = sharp + (band * conf) * (proj - sharp)
    delta = cur - a
    # the colour model only arbitrates where the segmenter hesitated: it adds only close to the
    # person and where the mask is not near 0 (the rest of a pale suit the segmenter left out would
    # come back as a floating scrap), and takes less away where the mask is near 1 (a bald head on
    # a pale wall reads as wall), nothing on ``protect``
    grow = np.clip(a / 0.1, 0.0, 1.0) * near
    keep = np.clip((1.0 - a) / 0.05, 0.0, 1.0)
    if protect is not None:
        keep *= 1.0 - protect
    return np.asarray(delta * np.where(delta < 0, keep, grow), np.float32)


def drop_islands(a: np.ndarray) -> np.ndarray:
    """Alpha with the segmenter's stray islands removed: only parts of the matte that are, or are
    near, a piece at least 2 % the size of the largest stay (bits of furniture, a hand-held object
    half taken for the person, floating semi-transparent specks)."""
    hard = (a > 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(hard, connectivity=8)
    if n <= 1:
        return a
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = np.flatnonzero(areas >= 0.02 * areas.max()) + 1
    core = np.isin(labels, big).astype(np.uint8) if n > 2 else hard
    r = max(3, round(0.02 * max(a.shape)))
    keep = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return np.asarray(a * cv2.GaussianBlur(keep.astype(np.float32), (0, 0), r / 2), np.float32)


def skin_near_face(img: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """How much each pixel around the head looks like the face's skin (0..1): what the matte must
    not take away (forehead, temples, a bald head, ears), however close to the old background."""
    h, w = img.shape[:2]
    out: np.ndarray = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = box
    fw, fh = x1 - x0, y1 - y0
    cheeks = img[int(y0 + 0.3 * fh) : int(y1 - 0.2 * fh), int(x0 + 0.2 * fw) : int(x1 - 0.2 * fw)]
    if cheeks.size < 30:
        return out
    # the head: an ellipse around the face box, raised over the forehead; worked on in its bounds only
    hx0, hy0, hx1, hy1 = x0 - 0.5 * fh, y0 - 0.8 * fh, x1 + 0.5 * fh, y1 + 0.3 * fh
    lf, t = max(0, int(hx0)), max(0, int(hy0))
    r, b = min(w, int(np.ceil(hx1)) + 1), min(h, int(np.ceil(hy1)) + 1)
    if r <= lf or b <= t:
        return out
    pts = cv2.cvtColor(np.ascontiguousarray(cheeks), cv2.COLOR_RGB2Lab)[..., 1:].reshape(-1, 2).astype(np.float64)
    mu = pts.mean(0)
    inv = np.linalg.inv(np.cov(pts.T) + np.eye(2) * 4.0)
    d = cv2.cvtColor(np.ascontiguousarray(img[t:b, lf:r]), cv2.COLOR_RGB2Lab)[..., 1:] - mu.astype(np.float32)
    m2 = d[..., 0] ** 2 * inv[0, 0] + 2 * d[..., 0] * d[..., 1] * inv[0, 1] + d[..., 1] ** 2 * inv[1, 1]
    head: np.ndarray = np.zeros((b - t, r - lf), np.float32)
    centre = (round((hx0 + hx1) / 2 - lf), round((hy0 + hy1) / 2 - t))
    cv2.ellipse(head, centre, (max(1, round((hx1 - hx0) / 2)), max(1, round((hy1 - hy0) / 2))), 0, 0, 360, 1.0, -1)
    head = cv2.GaussianBlur(head, (0, 0), max(1.0, 0.1 * fh))
    out[t:b, lf:r] = np.exp(-0.5 * m2 / 2.5**2) * head
    return out


def _box_fusion(img: np.ndarray, f: np.ndarray, b: np.ndarray, a: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """One blur-fusion step (Forte & Pitié 2021): blurred foreground and background estimates."""
    ba = cv2.blur(a, (r, r))
    bf = cv2.blur(f * a[..., None], (r, r)) / (ba[..., None] + 1e-5)
    bb = cv2.blur(b * (1 - a)[..., None], (r, r)) / ((1 - ba)[..., None] + 1e-5)
    return bf, bb


def _fuse(img: np.ndarray, a: np.ndarray, bf: np.ndarray, bb: np.ndarray) -> np.ndarray:
    a3 = a[..., None]
    return np.clip(bf + a3 * (img - a3 * bf - (1 - a3) * bb), 0.0, 1.0)


def foreground(person: np.ndarray, alpha: np.ndarray, im_w: np.ndarray, a_w: np.ndarray, s: float) -> np.ndarray:
    """The person's colour with the old background pushed out of soft pixels (blur-fusion, two scales).

    The blurred estimates are made at reduced resolution (``im_w``/``a_w``, the working copies) and
    sampled at the soft pixels of the full-resolution ``alpha`` only; elsewhere the colour is the
    photo's (alpha 1: exactly; alpha 0: it does not show).
    """
    H, W = alpha.shape
    hw, ww = a_w.shape
    coarse = low(im_w, 96)
    a_c = cv2.resize(a_w, (coarse.shape[1], coarse.shape[0]), interpolation=cv2.INTER_AREA)
    r1 = 2 * round(0.045 * max(a_c.shape)) + 1
    bf, bb = _box_fusion(coarse, coarse, coarse, a_c, r1)
    bf, bb = up(bf, ww, hw), up(bb, ww, hw)
    f1 = _fuse(im_w, a_w, bf, bb)
    r2 = 2 * max(1, round(0.003 * max(hw, ww))) + 1
    bf, bb = _box_fusion(im_w, f1, bb, a_w, r2)
    out = person.copy()
    ys, xs = np.nonzero((alpha > 0.004) & (alpha < 0.996))
    if len(ys) == 0:
        return out
    n = len(ys)
    cols = 512
    pad = -n % cols  # remap wants a 2-D map under 32767 rows: fold the pixel list into rows of 512
    mx = np.pad((xs.astype(np.float32) + 0.5) * (ww / W) - 0.5, (0, pad)).reshape(-1, cols)
    my = np.pad((ys.astype(np.float32) + 0.5) * (hw / H) - 0.5, (0, pad)).reshape(-1, cols)
    sbf = cv2.remap(bf, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:n]
    sbb = cv2.remap(bb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:n]
    px = person[ys, xs]
    a = alpha[ys, xs][:, None]
    est = np.clip(sbf + a * (px - a * sbf - (1 - a) * sbb), 0.0, 1.0)
    out[ys, xs] = px + np.float32(s) * (est - px)
    return out
