"""The composite (:func:`composite`): the framed person put into the fitted scene, every step scaled by ``strength``.

Separate from the light estimates and the crop, which the engine computes before; the matte's two steps
live in :mod:`.matte`. With ``strength`` 0 it is the plain alpha composite.

1-2. **matte** and **decontaminate**: see :mod:`.matte`.
3. **harmonise**: the person's Lab lightness mean moves part of the way toward the scene's around
   where the person stands, as an exposure (a gain in linear light, so black stays black), and
   its spread a little toward the scene's, around the new mean (Reinhard et al. 2001 statistics,
   partial and clamped). Colour follows the change of illuminant by a partial von Kries
   adaptation (per-channel gains in linear RGB from the two light colours), shrunk until the
   skin's hue stays in the range of skin, within a few degrees of the original and keeps its
   saturation: skin never turns green, grey or purple. Clothes' colours are not "the light", so
   the person's mean a*/b* is deliberately not matched to the scene's.
4. **relight**: normals from the mask (an inflated silhouette from its distance transform, in the
   manner of Johnston 2002, "Lumo") with the face mesh's normals on the face (``face``) or an
   ellipsoid on ``face_box``; the shading ratio ``E_scene(n) / E_person(n)`` of the two SH fits,
   normalised to keep the face's mean, clamped, at low resolution (it is smooth), multiplies the
   person.
5. **edges**: a gradient-domain (Poisson, Pérez et al. 2003) correction for the low-frequency colour
   offset along the seam — Laplace's equation solved at low resolution by Jacobi iterations from
   a normalised-convolution start, applied only in a thin band inside the edge — plus a narrow
   "light wrap" of the blurred scene onto the person's rim, as compositors do.
6. **contact shadow**: the mask, pushed away from the scene's light and down, blurred wide and
   faint, multiplies the scene behind and below the person.
7. **grain**: when the scene is noisier than the selfie, seeded Gaussian grain makes up the
   difference on the person (a clean cut-out on a grainy picture is what gives composites away).

Heavy steps run on copies at <= 512 px (matte) and <= 160 px (statistics, normals, fields); the
full-resolution work is a handful of fused passes: about 0.1 s at 1024 x 1024 on one core.
"""

from __future__ import annotations

import cv2
import numpy as np

from .arrays import GAMMA, LOW_SIDE, linear_luma, to01, up
from .light import NEUTRAL, FaceGeometry, SceneLight, ellipsoid_light, ellipsoid_normals, illuminant, scene_light
from .matte import drop_islands, foreground, refine_alpha, skin_near_face

#: Relight ratio bounds (linear), before ``strength`` scales it.
RELIGHT_MIN, RELIGHT_MAX = 0.72, 1.3
#: Fraction of the relight ratio applied at strength 1: subtle on purpose.
RELIGHT_GAIN = 0.7
#: Partial Lab lightness transfer: mean, std exponent; largest mean shift in L* units.
L_MEAN_W, L_STD_W, L_MAX_SHIFT = 0.3, 0.3, 8.0
#: Partial von Kries adaptation toward the scene's illuminant.
ILLUM_W = 0.55
#: Skin hue (Lab, degrees) must stay inside this range and move by at most SKIN_HUE_STEP.
SKIN_HUE_RANGE, SKIN_HUE_STEP = (12.0, 80.0), 6.0
#: Contact shadow opacity at strength 1 (fraction of light removed at its darkest).
SHADOW_OPACITY = 0.38
#: How far the shadow falls from the person (fraction of the frame): a wall a step behind them.
SHADOW_OFFSET = 0.06
#: Poisson seam correction (fraction, band width as a fraction of the frame) and light wrap.
SEAM_W, SEAM_BAND = 0.15, 0.02
WRAP_W, WRAP_BAND = 0.25, 0.008


