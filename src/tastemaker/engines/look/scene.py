"""Scenes, "me in that place": the person from a selfie composited into a scene from their board.

Pure functions over NumPy arrays; no engine state. The engine frames the person at the output size
(``compose``), calls :func:`fit_scene` for the scene's crop and :func:`composite` for the picture.
Images are RGB; ``uint8`` where a function says so, otherwise ``float32`` in 0..1 (sRGB-encoded).

Light
    :func:`fit_sh` fits the first-order spherical-harmonic irradiance model ``E(n) = a0 + a . n``
    (the constant and the three linear SH terms; Ramamoorthi & Hanrahan 2001, "An efficient
    representation for irradiance environment maps", show irradiance is a low-pass function of the
    normal; the first order already holds most of its energy) by iteratively re-weighted least
    squares with Huber weights, so eyes left in by mistake, glasses, beard or hair do not pull it.
    ``a / |a|`` is the dominant light's direction, ``a0`` the ambient term, ``|a|`` its strength.

    :func:`person_light` samples the selfie's linear luminance at the 468 vertices of MediaPipe's
    face mesh (Kartynnik et al. 2019), with normals from the mesh's own triangles, minus eyes, brows,
    lips and vertices off the skin colour, divided by the median (a per-face albedo), and fits the
    model. Without a mesh it fits the same model on an ellipsoid standing in for the face.

    :func:`scene_light` has no geometry: it reads the picture's large-scale luminance. A plane fit to
    the luminance of a 64 px thumbnail gives the in-image direction the light comes from (brighter
    side), pulled a little toward the centroid of the brightest 3 %; the stronger the gradient, the
    more the light is taken to come from the side rather than from the camera. Its colour, like the
    selfie's, is the "shades of grey" illuminant estimate (Finlayson & Trezzi 2004, Minkowski p = 6).
    Limits: albedo and shading cannot be told apart in one picture (a white wall on the left reads as
    light from the left), back light reads as top or side light, and paintings have painted light.
    The estimate is only ever used for a subtle relight, clamped, never for hard shadows on the face.

Scene crop (:func:`fit_scene`)
    A scan's border or a painting's frame edge is left out first (the strongest edge running all
    along a side within its outer 6 %). The scene then covers the frame (scaled, never stretched or
    mirrored), zoomed in more for tighter shots (a closer camera sees less of the background). Among
    candidate crops the one with the least detail where the person will stand wins: gradient energy
    plus frequency-tuned colour saliency (Achanta et al. 2009) under the person's mask (or a
    centre-bottom silhouette), with a mild pull to the centre.

Composite (:func:`composite`), every step scaled by ``strength`` (0 is the plain alpha composite)
    1. **matte**: where the segmenter hesitated (its soft zone, thin slots of background it filled,
       a band at its edge) a local two-colour model decides: foreground and old-background colours
       from normalised box blurs of the sure pixels around, alpha from the projection of the pixel
       on the line between them, trusted as far as the two colours differ; two rounds, the second
       taking its sure pixels from the first. It adds alpha only next to the person, takes less away
       where the mask was nearly sure and never takes away skin like the face's around the head.
       Where colour cannot tell, the soft zone is narrowed (doubt is not transparency: no smoky
       rims); stray islands far from the person go; then a one-pixel feather.
    2. **decontaminate**: the foreground colour at soft pixels is re-estimated with blur-fusion
       (Forte & Pitié 2021, "Approximate fast foreground colour estimation"), which pushes the old
       background out, so hair does not carry a halo of the selfie's background into the scene.
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

Use (``frame`` from ``compose.frame_subject``; ``person``/``mask`` the selfie and its mask warped
with ``frame.matrix()``; ``box`` the face box in output pixels)::

    geo = face_geometry(selfie, face.landmarks)
    lights = (person_light(selfie, face.landmarks, selfie_mask, geometry=geo), scene_light(pin))
    bg = fit_scene(pin, frame.out_w, frame.out_h, person_scale_hint=(box[3] - box[1]) / frame.out_h,
                   person_mask=mask)
    out = composite(person, mask, box, bg, strength=s, seed=seed, light=lights,
                    face=None if geo is None else geo.transformed(frame.matrix()))
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: Gamma of the sRGB-like encoding used for cheap linear<->encoded conversions of gains.
GAMMA = 2.2
#: Longest side of the working thumbnails for statistics, normals, shadow and the Poisson solve.
LOW_SIDE = 160
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

_MESH_LOCK = threading.Lock()
_MESH: dict[str, Any] = {}


@dataclass(frozen=True)
class SceneLight:
    """What we know of a picture's light (first-order SH irradiance, relative units).

    ``direction``: unit 3-vector toward the light in camera coordinates (x right, y down, z toward the
    viewer). ``ambient`` and ``strength``: ``E(n) = ambient + strength * (direction . n)``, in units of
    the subject's median luminance (face) or the picture's mean (scene). ``colour``: the illuminant's
    linear RGB, normalised to mean 1.
    """

    direction: np.ndarray
    ambient: float
    strength: float
    colour: np.ndarray

    @property
    def relative(self) -> float:
        """Directional over ambient light, clamped to 0..0.9 (what the relight uses)."""
        return float(np.clip(self.strength / max(self.ambient, 1e-3), 0.0, 0.9))

    def irradiance(self, normals: np.ndarray) -> np.ndarray:
        """Relative irradiance ``1 + relative * (direction . n)`` for normals (..., 3)."""
        return np.float32(1.0) + np.float32(self.relative) * (normals @ self.direction.astype(np.float32))


NEUTRAL = SceneLight(np.array([0.0, 0.0, 1.0]), 1.0, 0.0, np.ones(3))


# --------------------------------------------------------------------------- small helpers
def _to01(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1 / 255)
    return np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)


def _low(img: np.ndarray, side: int = LOW_SIDE) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, side / max(h, w))
    if s == 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _up(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _linear_luma(rgb01: np.ndarray) -> np.ndarray:
    return _luma(np.power(np.maximum(rgb01, 0.0), GAMMA))


def _norm_blur(img: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``img`` weighted by ``w`` (normalised convolution)."""
    ww = w[..., None] if img.ndim == 3 else w
    num = cv2.GaussianBlur(img * ww, (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    den = den[..., None] if img.ndim == 3 else den
    return num / np.maximum(den, 1e-4)


def _local_colour(img: np.ndarray, w: np.ndarray, r: int) -> np.ndarray:
    """The local mean colour of ``img`` where ``w``: box-filter normalised convolution over a
    ``r`` window, falling back to 4x and 16x wider ones where the smaller hold none of ``w``."""
    h, wd = w.shape
    both = cv2.merge([img[..., 0] * w, img[..., 1] * w, img[..., 2] * w, w])  # 4 channels: one pass each
    acc = cv2.blur(both, (r, r))
    for k, eps in ((4, 0.02), (16, 4e-4)):  # the wide windows at 1/k resolution (they are smooth)
        small = cv2.resize(both, (max(1, wd // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        acc = cv2.scaleAdd(_up(cv2.blur(small, (r, r)), wd, h), eps, acc)
    return np.asarray(acc[..., :3] / np.maximum(acc[..., 3:], 1e-7), np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def illuminant(rgb01: np.ndarray, weight: np.ndarray | None = None, p: float = 6.0) -> np.ndarray:
    """Shades-of-grey illuminant estimate (Finlayson & Trezzi 2004): linear RGB, mean 1."""
    lin = np.power(np.clip(_low(rgb01, 96), 1e-4, 1.0), GAMMA).reshape(-1, 3).astype(np.float64)
    wt = np.ones(len(lin)) if weight is None else _low(weight.astype(np.float32), 96).reshape(-1)
    e = (np.sum(wt[:, None] * lin**p, 0) / max(float(wt.sum()), 1e-6)) ** (1.0 / p)
    return (e / max(float(e.mean()), 1e-6)).astype(np.float64)


# --------------------------------------------------------------------------- the SH fit
def fit_sh(normals: np.ndarray, luminance: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Robust least-squares fit of ``L = a0 + a . n``; returns ``(a0, a)``.

    Huber-weighted IRLS (5 rounds, threshold 1.345 robust sigma), on top of optional prior weights.
    """
    n = np.asarray(normals, np.float64).reshape(-1, 3)
    y = np.asarray(luminance, np.float64).reshape(-1)
    w0 = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    A = np.concatenate([np.ones((len(y), 1)), n], axis=1)
    w = w0.copy()
    coef = np.zeros(4)
    for _ in range(5):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
        r = y - A @ coef
        sigma = 1.4826 * float(np.median(np.abs(r[w0 > 0]))) + 1e-6
        k = 1.345 * sigma
        ar = np.abs(r)
        w = w0 * np.where(ar <= k, 1.0, k / np.maximum(ar, 1e-12))
    return float(coef[0]), coef[1:].copy()


def _light_from_fit(a0: float, a: np.ndarray, colour: np.ndarray) -> SceneLight:
    return SceneLight(direction=_unit(a), ambient=max(a0, 1e-3), strength=float(np.linalg.norm(a)), colour=colour)


# --------------------------------------------------------------------------- the person's light
def _face_mesh() -> Any:
    fm = _MESH.get("mesh")
    if fm is None:
        from mediapipe.python.solutions.face_mesh import FaceMesh

        fm = FaceMesh(static_image_mode=True, refine_landmarks=False, max_num_faces=1, min_detection_confidence=0.3)
        _MESH["mesh"] = fm
    return fm


@functools.lru_cache(maxsize=1)
def _mesh_topology() -> tuple[np.ndarray, np.ndarray]:
    """Triangles (T, 3) of the 468-vertex face mesh, and a mask of vertices to leave out of the fit."""
    from mediapipe.python.solutions import face_mesh_connections as fc

    edges = {tuple(sorted(e)) for e in fc.FACEMESH_TESSELATION}
    nbr: dict[int, set[int]] = {}
    for i, j in edges:
        nbr.setdefault(i, set()).add(j)
        nbr.setdefault(j, set()).add(i)
    tris = set()
    for i, j in edges:
        for k in nbr[i] & nbr[j]:
            tris.add(tuple(sorted((i, j, k))))
    skip = np.zeros(468, bool)
    for part in (
        fc.FACEMESH_LEFT_EYE,
        fc.FACEMESH_RIGHT_EYE,
        fc.FACEMESH_LEFT_EYEBROW,
        fc.FACEMESH_RIGHT_EYEBROW,
        fc.FACEMESH_LIPS,
    ):
        for e in part:
            skip[list(e)] = True
    ring = skip.copy()  # and their one-ring: lashes, shadows of the brow ridge, lip edges
    for v in np.flatnonzero(skip):
        ring[list(nbr.get(int(v), ()))] = True
    return np.array(sorted(tris), np.int64), ring


def mesh_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3) of a camera-facing mesh, oriented toward the viewer (+z)."""
    v = np.asarray(vertices, np.float64)
    a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
    fn = np.cross(b - a, c - a)
    fn *= np.where(fn[:, 2:3] < 0, -1.0, 1.0)
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, triangles[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.maximum(norm, 1e-12)


def _face_crop(img_h: int, img_w: int, landmarks: np.ndarray) -> tuple[int, int, int, int]:
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    fw, fh = x1 - x0, y1 - y0
    side = 1.5 * max(fw, fh)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * fh
    left, t = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    r, b = min(img_w, int(cx + side / 2)), min(img_h, int(cy + side / 2))
    return left, t, r, b


@dataclass(frozen=True)
class FaceGeometry:
    """A face's mesh: the 468 MediaPipe vertices' positions and unit normals.

    ``points``: (468, 2) x, y in the pixels of the image it was found in; ``normals``: (468, 3) camera
    coordinates (x right, y down, z toward the viewer), from the mesh's own triangles.
    """

    points: np.ndarray
    normals: np.ndarray

    def transformed(self, matrix: np.ndarray) -> FaceGeometry:
        """The mesh under a 2x3 affine without rotation (``compose.Frame.matrix()``: scale and shift);
        a mirror flips the normals' x (or y) with the points."""
        m = np.asarray(matrix, np.float64)
        pts = self.points.astype(np.float64) @ m[:, :2].T + m[:, 2]
        flip = np.array([np.sign(m[0, 0]) or 1.0, np.sign(m[1, 1]) or 1.0, 1.0])
        return FaceGeometry(points=pts.astype(np.float32), normals=(self.normals * flip).astype(np.float32))


def _mesh_crop(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, int, int, float]:
    """The face crop the mesh runs on (<= 256 px), its top-left corner in ``img`` and its scale."""
    h, w = img.shape[:2]
    cl, t, r, b = _face_crop(h, w, lm)
    crop = img[t:b, cl:r]
    if crop.size == 0:
        return crop, cl, t, 1.0
    s = min(1.0, 256 / max(crop.shape[:2]))
    if s < 1.0:
        size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop), cl, t, s


def _run_mesh(crop: np.ndarray, cl: int, t: int, s: float) -> FaceGeometry | None:
    if crop.size == 0:
        return None
    with _MESH_LOCK:
        res = _face_mesh().process(crop)
    if not res.multi_face_landmarks:
        return None
    ch, cw = crop.shape[:2]
    pts = np.array([(p.x, p.y, p.z) for p in res.multi_face_landmarks[0].landmark[:468]], np.float64)
    verts = np.stack([pts[:, 0] * cw, pts[:, 1] * ch, -pts[:, 2] * cw], axis=1)  # MediaPipe's z points away
    normals = mesh_normals(verts, _mesh_topology()[0])
    points = verts[:, :2] / s + np.array([cl, t])
    return FaceGeometry(points=points.astype(np.float32), normals=normals.astype(np.float32))


def _uint8(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img if img.dtype == np.uint8 else (_to01(img) * 255 + 0.5).astype(np.uint8))


def face_geometry(img_rgb: np.ndarray, landmarks: np.ndarray) -> FaceGeometry | None:
    """MediaPipe's face mesh (``static_image_mode``, 468 points) on a <= 256 px crop around dlib's
    (68, 2) ``landmarks``, with per-vertex normals; None when the mesh finds no face."""
    img = _uint8(img_rgb)
    return _run_mesh(*_mesh_crop(img, np.asarray(landmarks, np.float32)))


def person_light(
    img_rgb: np.ndarray,
    landmarks: np.ndarray,
    person_mask: np.ndarray | None = None,
    *,
    geometry: FaceGeometry | None = None,
) -> SceneLight:
    """The selfie's light from the face: first-order SH fit of luminance on face-mesh normals.

    ``img_rgb``: the selfie (uint8 RGB or float 0..1); ``landmarks``: dlib's (68, 2) points in its
    pixels; ``person_mask``: optional 0..1 mask of the same size (vertices off the person are ignored);
    ``geometry``: the mesh from :func:`face_geometry` when the caller has it (else it is run here).
    Falls back to an ellipsoid over the landmarks when the mesh finds no face.
    """
    img = _uint8(img_rgb)
    lm = np.asarray(landmarks, np.float32)
    colour = illuminant(_to01(img))
    crop, cl, t, s = _mesh_crop(img, lm)
    if crop.size == 0:
        return NEUTRAL
    if geometry is None:
        geometry = _run_mesh(crop, cl, t, s)
    ch, cw = crop.shape[:2]
    crop01 = crop.astype(np.float32) * np.float32(1 / 255)
    # luminance averaged over a few pixels: pores and stubble are not shading
    blurred = cv2.GaussianBlur(crop01, (0, 0), max(1.0, 0.012 * cw))
    lum = _linear_luma(blurred)
    lab = cv2.cvtColor(blurred, cv2.COLOR_RGB2Lab)
    mask_c = None
    if person_mask is not None:
        b, r = t + round(ch / s), cl + round(cw / s)
        mask_c = cv2.resize(
            np.ascontiguousarray(person_mask[t:b, cl:r], np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR
        )
    lm_c = (lm - np.array([cl, t], np.float32)) * s
    box_c = (*lm_c.min(0).tolist(), *lm_c.max(0).tolist())
    if geometry is None:
        return _ellipsoid_light(lum, lab, box_c, mask_c, colour, lm_c)
    verts = (geometry.points - np.array([cl, t], np.float32)) * s
    normals = geometry.normals.astype(np.float64)
    skip = _mesh_topology()[1]
    xs = np.clip(np.round(verts[:, 0]).astype(int), 0, cw - 1)
    ys = np.clip(np.round(verts[:, 1]).astype(int), 0, ch - 1)
    y = lum[ys, xs].astype(np.float64)
    ab = lab[ys, xs, 1:].astype(np.float64)
    keep = ~skip & (normals[:, 2] > 0.15)
    if mask_c is not None:
        keep &= mask_c[ys, xs] > 0.5
    if keep.sum() < 40:
        return _ellipsoid_light(lum, lab, box_c, mask_c, colour, lm_c)
    # off the skin's colour: hair over the forehead, beard, glasses frames, specular spots on lenses
    med_ab = np.median(ab[keep], 0)
    d_ab = np.linalg.norm(ab - med_ab, axis=1)
    keep &= d_ab < max(12.0, 2.5 * float(np.median(d_ab[keep])))
    med = float(np.median(y[keep])) + 1e-6
    a0, a = fit_sh(normals[keep], y[keep] / med)
    return _light_from_fit(a0, a, colour)


def _ellipsoid_normals(shape: tuple[int, int], box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Normals (h, w, 3) of an ellipsoid standing on ``box`` and the mask (h, w) of where it is."""
    h, w = shape
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = max(1.0, (x1 - x0) / 2), max(1.0, (y1 - y0) / 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx - cx) / rx, (yy - cy) / ry
    rho2 = u * u + v * v
    inside = rho2 < 1.0
    nz = np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
    n = np.stack([u, v, nz], axis=-1)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    return n, inside


def _ellipsoid_light(
    lum: np.ndarray,
    lab: np.ndarray,
    box: tuple[float, float, float, float],
    mask: np.ndarray | None,
    colour: np.ndarray,
    landmarks: np.ndarray | None = None,
) -> SceneLight:
    """Fallback: the SH fit on an ellipsoid standing in for the face (brows to chin ``box``, raised
    a quarter for the forehead); eyes, brows and lips left out when ``landmarks`` (68) are given."""
    h, w = lum.shape
    x0, y0, x1, y1 = box
    fh = y1 - y0
    n, inside = _ellipsoid_normals((h, w), (x0, y0 - 0.25 * fh, x1, y1))
    skip = np.zeros((h, w), np.uint8)
    if landmarks is not None:
        for idx in (range(36, 42), range(42, 48), range(48, 60), range(17, 22), range(22, 27)):
            hull = cv2.convexHull(np.round(landmarks[list(idx)]).astype(np.int32))
            cv2.fillConvexPoly(skip, hull, 1)
        skip = np.asarray(cv2.dilate(skip, np.ones((5, 5), np.uint8)), np.uint8)
    keep = inside & (skip == 0) & (n[..., 2] > 0.2)
    if mask is not None:
        keep &= mask > 0.5
    if keep.sum() < 40:
        return NEUTRAL
    step = max(1, int(np.sqrt(keep.sum() / 2000)))
    sel = np.zeros_like(keep)
    sel[::step, ::step] = True
    keep &= sel
    y = lum[keep].astype(np.float64)
    ab = lab[keep][:, 1:].astype(np.float64)
    d_ab = np.linalg.norm(ab - np.median(ab, 0), axis=1)
    good = d_ab < max(12.0, 2.5 * float(np.median(d_ab)))
    a0, a = fit_sh(n[keep][good], y[good] / (float(np.median(y[good])) + 1e-6))
    return _light_from_fit(a0, a, colour)


# --------------------------------------------------------------------------- the scene's light
def scene_light(scene_rgb: np.ndarray) -> SceneLight:
    """The scene's light from its large-scale luminance (see the module docstring for its limits)."""
    img = _to01(scene_rgb)
    small = _low(img, 64)
    lum = cv2.GaussianBlur(_linear_luma(small), (0, 0), 2.0).astype(np.float64)
    h, w = lum.shape
    yy, xx = np.mgrid[0:h, 0:w]
    u = (xx - (w - 1) / 2) / (max(h, w) / 2)
    v = (yy - (h - 1) / 2) / (max(h, w) / 2)
    A = np.stack([np.ones(lum.size), u.ravel(), v.ravel()], 1)
    (c, gx, gy), *_ = np.linalg.lstsq(A, lum.ravel(), rcond=None)
    mean = max(float(lum.mean()), 1e-4)
    g = np.array([gx, gy]) / mean
    # the brightest 3 %: where a window, the sky or a lamp is
    thr = np.quantile(lum, 0.97)
    hot = lum >= thr
    centroid = np.array([u[hot].mean(), v[hot].mean()]) if hot.any() else np.zeros(2)
    d2 = g + 0.35 * centroid * min(1.0, float(np.linalg.norm(g)) * 2.0)
    side = float(np.clip(1.6 * np.linalg.norm(g), 0.15, 0.85))  # sine of the angle off the camera axis
    dir2 = d2 / max(float(np.linalg.norm(d2)), 1e-9) if np.linalg.norm(d2) > 1e-6 else np.zeros(2)
    direction = _unit(np.array([dir2[0] * side, dir2[1] * side, np.sqrt(1.0 - side * side)]))
    # directional share: from the luminance contrast the plane explains and the highlights' punch
    contrast = float(np.std(A @ np.array([c, gx, gy]))) / mean
    punch = float(thr / mean - 1.0)
    rel = float(np.clip(0.5 * contrast + 0.12 * punch, 0.1, 0.7))
    return SceneLight(direction=direction, ambient=1.0, strength=rel, colour=illuminant(img))


# --------------------------------------------------------------------------- scene crop
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
    small = _to01(_low(img, 256))
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
    small = _low(img, 96)
    small_s = small.shape[1] / W
    detail = _detail_map(_to01(small))
    sil = _default_silhouette(64, max(1, round(64 * out_h / out_w))) if person_mask is None else person_mask
    sil = _low(np.asarray(sil, np.float32), 64)
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
    return np.clip(_to01(out), 0.0, 1.0)


# --------------------------------------------------------------------------- composite
def _refine_alpha(im: np.ndarray, a: np.ndarray, protect: np.ndarray | None = None) -> np.ndarray:
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
        fg = _up(_local_colour(im2, sure_f, max(3, r // 2)), w, h)
        bg = _up(_local_colour(im2, sure_b, max(3, r // 2)), w, h)
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


def _drop_islands(a: np.ndarray) -> np.ndarray:
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


def _skin_near_face(img: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
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


def _foreground(person: np.ndarray, alpha: np.ndarray, im_w: np.ndarray, a_w: np.ndarray, s: float) -> np.ndarray:
    """The person's colour with the old background pushed out of soft pixels (blur-fusion, two scales).

    The blurred estimates are made at reduced resolution (``im_w``/``a_w``, the working copies) and
    sampled at the soft pixels of the full-resolution ``alpha`` only; elsewhere the colour is the
    photo's (alpha 1: exactly; alpha 0: it does not show).
    """
    H, W = alpha.shape
    hw, ww = a_w.shape
    coarse = _low(im_w, 96)
    a_c = cv2.resize(a_w, (coarse.shape[1], coarse.shape[0]), interpolation=cv2.INTER_AREA)
    r1 = 2 * round(0.045 * max(a_c.shape)) + 1
    bf, bb = _box_fusion(coarse, coarse, coarse, a_c, r1)
    bf, bb = _up(bf, ww, hw), _up(bb, ww, hw)
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
        fn, inside = _ellipsoid_normals((h, w), (x0 - 0.05 * fh, y0 - 0.3 * fh, x1 + 0.05 * fh, y1 + 0.05 * fh))
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
    person = np.ascontiguousarray(_to01(person_rgb))
    scene = np.ascontiguousarray(_to01(scene_rgb))
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
    protect = None if face_box is None else _skin_near_face(im_w, tuple(v * ws for v in face_box))
    refined = _drop_islands(np.clip(a_w + _refine_alpha(im_w, a_w, protect), 0.0, 1.0))
    delta = (refined - a_w) * np.float32(s)
    a_w = np.clip(a_w + delta, 0.0, 1.0)
    alpha = np.clip(
        cv2.GaussianBlur(mask + (_up(delta, W, H) if ws < 1 else delta), (0, 0), max(0.5, s * 0.0009 * side)), 0.0, 1.0
    )
    # ---- 2. foreground colour: the old background pushed out of the soft pixels
    fg = _foreground(person, alpha, im_w, a_w, s)

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
            pl = _ellipsoid_light(_linear_luma(p_low), lab_p, fb_low, m_low, illuminant(im_w))
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
    off = _up(memb, lw, lh) * (SEAM_W * s * np.exp(-dist_in / SEAM_BAND) * inside)[..., None]
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
    smooth = _up(smooth, W, H)
    add_low = (off * (1 - wrap)[..., None] + wrap[..., None] * wrap_bg).astype(np.float32)
    luma8 = cv2.convertScaleAbs(cv2.cvtColor(fg, cv2.COLOR_RGB2GRAY), alpha=255.0)
    rel_a = smooth[..., 0] * alpha
    k_mul = cv2.LUT(luma8, tone_gain) * rel_a
    k_add = cv2.LUT(luma8, tone_off) * rel_a
    out = cv2.transform(fg, np.diag(g_enc)) * k_mul[..., None]
    out += k_add[..., None] * g_enc
    out += _up(add_low, W, H) * alpha[..., None]
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
