"""The background step of a look render: the person put into a scene pin, or the background blurred.

Step 4 of :mod:`.engine`'s recipe, the parts with substance: which pin is the scene (:func:`choose_scene`),
the person composited into it with both lights measured once per request (:func:`place_in_scene`, over
:mod:`.scene`), and the halo-free background blur (:func:`masked_blur`). Separate from the engine, which
only chooses among keep, backdrop, blur and scene.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from ..base import PinImage, Subject, VariationPlan
from . import scene as scenes
from .compose import Frame
from .grade import apply_lut


def place_in_scene(
    out: np.ndarray, person: np.ndarray, face_box: np.ndarray, pin: PinImage, lut: np.ndarray,
    plan: VariationPlan, prep: dict[str, Any], subject: Subject, frame: Frame, *, lock: threading.Lock,
) -> np.ndarray:
    """The person in one of the board's pictures, the scene graded into the mode's look.

    The selfie's light (a spherical-harmonic fit on its face mesh) and the scene's are measured once
    per request and passed to the compositor, which relights the person toward the scene; they are kept in
    ``prep`` (the engine's per-subject cache), read and written under the engine's ``lock``. ``lut``: the
    mode's colour grade.
    """
    H, W = person.shape
    with lock:
        lights = prep.setdefault("lights", {})
        geo = lights.get("geometry", False)
    if geo is False:
        geo = scenes.face_geometry(subject.image, subject.face.landmarks)
        own = scenes.person_light(subject.image, subject.face.landmarks, geometry=geo)
        with lock:
            lights["geometry"], lights["person"] = geo, own
    with lock:
        seen = lights.get(pin.id)
    if seen is None:
        seen = scenes.scene_light(pin.image)
        with lock:
            lights[pin.id] = seen
    hint = float(face_box[3] - face_box[1]) / H
    scene = scenes.fit_scene(pin.image, W, H, person_scale_hint=hint, person_mask=person)
    scene8 = cv2.addWeighted(scene, 255.0, scene, 0.0, 0.5, dtype=cv2.CV_8U)
    graded = apply_lut(scene8, lut)
    scene = scene + (graded - scene) * np.float32(0.5 * plan.strength)  # a pin is already in the look
    face = geo.transformed(frame.matrix()) if geo is not None else None
    return scenes.composite(out, person, tuple(float(v) for v in face_box), scene,  # type: ignore[arg-type]
                            strength=float(plan.strength), seed=plan.seed, light=(lights["person"], seen),
                            face=face)


def choose_scene(pins: list[PinImage], query: str | None, variant: int) -> PinImage:
    """The scene pin: the best match of the prompt's place words to pin titles/tags, else by engagement.

    Public: the engine's planner picks each scene variation's pin with it."""
    if query:
        from ...encoders.text import get_text_encoder

        texts = [p.text for p in pins]
        if any(texts):
            enc = get_text_encoder()
            sims = enc.similarity(query, texts)
            best = int(np.argmax(sims))
            if float(sims[best]) >= enc.match_min:
                return pins[best]
    return pins[variant % len(pins)]


def masked_blur(img: np.ndarray, person: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the background only (normalised by the background mask), so the person leaves no halo.

    Public: the engine's "blur" background."""
    H, W = person.shape
    f = 0.25
    size = (max(1, round(W * f)), max(1, round(H * f)))
    bgw = cv2.resize(1.0 - person, size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA) * bgw[..., None]
    k = max(sigma * f, 0.8)
    num = cv2.GaussianBlur(small, (0, 0), k)
    den = cv2.GaussianBlur(bgw, (0, 0), k)[..., None] + 1e-4
    fill = cv2.GaussianBlur(cv2.resize(img, size, interpolation=cv2.INTER_AREA), (0, 0), k)
    wgt = np.clip(den * 4, 0, 1)
    res = (num / den) * wgt + fill * (1 - wgt)
    return cv2.resize(res, (W, H), interpolation=cv2.INTER_LINEAR)