def _norm_blur(img: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``img`` weighted by ``w`` (normalised convolution)."""
    ww = w[..., None] if img.ndim == 3 else w
    num = cv2.GaussianBlur(img * ww, (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    den = den[..., None] if img.ndim == 3 else den
    return num / np.maximum(den, 1e-4)


def _splat_mesh(shape: tuple[int, int], face: FaceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's normals spread over the pixels it covers (h, w, 3) and its soft coverage (h, w)."""
    h, w = shape
    pts = face.points.astype(np.float64)
    xs = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    acc = np.zeros((h, w, 3), np.float32)
    cnt = np.zeros((h, w), np.float32)
    np.add.at(acc, (ys, xs), face.normals.astype(np.float32))
    np.add.at(cnt, (ys, xs), 1.0)
    width = float(np.ptp(pts[:, 0])) or 1.0
    sigma = max(0.7, width / 20)
    acc_b = cv2.GaussianBlur(acc, (0, 0), sigma)
    cnt_b = cv2.GaussianBlur(cnt, (0, 0), sigma)
    n = acc_b / np.maximum(np.linalg.norm(acc_b, axis=-1, keepdims=True), 1e-6)
    hull: np.ndarray = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(pts).astype(np.int32)), 1.0)
    cover = cv2.GaussianBlur(cv2.erode(hull, np.ones((3, 3), np.uint8)), (0, 0), sigma)
    return n * (cnt_b > 1e-4)[..., None], np.asarray(cover * (cnt_b > 1e-4), np.float32)


def _inflate_normals(
    mask: np.ndarray, face_box: tuple[float, float, float, float] | None, face: FaceGeometry | None = None
) -> np.ndarray:
    """Normals (h, w, 3) of the mask inflated into a rounded body; on the face, the mesh's normals
    when given, else an ellipsoid on the face box."""
    h, w = mask.shape
    hard = (mask > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(hard, cv2.DIST_L2, 3)
    R = max(2.0, float(np.quantile(dist[hard > 0], 0.9)) if hard.any() else 2.0)
    d = np.minimum(dist / R, 1.0)
    height = R * np.sqrt(np.clip(1.0 - (1.0 - d) ** 2, 0.0, 1.0))
    height = cv2.GaussianBlur(height, (0, 0), max(1.0, 0.01 * max(h, w)))
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8
    n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    if face_box is not None:
        x0, y0, x1, y1 = face_box
        fh = y1 - y0
        fn, inside = ellipsoid_normals((h, w), (x0 - 0.05 * fh, y0 - 0.3 * fh, x1 + 0.05 * fh, y1 + 0.05 * fh))
        wf = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(1.0, 0.08 * fh))[..., None]
        n = n * (1 - wf) + fn * wf
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    if face is not None:
        mn, cover = _splat_mesh((h, w), face)
        n = n * (1 - cover[..., None]) + mn * cover[..., None]
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    return n.astype(np.float32)


def _membrane(diff: np.ndarray, inside: np.ndarray, iters: int = 40) -> np.ndarray:
    """Harmonic interpolation into ``inside`` of the values ``diff`` has on its boundary (Jacobi)."""
    k = np.ones((3, 3), np.uint8)
    inner = cv2.erode(inside, k)
    ring = (inside > 0) & (inner == 0)
    known = ring.astype(np.float32)
    # start from a normalised convolution of the boundary values (already close to harmonic)
    sig = 0.06 * max(inside.shape)
    f = _norm_blur(diff * known[..., None], known, sig) if known.any() else np.zeros_like(diff)
    f[ring] = diff[ring]
    avg = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
    free = (inner > 0)[..., None]
    for _ in range(iters):
        f = np.where(free, cv2.filter2D(f, -1, avg, borderType=cv2.BORDER_REPLICATE), f)
    return f * (inside > 0)[..., None]


