"""Where the person is, where the face is, and where skin is — the masks that protect identity.

* person: MediaPipe selfie segmentation (the general 256x256 model that ships in
  ``mediapipe==0.10.14``), run once per selfie at <= 512 px, refined edge-aware with a guided filter
  (opencv-contrib) so hair and shoulders keep their outline.
* face: the dlib 68-point jaw line closed over the eyebrows raised by a quarter of the face height
  (the forehead), feathered.
* skin: pixels whose a*/b* are close to the face's own skin colour (Mahalanobis distance), inside
  the person mask — neck and hands get protected too, without a skin model of their own.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from ...errors import MissingDependencyError

WORK_SIDE = 512
_LOCK = threading.Lock()
_SEGMENTER: dict[str, Any] = {}


def _segmenter() -> Any:
    seg = _SEGMENTER.get("general")
    if seg is None:
        try:
            from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation
        except ImportError as exc:  # pragma: no cover - core dependency
            raise MissingDependencyError("person segmentation", "core", "mediapipe") from exc
        seg = SelfieSegmentation(model_selection=0)
        _SEGMENTER["general"] = seg
    return seg


def person_mask(img: np.ndarray) -> np.ndarray:
    """Soft person mask in 0..1, same size as ``img`` (expected already at working resolution)."""
    with _LOCK:  # one MediaPipe graph, not re-entrant
        res = _segmenter().process(np.ascontiguousarray(img))
    m = res.segmentation_mask
    if m is None:
        return np.zeros(img.shape[:2], np.float32)
    m = np.asarray(m, dtype=np.float32)
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    # opencv-contrib's guided filter; a plain opencv build (or one overwritten by it) lacks it: keep the raw mask
    guided = getattr(getattr(cv2, "ximgproc", None), "guidedFilter", None)
    if guided is not None:
        guide = img.astype(np.float32) / 255.0
        r = max(2, round(max(img.shape[:2]) / 128))
        m = guided(guide, m, r, 1e-3)
    # sharpen the soft edge a little: 0.25..0.75 -> 0..1
    return np.clip((m - 0.25) * 2.0, 0.0, 1.0).astype(np.float32)


def face_polygon(landmarks: np.ndarray) -> np.ndarray:
    """Jaw line plus eyebrows raised over the forehead, as a closed polygon (x, y)."""
    jaw = landmarks[0:17]
    brows = landmarks[17:27][::-1].copy()
    face_h = float(np.linalg.norm(landmarks[8] - (landmarks[19] + landmarks[24]) / 2))
    brows[:, 1] -= 0.28 * face_h
    return np.concatenate([jaw, brows]).astype(np.float32)


def face_mask(shape: tuple[int, int], landmarks: np.ndarray, feather: float | None = None) -> np.ndarray:
    """Feathered face mask (0..1) of ``shape`` (h, w) for landmarks in that image's coordinates."""
    h, w = shape
    scale = 0.25 if max(h, w) > 512 else 1.0
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    poly = face_polygon(landmarks) * scale
    small: np.ndarray = np.zeros((sh, sw), np.float32)
    cv2.fillPoly(small, [np.round(poly).astype(np.int32)], 1.0)
    width = float(np.ptp(poly[:, 0])) or 1.0
    sigma = feather * scale if feather is not None else 0.07 * width
    small = cv2.GaussianBlur(small, (0, 0), max(sigma, 0.5))
    if scale != 1.0:
        small = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(small * 1.25, 0.0, 1.0)


def skin_map(img: np.ndarray, landmarks: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Likelihood (0..1) that each pixel is skin like the face's, limited to the person."""
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    inner = np.zeros(img.shape[:2], np.uint8)
    # cheeks and nose: between the eyes' outer corners and the mouth, clear of eyes/brows/lips
    cheek = np.concatenate([landmarks[1:16], landmarks[[35, 33, 31]]]).astype(np.int32)
    cv2.fillPoly(inner, [cheek], 1)
    pts = lab[..., 1:][inner.astype(bool)]
    if len(pts) < 30:
        return np.zeros(img.shape[:2], np.float32)
    mu = pts.mean(0)
    cov = np.cov(pts.T) + np.eye(2) * 4.0
    inv = np.linalg.inv(cov)
    d = lab[..., 1:] - mu
    m2 = np.einsum("...i,ij,...j->...", d, inv, d)
    like = np.exp(-0.5 * m2 / 2.5**2).astype(np.float32)
    return like * person


def head_top(person: np.ndarray, face_box: tuple[int, int, int, int], scale: float) -> float | None:
    """The top of the head (hair included) in selfie pixels: the person mask's top above the face."""
    left, top, right, bottom = (v * scale for v in face_box)
    x0, x1 = int(max(0, left)), int(min(person.shape[1], right))
    if x1 <= x0:
        return None
    cols = person[:, x0:x1] > 0.5
    rows = np.flatnonzero(cols.mean(axis=1) > 0.25)
    rows = rows[rows < top]
    if len(rows) == 0:
        return None
    # the first row of the run that reaches down to the face (a stray blob above does not count)
    run_start = int(rows[-1])
    for r in rows[::-1]:
        if r < run_start - 1:
            break
        run_start = int(r)
    return run_start / scale
