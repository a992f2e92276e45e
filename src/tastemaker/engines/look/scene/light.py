"""The light of a selfie and of a scene: first-order spherical-harmonic fits (what the relight uses).

Separate from the compositing because the engine estimates both lights once per request (the selfie's
from its face mesh, each pin's from the picture) and hands them to :func:`~.compositing.composite`.

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
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .arrays import GAMMA, linear_luma, low, to01

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


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def illuminant(rgb01: np.ndarray, weight: np.ndarray | None = None, p: float = 6.0) -> np.ndarray:
    """Shades-of-grey illuminant estimate (Finlayson & Trezzi 2004): linear RGB, mean 1."""
    lin = np.power(np.clip(low(rgb01, 96), 1e-4, 1.0), GAMMA).reshape(-1, 3).astype(np.float64)
    wt = np.ones(len(lin)) if weight is None else low(weight.astype(np.float32), 96).reshape(-1)
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
    return np.ascontiguousarray(img if img.dtype == np.uint8 else (to01(img) * 255 + 0.5).astype(np.uint8))


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
    colour = illuminant(to01(img))
    crop, cl, t, s = _mesh_crop(img, lm)
    if crop.size == 0:
        return NEUTRAL
    if geometry is None:
        geometry = _run_mesh(crop, cl, t, s)
    ch, cw = crop.shape[:2]
    crop01 = crop.astype(np.float32) * np.float32(1 / 255)
    # luminance averaged over a few pixels: pores and stubble are not shading
    blurred = cv2.GaussianBlur(crop01, (0, 0), max(1.0, 0.012 * cw))
    lum = linear_luma(blurred)
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
        return ellipsoid_light(lum, lab, box_c, mask_c, colour, lm_c)
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
        return ellipsoid_light(lum, lab, box_c, mask_c, colour, lm_c)
    # off the skin's colour: hair over the forehead, beard, glasses frames, specular spots on lenses
    med_ab = np.median(ab[keep], 0)
    d_ab = np.linalg.norm(ab - med_ab, axis=1)
    keep &= d_ab < max(12.0, 2.5 * float(np.median(d_ab[keep])))
    med = float(np.median(y[keep])) + 1e-6
    a0, a = fit_sh(normals[keep], y[keep] / med)
    return _light_from_fit(a0, a, colour)


def ellipsoid_normals(shape: tuple[int, int], box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Normals (h, w, 3) of an ellipsoid standing on ``box`` and the mask (h, w) of where it is.

    Public: the composite's relight uses the same ellipsoid for the face's normals without a mesh."""
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


def ellipsoid_light(
    lum: np.ndarray,
    lab: np.ndarray,
    box: tuple[float, float, float, float],
    mask: np.ndarray | None,
    colour: np.ndarray,
    landmarks: np.ndarray | None = None,
) -> SceneLight:
    """Fallback: the SH fit on an ellipsoid standing in for the face (brows to chin ``box``, raised
    a quarter for the forehead); eyes, brows and lips left out when ``landmarks`` (68) are given.

    Public: the composite falls back on it for the person's light when it is given no lights."""
    h, w = lum.shape
    x0, y0, x1, y1 = box
    fh = y1 - y0
    n, inside = ellipsoid_normals((h, w), (x0, y0 - 0.25 * fh, x1, y1))
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
    img = to01(scene_rgb)
    small = low(img, 64)
    lum = cv2.GaussianBlur(linear_luma(small), (0, 0), 2.0).astype(np.float64)
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