def _noise_sigma(img: np.ndarray, weight: np.ndarray) -> float:
    """Noise level (0..1 units) where ``weight`` > 0.5, from the median absolute response to
    Immerkær's (1996) Laplacian-difference kernel, over a strided sample of pixels."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = np.abs(cv2.filter2D(g, -1, k)).reshape(-1)[::7]
    r = r[weight.reshape(-1)[::7] > 0.5]
    if r.size < 100:
        return 0.0
    return float(np.median(r)) * np.sqrt(np.pi / 2) / 6.0


def _lab_mean_std(lab: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = w.reshape(-1).astype(np.float64)
    x = lab.reshape(-1, 3).astype(np.float64)
    sw = max(float(w.sum()), 1e-6)
    mu = (w[:, None] * x).sum(0) / sw
    sd = np.sqrt((w[:, None] * (x - mu) ** 2).sum(0) / sw)
    return mu, sd


def _lab_y(L: np.ndarray | float) -> np.ndarray:
    """CIE L* -> relative luminance Y."""
    L = np.asarray(L, np.float64)
    return np.where(L > 8.0, ((L + 16.0) / 116.0) ** 3, L / 903.3)


def _y_lab(Y: np.ndarray) -> np.ndarray:
    """Relative luminance Y -> CIE L*."""
    Y = np.asarray(Y, np.float64)
    return np.where(Y > 0.008856, 116.0 * np.cbrt(Y) - 16.0, 903.3 * Y)


def _lab1(rgb_lin: np.ndarray) -> np.ndarray:
    srgb = np.power(np.clip(rgb_lin, 0.0, 1.0), 1 / GAMMA).astype(np.float32).reshape(1, 1, 3)
    return np.asarray(cv2.cvtColor(srgb, cv2.COLOR_RGB2Lab)[0, 0], np.float64)


def _hue(lab: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(lab[2], lab[1])))


def _skin_safe_gains(gains_full: np.ndarray, skin_lin: np.ndarray | None) -> np.ndarray:
    """Shrink a von Kries adaptation until the skin's hue stays plausible (bisection on its power)."""
    if skin_lin is None:
        return gains_full
    base = _lab1(skin_lin)
    h0 = _hue(base)
    lo_h, hi_h = SKIN_HUE_RANGE

    def ok(t: float) -> bool:
        lab = _lab1(skin_lin * gains_full**t)
        h = _hue(lab)
        chroma_ok = np.hypot(lab[1], lab[2]) >= 0.8 * np.hypot(base[1], base[2])
        in_range = lo_h <= h <= hi_h or not lo_h <= h0 <= hi_h  # unusual skin hue to start with: hold it
        return bool(abs(h - h0) <= SKIN_HUE_STEP and chroma_ok and (in_range or abs(h - h0) < 2.0))

    if ok(1.0):
        return gains_full
    lo, hi = 0.0, 1.0
    for _ in range(8):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return np.asarray(gains_full**lo, np.float64)


