"""The look engine: the selfie, re-framed and re-lit in a taste mode's look. CPU only, no weights.

Per variation:

1. **frame** the selfie for the aspect, size and shot type, face on the upper third (``compose``);
2. **grade** colour and tone toward the mode's colour distribution with a sliced-OT 3D LUT
   (``grade``), fitted once per (selfie, mode) on thumbnails and applied at full size;
3. **protect** the face (landmark polygon) and skin like it: they receive only part of the grade,
   and less as the identity guard raises ``hold``;
4. **restyle the background**: keep it (graded), blur it (mask-normalised, no halo), or replace it
   with a backdrop made from the mode's palette (``backdrop``); the person comes from MediaPipe
   segmentation (``segment``);
5. **texture and light**: soften or sharpen, vignette and grain until the thumbnail's measured
   softness, light falloff and grain match the mode's (the same measurements the style encoder
   makes), scaled by ``strength``.

Variations differ by mode, background, framing jitter and seed; the same seed gives the same pixels.
Variations render on two threads (OpenCV and NumPy release the GIL for the heavy parts).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ...encoders.style import ANALYSIS_SIDE, _falloff, _texture
from ...media import resize_max_side
from ..base import GenerationRequest, Rendered, Subject, VariationPlan
from .backdrop import make_backdrop
from .compose import frame_subject
from .grade import apply_lut, fit_lut
from .segment import WORK_SIDE, face_mask, person_mask, skin_map

if TYPE_CHECKING:
    from ...prompt import PromptIntent
    from ...taste.profile import LookParams, TasteProfile

BACKGROUND_CYCLE = ("keep", "blur", "backdrop")
#: Fraction of the colour grade the face receives at hold 0 (the rest of the image gets all of it).
FACE_GRADE = 0.55
SKIN_PROTECT = 0.6
#: L* units to 8-bit RGB levels (mid-tones), for grain.
L_TO_RGB = 2.4


def _allocate_modes(weights: dict[str, float], n: int) -> list[str]:
    """Largest-remainder allocation of ``n`` variations to modes, interleaved heaviest first."""
    ids = list(weights)
    w = np.array([weights[i] for i in ids], dtype=np.float64)
    share = w / w.sum() * n
    count = np.floor(share).astype(int)
    order = np.lexsort((np.arange(len(ids)), -(share - count)))
    count[order[: n - count.sum()]] += 1
    if n >= len(ids):  # every eligible mode shows up at least once
        for i in np.flatnonzero(count == 0):
            j = int(np.argmax(count))
            count[j] -= 1
            count[i] += 1
    out: list[str] = []
    left = count.copy()
    rank = np.argsort(-w, kind="stable")
    while len(out) < n:
        for i in rank:
            if left[i] > 0:
                out.append(ids[i])
                left[i] -= 1
    return out


class LookEngine:
    """Default engine: classic computer vision on the selfie, driven by the taste profile."""

    name = "look"
    version = "1"

    def __init__(self, *, threads: int = 2, lut_iterations: int = 10) -> None:
        self.threads = max(1, threads)
        self.lut_iterations = lut_iterations
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ planning
    def plan(
        self, request: GenerationRequest, subject: Subject, profile: TasteProfile, intent: PromptIntent
    ) -> list[VariationPlan]:
        seed = request.seed if request.seed is not None else 0
        if request.mode:
            profile.mode(request.mode)  # raises a clear error for an unknown id
            modes = [request.mode] * request.n
        else:
            modes = _allocate_modes(intent.mode_weights, request.n)
        children = np.random.SeedSequence(seed).spawn(request.n)
        plans = []
        for i, (mode_id, child) in enumerate(zip(modes, children, strict=True)):
            vseed = int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
            rng = np.random.default_rng(vseed)
            if request.background != "auto":
                bg = request.background
            elif intent.background:
                bg = intent.background
            else:
                bg = BACKGROUND_CYCLE[i % len(BACKGROUND_CYCLE)]
            framing = request.framing if request.framing != "auto" else (intent.framing or "portrait")
            plans.append(
                VariationPlan(
                    index=i,
                    seed=vseed,
                    mode_id=mode_id,
                    background=bg,
                    framing=framing,
                    strength=request.strength,
                    params={
                        "zoom": float(rng.uniform(0.94, 1.06)),
                        "shift": (float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.02, 0.02))),
                        "grade_seed": int(rng.integers(0, 2**31)),
                    },
                )
            )
        return plans

    # ------------------------------------------------------------------ per-subject preparation
    def _prepare(self, subject: Subject) -> dict[str, Any]:
        with self._lock:
            prep = subject.cache.get("look")
            if prep is not None:
                return prep
            img = subject.image
            h, w = img.shape[:2]
            work_scale = min(1.0, WORK_SIDE / max(h, w))
            work = resize_max_side(img, WORK_SIDE)
            person = person_mask(work)
            lm_work = subject.face.landmarks * work_scale
            skin = skin_map(work, lm_work, person)
            thumb = resize_max_side(img, 160)
            prep = {
                "work_scale": work_scale,
                "person": person,
                "skin": skin,
                "samples": thumb.reshape(-1, 3),
                "touches_bottom": bool(person[-3:].mean() > 0.05),
                "pyramid": {},
                "luts": {},
            }
            subject.cache["look"] = prep
            return prep

    def _lut(self, prep: dict[str, Any], look: LookParams, mode_id: str) -> np.ndarray:
        key = mode_id
        with self._lock:
            lut = prep["luts"].get(key)
        if lut is None:
            lut = fit_lut(prep["samples"], look.color_array(), seed=0, iterations=self.lut_iterations)
            with self._lock:
                prep["luts"][key] = lut
        return lut

    def _source(self, subject: Subject, prep: dict[str, Any], scale: float) -> tuple[np.ndarray, float]:
        """The selfie pre-shrunk (area filter) so the final warp scales by at least 0.7: no aliasing."""
        if scale >= 0.7:
            return subject.image, 1.0
        pre = scale / 0.85
        key = round(np.log2(pre) * 4) / 4  # quarter-octave buckets, shared by nearby variations
        pre = float(2.0**key)
        with self._lock:
            img = prep["pyramid"].get(key)
        if img is None:
            h, w = subject.image.shape[:2]
            img = cv2.resize(
                subject.image, (max(1, round(w * pre)), max(1, round(h * pre))), interpolation=cv2.INTER_AREA
            )
            with self._lock:
                prep["pyramid"][key] = img
        return img, pre

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        plans: Sequence[VariationPlan],
        subject: Subject,
        profile: TasteProfile,
        request: GenerationRequest,
        *,
        hold: Sequence[float],
    ) -> list[Rendered]:
        prep = self._prepare(subject)
        for mid in {p.mode_id for p in plans}:
            self._lut(prep, profile.mode(mid).look, mid)
        jobs = list(zip(plans, hold, strict=True))
        if self.threads == 1 or len(jobs) == 1:
            return [self._render_one(p, h, subject, profile, request, prep) for p, h in jobs]
        with ThreadPoolExecutor(max_workers=min(self.threads, len(jobs))) as pool:
            return list(pool.map(lambda j: self._render_one(j[0], j[1], subject, profile, request, prep), jobs))

    def _render_one(
        self,
        plan: VariationPlan,
        hold: float,
        subject: Subject,
        profile: TasteProfile,
        request: GenerationRequest,
        prep: dict[str, Any],
    ) -> Rendered:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        mode = profile.mode(plan.mode_id)
        look = mode.look
        img_h, img_w = subject.image.shape[:2]
        frame = frame_subject(
            img_w,
            img_h,
            subject.face.box,
            framing=plan.framing,
            size=request.size,
            aspect=request.aspect,
            zoom=plan.params["zoom"],
            shift=tuple(plan.params["shift"]),
            touches_bottom=prep["touches_bottom"],
        )
        W, H = frame.out_w, frame.out_h
        src, pre = self._source(subject, prep, frame.scale)
        base = cv2.warpAffine(
            src, frame.matrix(pre), (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        ws = prep["work_scale"]
        m_work = frame.matrix(ws)
        person = cv2.warpAffine(prep["person"], m_work, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        skin = cv2.warpAffine(prep["skin"], m_work, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        lm = frame.to_output(subject.face.landmarks)
        face = face_mask((H, W), lm)
        protect = np.maximum(face, SKIN_PROTECT * skin)
        timings["frame"] = time.perf_counter() - t0

        # ---- colour grade (LUT), face and skin partly protected
        t = time.perf_counter()
        s = np.float32(plan.strength)
        graded = apply_lut(base, self._lut(prep, look, plan.mode_id))
        base_f = base.astype(np.float32) * np.float32(1 / 255)
        face_amount = FACE_GRADE * (1.0 - hold)
        coef = (s * (1.0 - protect * np.float32(1.0 - face_amount)))[..., None]
        out = base_f + (graded - base_f) * coef
        timings["grade"] = time.perf_counter() - t

        # ---- background
        t = time.perf_counter()
        vl, vt, vr, vb = frame.valid_box(img_w, img_h)
        outside = not (vl <= 0 and vt <= 0 and vr >= W and vb >= H)
        bg_mode = plan.background
        m3 = person[..., None]
        if bg_mode == "backdrop":
            bd = make_backdrop(
                np.array(look.palette, np.float32), np.array(look.palette_weights), (W, H), plan.seed
            ).astype(np.float32) * np.float32(1 / 255)
            out = out * m3 + bd * (1.0 - m3)
        elif bg_mode == "blur" or outside:
            blurred = _masked_blur(out, person, sigma=0.014 * max(W, H))
            if bg_mode == "blur":
                out = out * m3 + blurred * (1.0 - m3)
            else:  # keep, but the frame reaches past the photo: soft fill outside it
                valid = np.zeros((H, W), np.float32)
                valid[vt:vb, vl:vr] = 1.0
                valid = cv2.GaussianBlur(valid, (0, 0), 0.01 * max(W, H) + 1)[..., None]
                keep = np.maximum(valid, m3)
                out = out * keep + blurred * (1.0 - keep)
        timings["background"] = time.perf_counter() - t

        # ---- texture and light, matched on the thumbnail the style encoder measures
        t = time.perf_counter()
        out = self._texture_and_light(out, look, plan, hold, face, float(s))
        timings["texture"] = time.perf_counter() - t

        pixels = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
        fb = subject.face.box
        face_box_out = frame.to_output(np.array([[fb[0], fb[1]], [fb[2], fb[3]]], np.float32)).ravel()
        timings["total"] = time.perf_counter() - t0
        return Rendered(
            pixels=pixels,
            plan=plan,
            hold=hold,
            face_box=tuple(int(round(v)) for v in face_box_out),  # type: ignore[arg-type]
            timings=timings,
        )

    def _texture_and_light(
        self, out: np.ndarray, look: LookParams, plan: VariationPlan, hold: float, face: np.ndarray, s: float
    ) -> np.ndarray:
        H, W = out.shape[:2]
        f = ANALYSIS_SIDE / max(H, W)
        small_size = (max(1, round(W * f)), max(1, round(H * f)))

        def measure(img: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
            th = cv2.resize(img, small_size, interpolation=cv2.INTER_AREA)
            L = cv2.cvtColor(th, cv2.COLOR_RGB2Lab)[..., 0]
            return L, {**_texture(L), **_falloff(L)}

        L, m = measure(out)
        # softness: blur (or sharpen) at analysis scale until the measured softness matches
        target_soft = m["softness"] + (look.softness - m["softness"]) * s
        sigma_a = 0.0
        amount = 0.0
        if target_soft > m["softness"] + 0.05:
            best = (abs(m["softness"] - target_soft), 0.0)
            for cand in (0.4, 0.6, 0.8, 1.0, 1.3, 1.7):
                soft = _texture(cv2.GaussianBlur(L, (0, 0), cand))["softness"]
                best = min(best, (abs(soft - target_soft), cand))
            sigma_a = best[1]
        elif target_soft < m["softness"] - 0.05:
            best = (abs(m["softness"] - target_soft), 0.0)
            for cand in (0.3, 0.6, 1.0, 1.5):
                sharp = L + cand * (L - cv2.GaussianBlur(L, (0, 0), 1.0))
                best = min(best, (abs(_texture(sharp)["softness"] - target_soft), cand))
            amount = best[1]
        keep_face = (face * np.float32(hold))[..., None]
        if sigma_a > 0:
            blurred = cv2.GaussianBlur(out, (0, 0), sigma_a / f)
            out = blurred + (out - blurred) * keep_face
        elif amount > 0:
            detail = out - cv2.GaussianBlur(out, (0, 0), 1.0 / f)
            out = out + detail * np.float32(amount) * (1.0 - keep_face)

        # vignette: radial gain solved from the measured centre/ring luminance
        L2, m2 = measure(np.clip(out, 0, 1)) if (sigma_a or amount) else (L, m)
        target_v = m2["vignette"] + (look.vignette - m2["vignette"]) * s
        r = _radius_map(H, W)
        shape = np.clip((r - 0.35) / 0.65, 0.0, 1.0) ** 2
        ring = float(L2[_radius_map(*L2.shape) > 0.8].mean()) + 1e-3
        mean = float(L2.mean()) + 5.0
        k = float(np.clip((target_v - m2["vignette"]) * mean / (ring * 0.55), -0.25, 0.6))
        if abs(k) > 0.01:
            out = out * (1.0 - np.float32(k) * shape)[..., None]

        # grain: monochrome noise at analysis scale (film-like grain size), to the mode's level
        target_g = float(np.expm1(look.grain))
        current_g = float(np.expm1(m2["grain"]))
        add = np.sqrt(max(target_g**2 - current_g**2, 0.0)) * s / _grain_gain()
        if add > 0.05:
            rng = np.random.default_rng(plan.seed)
            noise = rng.standard_normal((small_size[1], small_size[0]), dtype=np.float32)
            noise = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
            amp = np.float32(add * L_TO_RGB / 255.0)
            out = out + (noise * amp * (1.0 - 0.5 * face * np.float32(hold)))[..., None]
        return out


def _masked_blur(img: np.ndarray, person: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the background only (normalised by the background mask), so the person leaves no halo."""
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


_RADIUS: dict[tuple[int, int], np.ndarray] = {}


def _radius_map(h: int, w: int) -> np.ndarray:
    r = _RADIUS.get((h, w))
    if r is None:
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
        r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2) / np.float32(np.sqrt(2))
        if len(_RADIUS) < 32:
            _RADIUS[(h, w)] = r
    return r


@functools.cache
def _grain_gain() -> float:
    """How much of unit white noise made at analysis scale the grain measure sees (fixed seed)."""
    n = np.random.default_rng(0).standard_normal((ANALYSIS_SIDE, ANALYSIS_SIDE)).astype(np.float32)
    return float(np.expm1(_texture(n * 10.0)["grain"]) / 10.0)
