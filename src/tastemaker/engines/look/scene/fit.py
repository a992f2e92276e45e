"""The scene's crop (:func:`fit_scene`): which part of the pin stands behind the person, at the output size.

Separate because it is its own small search, done before and independent of the composite.

A scan's border or a painting's frame edge is left out first (the strongest edge running all
along a side within its outer 6 %). The scene then covers the frame (scaled, never stretched or
mirrored), zoomed in more for tighter shots (a closer camera sees less of the background). Among
candidate crops the one with the least detail where the person will stand wins: gradient energy
plus frequency-tuned colour saliency (Achanta et al. 2009) under the person's mask (or a
centre-bottom silhouette), with a mild pull to the centre.
"""

from __future__ import annotations

import cv2
import numpy as np

from .arrays import low, to01


def _detail_map(img01: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(img01, cv2.COLOR_RGB2Lab)
    L = lab[..., 0]
    gx = cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3)
    grad = cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), 1.5)
    blur = cv2.GaussianBlur(lab, (0, 0), 1.5)
    sal = np.linalg.norm(blur - lab.reshape(-1, 3).mean(0), axis=-1)  # Achanta et al. 2009
    return grad / (float(grad.mean()) + 1e-3) + 0.5 * sal / (float(sal.mean()) + 1e-3)


def _trim_border(img: np.ndarray) -> tuple[int, int, int, int]:
    """The picture inside a scan's border or frame: (x0, y0, x1, y1) in ``img`` pixels.

    On each side, within the outer 6 %, the line with the strongest edge across it, all along its
    length (the 25th percentile along the line), is a border when it stands out (4x the picture's
    median line, and clearly an edge); the cut goes just inside it. No border: the whole image.
    """
    H, W = img.shape[:2]
    small = to01(low(img, 256))
    g = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    gx = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3))[h // 10 : h - h // 10]
    gy = np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))[:, w // 10 : w - w // 10]
    # a border's edge runs along the whole side: take a low percentile along each line, not its mean
    cols, rows = np.percentile(gx, 25, axis=0), np.percentile(gy, 25, axis=1)
    bw, bh = max(2, round(0.06 * w)), max(2, round(0.06 * h))

    def cut(profile: np.ndarray, n: int, band: int) -> tuple[int, int]:
        floor = max(4.0 * float(np.median(profile)), 0.1)
        lo_i = int(np.argmax(profile[:band]))
        hi_i = n - band + int(np.argmax(profile[n - band :]))
        lo = lo_i + 2 if profile[lo_i] > floor else 0
        hi = hi_i - 1 if profile[hi_i] > floor else n
        return lo, hi

    x0, x1 = cut(cols, w, bw)
    y0, y1 = cut(rows, h, bh)
    sx, sy = W / w, H / h
    return round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)


def _default_silhouette(w: int, h: int) -> np.ndarray:
    """Where a framed person usually is: a head-and-shoulders shape, centre, down to the bottom."""
    m: np.ndarray = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (w // 2, int(0.38 * h)), (max(1, int(0.12 * w)), max(1, int(0.16 * h))), 0, 0, 360, 1.0, -1)
    pts = np.array([[0.2 * w, h], [0.32 * w, 0.62 * h], [0.68 * w, 0.62 * h], [0.8 * w, h]], np.int32)
    cv2.fillPoly(m, [pts], 1.0)
    return m


def scene_zoom(person_scale_hint: float) -> float:
    """How much tighter than "cover" the scene is cropped for a face this big in the frame."""
    return float(np.clip(1.0 + 2.2 * (person_scale_hint - 0.11), 1.0, 1.8))


def fit_scene(
    scene_rgb: np.ndarray,
    out_w: int,
    out_h: int,
    *,
    person_scale_hint: float = 0.26,
    person_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Crop and scale the scene to the output frame; float32 RGB 0..1 of shape (out_h, out_w, 3).

    ``person_scale_hint``: the face's height over the frame's (``compose.FRAMING``: about 0.42 for a
    closeup, 0.26 portrait, 0.17 half, 0.11 full); tighter shots crop tighter (:func:`scene_zoom`).
    ``person_mask``: where the person will stand (any size, resized to the frame); without it, a
    centre head-and-shoulders silhouette. The crop keeps the aspect (no distortion) and orientation,
    and leaves out a scan's border or a painting's frame edge (:func:`_trim_border`).
    """
    bx0, by0, bx1, by1 = _trim_border(scene_rgb)
    img = np.ascontiguousarray(scene_rgb[by0:by1, bx0:bx1])
    H, W = img.shape[:2]
    cover = max(out_w / W, out_h / H)
    z = scene_zoom(person_scale_hint)
    cw, ch = min(W, out_w / (cover * z)), min(H, out_h / (cover * z))
    small = low(img, 96)
    small_s = small.shape[1] / W
    detail = _detail_map(to01(small))
    sil = _default_silhouette(64, max(1, round(64 * out_h / out_w))) if person_mask is None else person_mask
    sil = low(np.asarray(sil, np.float32), 64)
    best, best_cost = (0.0, 0.0), np.inf
    xs = np.linspace(0.0, W - cw, 9) if W - cw >= 1 else np.array([(W - cw) / 2])
    ys = np.linspace(0.0, H - ch, 7) if H - ch >= 1 else np.array([(H - ch) / 2])
    for y0 in ys:
        for x0 in xs:
            a, b = int(x0 * small_s), int(y0 * small_s)
            win = detail[b : b + max(1, int(ch * small_s)), a : a + max(1, int(cw * small_s))]
            m = cv2.resize(sil, (win.shape[1], win.shape[0]), interpolation=cv2.INTER_AREA)
            cost = float((win * m).sum() / (m.sum() + 1e-6))
            off_x = (x0 + cw / 2 - W / 2) / W
            off_y = (y0 + ch / 2 - H / 2) / H
            cost += 1.5 * (off_x * off_x + off_y * off_y)
            if cost < best_cost:
                best, best_cost = (x0, y0), cost
    x0, y0 = best
    # the crop, area-averaged when shrinking, then placed with sub-pixel accuracy
    l0, t0 = int(np.floor(x0)), int(np.floor(y0))
    r0, b0 = min(W, int(np.ceil(x0 + cw)) + 1), min(H, int(np.ceil(y0 + ch)) + 1)
    crop = img[t0:b0, l0:r0]
    fx, fy = out_w / cw, out_h / ch
    if fx < 1.0:
        pw_, ph_ = max(1, round(crop.shape[1] * fx)), max(1, round(crop.shape[0] * fy))
        fx2, fy2 = pw_ / crop.shape[1], ph_ / crop.shape[0]
        crop = cv2.resize(crop, (pw_, ph_), interpolation=cv2.INTER_AREA)
        fx, fy = fx / fx2, fy / fy2
        ox, oy = (x0 - l0) * fx2, (y0 - t0) * fy2
    else:
        ox, oy = x0 - l0, y0 - t0
    m = np.array([[fx, 0.0, -ox * fx], [0.0, fy, -oy * fy]], np.float32)
    out = cv2.warpAffine(crop, m, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(to01(out), 0.0, 1.0)
