"""Identity encoder: dlib's HOG face detector, 68-point landmarks and 128-d ResNet embedding.

The model files ship in the ``face-recognition-models`` PyPI package, so this works offline. Two
embeddings of the same person are usually under 0.6 apart (dlib's published threshold, 99.38 % on
LFW); Tastemaker's identity guard holds its outputs much tighter (0.35 by default).

Face choice is explicit: the *dominant* face (largest, weighted by detector confidence) is used; a
second face of comparable size and confidence raises :class:`MultipleFacesError` unless the caller
picks one with ``face_index`` (faces are numbered by dominance, 0 first). No face, or a face whose
box is under ``min_face_px`` wide, is an error too — an embedding from 40 pixels is not an identity.
"""

from __future__ import annotations

import atexit
import functools
import logging
import multiprocessing
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import (
    FaceTooSmallError,
    IdentityMismatchError,
    MissingDependencyError,
    MultipleFacesError,
    NoFaceError,
)
from .dlib_resnet import DlibModelFormatError, DlibResNet

log = logging.getLogger(__name__)

ENCODER_NAME = "dlib-resnet-v1"
ENCODER_VERSION = "1"
SAME_PERSON_THRESHOLD = 0.6
#: Longest side the detector scans first; larger photos are downscaled for detection only.
DETECT_SIDE = 800
#: A second face counts as "comparable" when both its width and its detector score reach these
#: fractions of the dominant face's (a far-away face in the background does not).
COMPARABLE_WIDTH = 0.5
COMPARABLE_SCORE = 0.5


