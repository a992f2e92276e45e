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
import hashlib
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
from .compose import Frame, frame_subject
from .grade import apply_lut, fit_lut
from .segment import WORK_SIDE, face_mask, person_mask, skin_map

if TYPE_CHECKING:
    from ...prompt import PromptIntent
    from ...taste.profile import LookParams, TasteProfile

BACKGROUND_CYCLE = ("keep", "blur", "backdrop")
#: On the face and similar skin the grade is split: luminance (tone, mood) follows it by SKIN_TONE,
#: chroma (hue, saturation: what makes skin look alive) only by SKIN_CHROMA. Other pixels get all of it.
SKIN_TONE = 0.85
SKIN_CHROMA = 0.8
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
        seen_modes: set[str] = set()
        plans = []
        for i, (mode_id, child) in enumerate(zip(modes, children, strict=True)):
            # 53-bit variation seeds: exact in JSON and in provenance records
            vseed = int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(11))
            rng = np.random.default_rng(vseed)
            bg: str
            if request.background != "auto":
                bg = request.background
            elif intent.background:
                bg = intent.background
            else:
                bg = BACKGROUND_CYCLE[i % len(BACKGROUND_CYCLE)]
            framing = request.framing if request.framing != "auto" else (intent.framing or "portrait")
            # the first variation of a mode shows its canonical look; later ones vary exposure,
            # contrast and warmth a little, so variations differ even when mode and background repeat
            canonical = mode_id not in seen_modes
            seen_modes.add(mode_id)
            jitter = (0.0, 0.0, 0.0) if canonical else (
                float(rng.uniform(-0.07, 0.07)), float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.04, 0.04))
            )
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
                        "exposure": jitter[0],
                        "contrast": jitter[1],
                        "warmth": jitter[2],
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
            skin = skin_map(work, subject.face.landmarks * work_scale, person)
            prep = {
                "work_scale": work_scale,
                "person": person,
                "skin": skin,
                "samples": resize_max_side(img, 160).reshape(-1, 3),
                "touches_bottom": bool(person[-3:].mean() > 0.05),
                "levels": {},
                "luts": {},
                "composites": {},
            }
            subject.cache["look"] = prep
            return prep

    @staticmethod
    def _look_key(look: LookParams) -> str:
        """Fingerprint of a mode's look: caches must not confuse 'm1' of one profile with another's."""
        return hashlib.sha1("".join(look.colors).encode() + repr(look.tone).encode()).hexdigest()

    def _lut(self, prep: dict[str, Any], look: LookParams) -> np.ndarray:
        key = self._look_key(look)
        with self._lock:
            lut = prep["luts"].get(key)
        if lut is None:
            lut = fit_lut(prep["samples"], look.color_array(), seed=0, iterations=self.lut_iterations)
            with self._lock:
                if len(prep["luts"]) > 32:
                    prep["luts"].clear()
                prep["luts"][key] = lut
        return lut

    @staticmethod
    def _level_key(scale: float) -> float:
        """Source resolution for a frame scale: full size, or pre-shrunk in quarter-octave steps so the
        final warp never shrinks by more than ~0.7 (area filtering first, so no aliasing)."""
        if scale >= 0.7:
            return 0.0
        return round(np.log2(scale / 0.85) * 4) / 4

    def _level(self, subject: Subject, prep: dict[str, Any], key: float) -> dict[str, Any]:
        """The selfie and its masks at one source resolution (cached per subject)."""
        with self._lock:
            lv = prep["levels"].get(key)
        if lv is not None:
            return lv
        h, w = subject.image.shape[:2]
        pre = float(2.0**key)
        size = (max(1, round(w * pre)), max(1, round(h * pre)))
        img = subject.image if key == 0.0 else cv2.resize(subject.image, size, interpolation=cv2.INTER_AREA)
        size = (img.shape[1], img.shape[0])
        person = cv2.resize(prep["person"], size, interpolation=cv2.INTER_LINEAR)
        skin = cv2.resize(prep["skin"], size, interpolation=cv2.INTER_LINEAR)
        face = face_mask((size[1], size[0]), subject.face.landmarks * pre)
        lv = {
            "pre": pre,
            "image": img,
            "person": person,
            "face": face,
            "protect": np.maximum(face, SKIN_PROTECT * skin),
        }
        with self._lock:
            prep["levels"][key] = lv
        return lv

    def _composite(
        self, lv: dict[str, Any], prep: dict[str, Any], look: LookParams, mode_id: str, hold: float, strength: float
    ) -> np.ndarray:
        """The selfie graded toward a mode at source resolution, face and skin partly protected.

        The grade is pointwise, so grading once in source space and warping per variation gives the
        same pixels as grading every output, at a fraction of the cost.
        """
        key = (lv["pre"], self._look_key(look), round(hold, 3), round(strength, 3))
        with self._lock:
            comp = prep["composites"].get(key)
        if comp is not None:
            return comp
        img = lv["image"]
        graded = apply_lut(img, self._lut(prep, look))
        base = img.astype(np.float32) * np.float32(1 / 255)
        lab_b = cv2.cvtColor(base, cv2.COLOR_RGB2Lab)
        lab_g = cv2.cvtColor(graded, cv2.COLOR_RGB2Lab)
        gain = np.array([SKIN_TONE, SKIN_CHROMA, SKIN_CHROMA], np.float32) * np.float32(1.0 - hold)
        skin = cv2.cvtColor(lab_b + (lab_g - lab_b) * gain, cv2.COLOR_Lab2RGB)
        target = graded + (skin - graded) * lv["protect"][..., None]
        comp = base + (target - base) * np.float32(strength)
        with self._lock:
            if len(prep["composites"]) > 16:
                prep["composites"].clear()
            prep["composites"][key] = comp
        return comp

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
        img_h, img_w = subject.image.shape[:2]
        jobs = []
        for plan, h in zip(plans, hold, strict=True):
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
            jobs.append((plan, h, frame, self._level_key(frame.scale)))
        needed = {(key, plan.mode_id, h, plan.strength) for plan, h, _, key in jobs}

        def build(item: tuple[float, str, float, float]) -> None:
            key, mode_id, h, strength = item
            lv = self._level(subject, prep, key)
            self._composite(lv, prep, profile.mode(mode_id).look, mode_id, h, strength)

        def draw(job: tuple[VariationPlan, float, Frame, float]) -> Rendered:
            plan, h, frame, key = job
            return self._render_one(plan, h, frame, self._level(subject, prep, key), subject, profile, prep)

        workers = min(self.threads, max(len(jobs), len(needed)))
        if workers <= 1:
            for item in sorted(needed):
                build(item)
            return [draw(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(build, sorted(needed)))
            return list(pool.map(draw, jobs))

    def _render_one(
        self,
        plan: VariationPlan,
        hold: float,
        frame: Frame,
        lv: dict[str, Any],
        subject: Subject,
        profile: TasteProfile,
        prep: dict[str, Any],
    ) -> Rendered:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        look = profile.mode(plan.mode_id).look
        img_h, img_w = subject.image.shape[:2]
        W, H = frame.out_w, frame.out_h
        m = frame.matrix(lv["pre"])
        comp = self._composite(lv, prep, look, plan.mode_id, hold, plan.strength)
        out = cv2.warpAffine(comp, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        person = cv2.warpAffine(lv["person"], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        face = (
            cv2.warpAffine(lv["face"], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            if hold > 0
            else None
        )
        timings["frame_grade"] = time.perf_counter() - t0

        # ---- background
        t = time.perf_counter()
        vl, vt, vr, vb = frame.valid_box(img_w, img_h)
        outside = not (vl <= 0 and vt <= 0 and vr >= W and vb >= H)
        if plan.background == "backdrop":
            bd = make_backdrop(
                np.array(look.palette, np.float32), np.array(look.palette_weights), (W, H), plan.seed
            ).astype(np.float32) * np.float32(1 / 255)
            out = _mix(out, bd, person)
        elif plan.background == "blur" or outside:
            blurred = _masked_blur(out, person, sigma=0.014 * max(W, H))
            if plan.background == "blur":
                out = _mix(out, blurred, person)
            else:  # keep, but the frame reaches past the photo: soft fill outside it
                valid: np.ndarray = np.zeros((H, W), np.float32)
                valid[vt:vb, vl:vr] = 1.0
                valid = cv2.GaussianBlur(valid, (0, 0), 0.01 * max(W, H) + 1)
                out = _mix(out, blurred, np.maximum(valid, person))
        timings["background"] = time.perf_counter() - t

        # ---- per-variation exposure / contrast / warmth (zero for a mode's first variation)
        ex, ct, wm = (plan.params.get(k, 0.0) for k in ("exposure", "contrast", "warmth"))
        if ex or ct or wm:
            g = (1.0 + ex * plan.strength) * np.array([1.0 + wm, 1.0, 1.0 - wm], np.float32)
            c = 1.0 + ct * plan.strength
            affine = np.concatenate([np.diag(g * c), (0.5 * (1.0 - c) * g)[:, None]], axis=1).astype(np.float32)
            out = cv2.transform(out, affine)

        # ---- texture and light, matched on the thumbnail the style encoder measures
        t = time.perf_counter()
        out = self._texture_and_light(out, look, plan, hold, face, float(plan.strength))
        pixels = cv2.addWeighted(out, 255.0, out, 0.0, 0.5, dtype=cv2.CV_8U)
        timings["texture"] = time.perf_counter() - t

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
        self,
        out: np.ndarray,
        look: LookParams,
        plan: VariationPlan,
        hold: float,
        face: np.ndarray | None,
        s: float,
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
        sigma_a = amount = 0.0
        if target_soft > m["softness"] + 0.05:
            sigma_a = _search(lambda c: _texture(cv2.GaussianBlur(L, (0, 0), c))["softness"], target_soft, 0.3, 1.8)
        elif target_soft < m["softness"] - 0.05:
            detail_a = L - cv2.GaussianBlur(L, (0, 0), 1.0)
            amount = _search(lambda c: _texture(L + c * detail_a)["softness"], target_soft, 0.0, 1.5, decreasing=True)
        keep_face = None if face is None else face * np.float32(hold)
        if sigma_a > 0:
            blurred = _lowpass(out, sigma_a / f)
            out = blurred if keep_face is None else _mix(out, blurred, keep_face)
        elif amount > 0:
            low = _lowpass(out, 1.0 / f)
            if keep_face is None:  # out + amount * (out - low), in one pass
                out = cv2.addWeighted(out, 1.0 + amount, low, -amount, 0.0)
            else:  # the held face keeps its own detail level
                out = _mix(out, low, np.float32(1.0 + amount) - np.float32(amount) * keep_face)

        # vignette: radial gain solved from the measured centre/ring luminance
        L2, m2 = measure(out) if (sigma_a or amount) else (L, m)
        target_v = m2["vignette"] + (look.vignette - m2["vignette"]) * s
        ring = float(L2[_radius_map(*L2.shape) > 0.8].mean()) + 1e-3
        mean = float(L2.mean()) + 5.0
        k = float(np.clip((target_v - m2["vignette"]) * mean / (ring * 0.55), -0.25, 0.6))

        # grain: monochrome noise at analysis scale (film-like grain size), to the mode's level
        target_g = float(np.expm1(min(look.grain, 3.0)))  # profiles are data: never trust them to be sane
        current_g = float(np.expm1(m2["grain"]))
        add = np.sqrt(max(target_g**2 - current_g**2, 0.0)) * s / _grain_gain()
        if abs(k) > 0.01:
            gain = np.float32(1.0) - np.float32(k) * _vignette_shape(H, W)
            cv2.multiply(out, cv2.merge((gain, gain, gain)), dst=out)  # in place: out is ours
        if add > 0.05:
            rng = np.random.default_rng(plan.seed)
            noise = rng.standard_normal((small_size[1], small_size[0]), dtype=np.float32)
            noise = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC) * np.float32(add * L_TO_RGB / 255.0)
            if face is not None:
                noise *= 1.0 - face * np.float32(hold)
            cv2.add(out, cv2.merge((noise, noise, noise)), dst=out)
        return out


def _search(
    fn: Any, target: float, lo: float, hi: float, *, decreasing: bool = False, steps: int = 4
) -> float:
    """Bisection for the parameter where the monotone ``fn`` reaches ``target`` (clamped to [lo, hi])."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        above = fn(mid) > target
        if above != decreasing:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def _mix(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``b + (a - b) * m`` for HxWx3 float images and an HxW weight, in OpenCV passes.

    NumPy's broadcast over a trailing axis of 3 runs ~3x slower than OpenCV on a merged 3-channel weight,
    and this blend runs several times per 1024² output.
    """
    d = cv2.subtract(a, b)
    cv2.multiply(d, cv2.merge((m, m, m)), dst=d)
    return cv2.add(d, b, dst=d)


def _lowpass(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones (sigma >= 3 px) run at half resolution, several times faster at 1024².

    The half-resolution path subtracts the variance the 2x2 area downsample (1/4 px²) and the linear
    upsample (~2/3 px²) add, so the total blur matches; a Gaussian this wide has no content near the
    half-resolution Nyquist limit: measured, the mean difference is 0.06-0.2 of an 8-bit level.
    """
    if sigma < 3.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    half = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    half = cv2.GaussianBlur(half, (0, 0), float(np.sqrt(max(sigma**2 - 0.92, 0.25))) / 2)
    return cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)


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


@functools.lru_cache(maxsize=16)
def _vignette_shape(h: int, w: int) -> np.ndarray:
    """Radial falloff shape: 0 inside 35 % of the half-diagonal, rising quadratically to 1 at the corners."""
    return np.clip((_radius_map(h, w) - 0.35) / 0.65, 0.0, 1.0) ** 2


@functools.cache
def _grain_gain() -> float:
    """How much of unit white noise made at analysis scale the grain measure sees (fixed seed)."""
    n = np.random.default_rng(0).standard_normal((ANALYSIS_SIDE, ANALYSIS_SIDE)).astype(np.float32)
    return float(np.expm1(_texture(n * 10.0)["grain"]) / 10.0)