def composite(
    person_rgb: np.ndarray,
    person_mask: np.ndarray,
    face_box: tuple[float, float, float, float] | None,
    scene_rgb: np.ndarray,
    *,
    strength: float = 1.0,
    seed: int = 0,
    light: tuple[SceneLight, SceneLight] | None = None,
    face: FaceGeometry | None = None,
) -> np.ndarray:
    """The person composited into the scene; float32 RGB 0..1, the shape of ``person_rgb``.

    ``person_rgb``: float32 (H, W, 3) 0..1, the selfie framed at the output size (its old background
    included); ``person_mask``: (H, W) 0..1; ``face_box``: (x0, y0, x1, y1) in output pixels, or None;
    ``scene_rgb``: float32 (H, W, 3) 0..1, already fitted (:func:`fit_scene`); ``strength``: 0 is the
    plain alpha composite, 1 the full treatment (see the module docstring); ``seed``: the grain's;
    ``light``: (person's, scene's) light, e.g. from :func:`person_light` and :func:`scene_light`;
    estimated from the two images when None (the person's then from an ellipsoid on ``face_box``);
    ``face``: the face mesh in output pixels (``face_geometry(...).transformed(frame.matrix())``), for
    the relight's normals on the face (an ellipsoid on ``face_box`` without it).
    """
    person = np.ascontiguousarray(to01(person_rgb))
    scene = np.ascontiguousarray(to01(scene_rgb))
    mask = np.clip(np.asarray(person_mask, np.float32), 0.0, 1.0)
    H, W = mask.shape
    if person.shape[:2] != (H, W) or scene.shape[:2] != (H, W):
        raise ValueError(f"person {person.shape[:2]}, mask {(H, W)} and scene {scene.shape[:2]} must match")
    s = float(np.clip(strength, 0.0, 1.0))
    if s == 0.0 or not (mask > 0.5).any():
        a3 = mask[..., None]
        return np.asarray(np.clip(person * a3 + scene * (1 - a3), 0.0, 1.0), np.float32)
    side = max(H, W)

    # ---- working copies: <= 512 px for the matte, LOW_SIDE for statistics and smooth fields
    ws = min(1.0, 512 / side)
    ww, wh = max(1, round(W * ws)), max(1, round(H * ws))
    im_w = cv2.resize(person, (ww, wh), interpolation=cv2.INTER_AREA) if ws < 1 else person
    a_w = cv2.resize(mask, (ww, wh), interpolation=cv2.INTER_AREA) if ws < 1 else mask

    # ---- 1. matte: refined where unsure, feathered by about a pixel
    protect = None if face_box is None else skin_near_face(im_w, tuple(v * ws for v in face_box))
    refined = drop_islands(np.clip(a_w + refine_alpha(im_w, a_w, protect), 0.0, 1.0))
    delta = (refined - a_w) * np.float32(s)
    a_w = np.clip(a_w + delta, 0.0, 1.0)
    alpha = np.clip(
        cv2.GaussianBlur(mask + (up(delta, W, H) if ws < 1 else delta), (0, 0), max(0.5, s * 0.0009 * side)), 0.0, 1.0
    )
    # ---- 2. foreground colour: the old background pushed out of the soft pixels
    fg = foreground(person, alpha, im_w, a_w, s)

    lw_s = min(1.0, LOW_SIDE / side)
    lw, lh = max(1, round(W * lw_s)), max(1, round(H * lw_s))
    m_low = cv2.resize(a_w, (lw, lh), interpolation=cv2.INTER_AREA)
    p_low = cv2.resize(im_w, (lw, lh), interpolation=cv2.INTER_AREA)
    s_low = cv2.resize(scene, (lw, lh), interpolation=cv2.INTER_AREA)
    pw = (m_low > 0.5).astype(np.float32)
    fb_low = (
        None
        if face_box is None
        else (face_box[0] * lw / W, face_box[1] * lh / H, face_box[2] * lw / W, face_box[3] * lh / H)
    )
    lab_p = cv2.cvtColor(p_low, cv2.COLOR_RGB2Lab)
    lab_s = cv2.cvtColor(s_low, cv2.COLOR_RGB2Lab)

    if light is None:
        pl = NEUTRAL
        if fb_low is not None:
            pl = ellipsoid_light(linear_luma(p_low), lab_p, fb_low, m_low, illuminant(im_w))
        light = (pl, scene_light(s_low))
    p_light, s_light = light

    # ---- 3. harmonise: Lab lightness statistics + partial von Kries toward the scene's illuminant
    around = cv2.GaussianBlur(pw, (0, 0), 0.18 * max(lw, lh))  # the scene near where the person stands
    mu_p, sd_p = _lab_mean_std(lab_p, pw)
    mu_s, sd_s = _lab_mean_std(lab_s, around)
    d_mu = float(np.clip(L_MEAN_W * s * (mu_s[0] - mu_p[0]), -L_MAX_SHIFT, L_MAX_SHIFT))
    ratio = float(np.clip((sd_s[0] / max(sd_p[0], 1.0)) ** (L_STD_W * s), 0.92, 1.12))
    skin_lin = None
    if fb_low is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in fb_low)
        cx0, cx1 = x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4
        cy0, cy1 = y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4
        patch = p_low[max(0, cy0) : max(0, cy1), max(0, cx0) : max(0, cx1)]
        if patch.size:
            skin_lin = np.power(np.median(patch.reshape(-1, 3), 0).astype(np.float64), GAMMA)
    gains = np.asarray(s_light.colour, np.float64) / np.maximum(np.asarray(p_light.colour, np.float64), 1e-3)
    gains = np.clip(gains, 0.5, 2.0) ** (ILLUM_W * s)
    gains /= float(gains @ np.array([0.2126, 0.7152, 0.0722]))
    gains = _skin_safe_gains(gains, skin_lin)
    g_enc = np.power(gains, 1 / GAMMA).astype(np.float32)
    # tone curve: an exposure (a gain in linear light, so black stays black) that moves the person's
    # mean L* by d_mu, then contrast around the new mean, faded out toward black; realised as a gain
    # on encoded luma where it is tame (keeps hue and saturation) and the rest as a neutral offset (a
    # large gain in deep shadows would only amplify the chroma of noise); 256 levels, as a look-up table
    v = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    L = cv2.cvtColor(np.repeat(v[:, None], 3, 1).reshape(1, -1, 3), cv2.COLOR_RGB2Lab)[0, :, 0].astype(np.float64)
    expo = _lab_y(mu_p[0] + d_mu) / max(_lab_y(mu_p[0]), 1e-6)
    L1 = _y_lab(np.minimum(_lab_y(L) * expo, 1.0))
    mu1 = mu_p[0] + d_mu
    L2 = L1 + (ratio - 1.0) * (L1 - mu1) * np.minimum(1.0, L1 / max(mu1, 1.0))
    v2 = np.interp(np.clip(L2, 0.0, 100.0), L, v)
    tone_gain = np.clip(v2 / np.maximum(v, 1e-3), 0.6, 1.6).astype(np.float32)
    tone_off = (v2 - v * tone_gain).astype(np.float32)

    # ---- 4. relight: shading ratio of the two SH fits on approximate normals
    face_low = None
    if face is not None:
        face_low = FaceGeometry(points=face.points * np.array([lw / W, lh / H], np.float32), normals=face.normals)
    normals = _inflate_normals(m_low, fb_low, face_low)
    rl = s_light.irradiance(normals) / np.maximum(p_light.irradiance(normals), 0.2)
    # exposure is the harmonisation's business: the ratio only moves light around the person, and
    # the face (what one looks at first) keeps its mean
    ref = pw
    if fb_low is not None:
        ref = np.zeros_like(pw)
        x0, y0, x1, y1 = (int(round(v)) for v in fb_low)
        ref[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 1.0
        ref *= pw
        if ref.sum() < 4:
            ref = pw
    rl /= max(float((rl * ref).sum() / max(float(ref.sum()), 1.0)), 1e-3)
    rl = np.clip(rl, RELIGHT_MIN, RELIGHT_MAX)
    rl = cv2.GaussianBlur((1.0 + (RELIGHT_GAIN * s) * (rl - 1.0)).astype(np.float32), (0, 0), 1.0)

    # ---- 5. seam: Poisson offset in a band + light wrap
    inside = (m_low > 0.5).astype(np.uint8)
    dist_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3) / max(lw, lh)
    pin = _norm_blur(p_low, pw, 2.0)
    sout = _norm_blur(s_low, 1 - pw, 2.0)
    ms = min(1.0, 96 / max(lw, lh))
    mw_, mh_ = max(1, round(lw * ms)), max(1, round(lh * ms))
    memb = _membrane(
        cv2.resize(sout - pin, (mw_, mh_), interpolation=cv2.INTER_AREA),
        (cv2.resize(m_low, (mw_, mh_), interpolation=cv2.INTER_AREA) > 0.5).astype(np.uint8),
    )
    off = up(memb, lw, lh) * (SEAM_W * s * np.exp(-dist_in / SEAM_BAND) * inside)[..., None]
    off = np.clip(off, -0.08, 0.08)
    wrap = (WRAP_W * s * np.exp(-dist_in / WRAP_BAND) * inside).astype(np.float32)
    wrap_bg = _norm_blur(s_low, 1 - pw, 0.015 * max(lw, lh) + 1.0)

    # ---- 6. contact shadow on the scene
    ld = np.asarray(s_light.direction, np.float64)
    push = np.array([-ld[0], max(0.35, -ld[1] + 0.35)])
    push = push / max(float(np.linalg.norm(push)), 1e-6) * SHADOW_OFFSET * max(lw, lh)
    shift = np.array([[1, 0, push[0]], [0, 1, push[1]]], np.float32)
    sh = cv2.warpAffine(pw, shift, (lw, lh), borderMode=cv2.BORDER_REPLICATE)
    sh = cv2.GaussianBlur(np.maximum(sh, pw), (0, 0), 0.04 * max(lw, lh))
    opacity = SHADOW_OPACITY * s * (0.6 + 0.6 * min(1.0, s_light.relative / 0.5))
    shade = 1.0 - np.clip(opacity * sh, 0.0, 0.6)

    # ---- full resolution, folded into as few passes as possible:
    # person' = (fg * g * tone_gain(luma) + g * tone_off(luma)) * relight * (1 - wrap) + offset + wrap * bg_blur
    # out     = person' * alpha + scene * shade * (1 - alpha)
    smooth = cv2.merge([np.power(rl, 1 / GAMMA) * (1 - wrap), shade.astype(np.float32)])
    smooth = up(smooth, W, H)
    add_low = (off * (1 - wrap)[..., None] + wrap[..., None] * wrap_bg).astype(np.float32)
    luma8 = cv2.convertScaleAbs(cv2.cvtColor(fg, cv2.COLOR_RGB2GRAY), alpha=255.0)
    rel_a = smooth[..., 0] * alpha
    k_mul = cv2.LUT(luma8, tone_gain) * rel_a
    k_add = cv2.LUT(luma8, tone_off) * rel_a
    out = cv2.transform(fg, np.diag(g_enc)) * k_mul[..., None]
    out += k_add[..., None] * g_enc
    out += up(add_low, W, H) * alpha[..., None]
    out += scene * (smooth[..., 1] * (1 - alpha))[..., None]
    # ---- 7. grain: make up the scene's extra noise on the person
    sig_s = _noise_sigma(scene, 1 - mask)
    sig_p = _noise_sigma(person, mask)
    extra = np.sqrt(max(sig_s**2 - sig_p**2, 0.0)) * s
    if extra > 0.002:
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((H, W), dtype=np.float32)
        out += (noise * (alpha * np.float32(extra)))[..., None]
    return np.asarray(np.clip(out, 0.0, 1.0, out=out), np.float32)