@dataclass(frozen=True)
class Face:
    """A detected face in image pixel coordinates."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float
    landmarks: np.ndarray = field(repr=False)  # (68, 2) float32, x/y

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True)
class IdentityEmbedding:
    """A person's face embedding: the mean of one or more selfies' 128-d dlib vectors."""

    vector: np.ndarray
    n_sources: int = 1
    encoder: str = ENCODER_NAME
    encoder_version: str = ENCODER_VERSION

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form. Holds the embedding only: never pixels, never landmarks."""
        return {
            "kind": "tastemaker.identity",
            "encoder": self.encoder,
            "encoder_version": self.encoder_version,
            "n_sources": self.n_sources,
            "vector": [round(float(v), 6) for v in self.vector],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IdentityEmbedding:
        from ..errors import ProfileError

        if data.get("kind") != "tastemaker.identity":
            raise ProfileError("not a Tastemaker identity file (missing kind 'tastemaker.identity')")
        if data.get("encoder") != ENCODER_NAME:
            raise ProfileError(f"identity file made by encoder {data.get('encoder')!r}; expected {ENCODER_NAME!r}")
        vec = np.asarray(data.get("vector"), dtype=np.float64)
        if vec.shape != (128,) or not np.all(np.isfinite(vec)):
            raise ProfileError("identity vector must be 128 finite numbers")
        n = data.get("n_sources", 1)
        return cls(vector=vec, n_sources=int(n) if isinstance(n, int | float) else 1)


@functools.lru_cache(maxsize=1)
def _models() -> tuple[object, object]:
    """dlib's face detector and 68-point landmark predictor (loaded once per process)."""
    dlib, frm = _dlib()
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(frm.pose_predictor_model_location())


def _dlib() -> tuple[Any, Any]:
    try:
        import dlib
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition_models as frm
    except ImportError as exc:  # pragma: no cover - core dependency
        raise MissingDependencyError("face detection", "core", exc.name or "dlib") from exc
    return dlib, frm


@functools.lru_cache(maxsize=1)
def _dlib_rec() -> Any:
    """dlib's own ResNet runner: the reference, and the fallback if the NumPy port cannot load the file."""
    dlib, frm = _dlib()
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


@functools.lru_cache(maxsize=1)
def _numpy_net() -> DlibResNet | None:
    """The same ResNet and weights run with NumPy/BLAS: ~10x faster than the BLAS-less dlib wheel.

    Its descriptors match dlib's to ~5e-7 (tests/test_dlib_resnet.py compares them on real faces).
    ``TASTEMAKER_FACE_NET=dlib`` selects dlib's runner instead; a file the port cannot parse falls
    back to dlib with a warning, never to a wrong network.
    """
    from ..config import Settings

    if Settings().face_net == "dlib":
        return None
    _, frm = _dlib()
    try:
        return DlibResNet.load(frm.face_recognition_model_location())
    except (DlibModelFormatError, OSError) as exc:
        log.warning("face descriptor: using dlib's slower runner (%s)", exc)
        return None


def identity_distance(a: IdentityEmbedding | np.ndarray, b: IdentityEmbedding | np.ndarray) -> float:
    """Euclidean distance between two embeddings (dlib: < 0.6 means the same person)."""
    va = a.vector if isinstance(a, IdentityEmbedding) else np.asarray(a)
    vb = b.vector if isinstance(b, IdentityEmbedding) else np.asarray(b)
    return float(np.linalg.norm(va - vb))


class IdentityEncoder:
    """Detect, choose and embed faces. Models load on first use and are shared process-wide."""

    name = ENCODER_NAME
    version = ENCODER_VERSION

    def __init__(self, *, min_face_px: int = 80) -> None:
        self.min_face_px = min_face_px

    # ---------------------------------------------------------------- detection
    def detect(self, img: np.ndarray) -> list[Face]:
        """All faces, most dominant first. Scans a downscaled copy first, then harder if needed."""
        import dlib

        detector, shape = _models()
        h, w = img.shape[:2]
        attempts: list[tuple[int, int]] = [(DETECT_SIDE, 0), (DETECT_SIDE, 1)]
        if max(h, w) > DETECT_SIDE:
            attempts.append((min(max(h, w), 2 * DETECT_SIDE), 0))
        rects: list[tuple[tuple[int, int, int, int], float]] = []
        for side, upsample in attempts:
            scale = min(1.0, side / max(h, w))
            small = img if scale == 1.0 else _resize(img, scale)
            with _DLIB_LOCK:
                dets, scores, _ = detector.run(small, upsample, 0.0)  # type: ignore[attr-defined]
            if len(dets):
                rects = [
                    (
                        (
                            max(0, round(d.left() / scale)),
                            max(0, round(d.top() / scale)),
                            min(w, round(d.right() / scale)),
                            min(h, round(d.bottom() / scale)),
                        ),
                        float(s),
                    )
                    for d, s in zip(dets, scores, strict=True)
                ]
                break
        faces = []
        for (x0, y0, x1, y1), s in rects:
            with _DLIB_LOCK:
                pts = shape(img, dlib.rectangle(x0, y0, x1, y1))  # type: ignore[operator]
            lm = np.array([(p.x, p.y) for p in pts.parts()], dtype=np.float32)
            faces.append(Face(box=(x0, y0, x1, y1), score=s, landmarks=lm))
        faces.sort(key=lambda f: (f.width * f.height) * (1.0 + max(f.score, 0.0)), reverse=True)
        return faces

    def choose_face(self, img: np.ndarray, *, face_index: int | None = None, name: str = "selfie") -> Face:
        """The face to use: the dominant one, or ``face_index``; raises on none / ambiguous / tiny."""
        faces = self.detect(img)
        if not faces:
            raise NoFaceError(
                f"{name}: no face found; use a photo where your face is visible, frontal and well lit"
            )
        if face_index is not None:
            if not 0 <= face_index < len(faces):
                raise MultipleFacesError(
                    f"{name}: face_index {face_index} asked for, but {len(faces)} face(s) were found", len(faces)
                )
            face = faces[face_index]
        else:
            face = faces[0]
            rivals = [
                f
                for f in faces[1:]
                if f.width >= COMPARABLE_WIDTH * face.width and f.score >= COMPARABLE_SCORE * face.score
            ]
            if rivals:
                boxes = ", ".join(str(f.box) for f in [face, *rivals])
                raise MultipleFacesError(
                    f"{name}: {1 + len(rivals)} faces of similar size were found ({boxes}); "
                    "crop the photo to one person or choose one with --face-index",
                    1 + len(rivals),
                )
        if face.width < self.min_face_px:
            raise FaceTooSmallError(
                f"{name}: the face is only {face.width} px wide; at least {self.min_face_px} px is needed "
                "(use a closer or higher-resolution photo)"
            )
        return face

    # ---------------------------------------------------------------- embedding
    def chip(self, img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The landmark-aligned 150 px face chip dlib's network embeds (cheap; the network is not)."""
        import dlib

        _, shape = _models()
        x0, y0, x1, y1 = box
        pts = shape(img, dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))  # type: ignore[operator]
        return np.asarray(dlib.get_face_chip(img, pts, size=150, padding=0.25))

    def embed_face(self, img: np.ndarray, face: Face) -> np.ndarray:
        """128-d embedding of ``face`` in ``img`` (landmark-aligned 150 px chip, no jitter)."""
        return embed_chips([self.chip(img, face.box)], workers=0)[0]

    def embed(self, img: np.ndarray, *, face_index: int | None = None, name: str = "selfie") -> tuple[Face, np.ndarray]:
        """Choose the face and embed it."""
        face = self.choose_face(img, face_index=face_index, name=name)
        return face, self.embed_face(img, face)

    def encode(
        self, images: Sequence[np.ndarray], *, names: Sequence[str] | None = None, face_index: int | None = None
    ) -> tuple[IdentityEmbedding, list[Face]]:
        """Combine one or more selfies of one person into one embedding.

        Selfies that are not of the same person (distance over 0.6 to any other) are refused with
        :class:`IdentityMismatchError` rather than averaged into a face that is nobody.
        """
        if not images:
            raise NoFaceError("no selfie given; pass at least one photo of your face")
        labels = list(names) if names else [f"selfie {i + 1}" for i in range(len(images))]
        faces, vecs = [], []
        for img, label in zip(images, labels, strict=True):
            face, vec = self.embed(img, face_index=face_index, name=label)
            faces.append(face)
            vecs.append(vec)
        for i in range(len(vecs)):
            for j in range(i + 1, len(vecs)):
                d = identity_distance(vecs[i], vecs[j])
                if d > SAME_PERSON_THRESHOLD:
                    raise IdentityMismatchError(
                        f"{labels[i]} and {labels[j]} do not look like the same person "
                        f"(face distance {d:.2f} > {SAME_PERSON_THRESHOLD}); give selfies of one person only"
                    )
        return IdentityEmbedding(vector=np.mean(vecs, axis=0), n_sources=len(vecs)), faces


# ------------------------------------------------------------------ parallel embedding
# The NumPy port embeds a batch in-process (BLAS releases the GIL). dlib's own runner keeps the GIL
# for ~120-165 ms per face, so when it is in use a small pool of worker processes (spawned, models
# loaded once per worker) shares that work: the identity guard sends aligned 150 px chips, never images.
_POOL_LOCK = threading.Lock()
#: dlib's detector and shape predictor are one shared object each and not safe to call from two threads at
#: once (a segfault in CI: the identity guard's detectability check beside a server thread's selfie check)
_DLIB_LOCK = threading.Lock()
_POOL: dict[int, ProcessPoolExecutor] = {}


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """A context that runs BLAS on one thread: a batch of chips is too small to gain from more, and on
    a busy machine OpenBLAS's spin-waiting helper threads take CPU from the threads working beside us."""
    return _blas_controller().limit(limits=1, user_api="blas")


def warm_models() -> None:
    """Load the detector, landmarks and descriptor runner now, before the first request needs them."""
    _models()
    if _numpy_net() is None:
        _dlib_rec()


def _worker_init(parent_pid: int | None = None) -> None:
    from ..lifeline import die_with_parent

    die_with_parent(parent_pid)  # a killed parent (CLI or server) leaves no worker behind
    _models()
    _dlib_rec()


def _embed_chip(chip: np.ndarray) -> np.ndarray:
    return np.asarray(_dlib_rec().compute_face_descriptor(chip), dtype=np.float64)


def embed_pool(workers: int) -> ProcessPoolExecutor | None:
    """The shared embedding pool with ``workers`` processes; None for 0, or when the NumPy port runs.

    Start it early (the pipeline does, before rendering) so workers load their models meanwhile.
    """
    if workers <= 0 or _numpy_net() is not None:
        return None
    with _POOL_LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
            )
            _POOL[workers] = pool
            for _ in range(workers):  # start loading models now, while the caller does other work
                pool.submit(int, 0)
        return pool


def embed_chips(chips: Sequence[np.ndarray], *, workers: int = 0) -> list[np.ndarray]:
    """128-d descriptors of aligned chips: one NumPy batch, or dlib in ``workers`` processes."""
    if not chips:
        return []
    net = _numpy_net()
    if net is not None:
        with _one_blas_thread():
            return list(net.descriptors(chips))
    pool = embed_pool(workers) if len(chips) > 1 else None
    if pool is None:
        return [_embed_chip(c) for c in chips]
    return list(pool.map(_embed_chip, chips))


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOL.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOL.clear()


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
