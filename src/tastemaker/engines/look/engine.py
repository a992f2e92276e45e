"""The look engine: the person re-drawn in a taste mode's look — colour, medium and place. CPU only, no weights.

The board is the model. Per variation:

1. **frame** the selfie for the aspect, size and shot type with portrait practice (``compose``): the
   whole head with headroom, crops between joints, never enlarged past the selfie's detail (a smaller,
   honest output instead, reported in ``info["size"]``);
2. **grade** colour and tone toward the mode's colour distribution with a sliced-OT 3D LUT
   (``grade``), then hold the mode's **colour character** (``colour``): monochrome and toned modes get
   their toning curve everywhere — skin and eyes included —, colour modes keep skin alive;
3. **extend** the canvas where the frame reaches past the photo by push-pull interpolation (``fill``):
   never a mirror image;
4. **background**: keep it, blur it, replace it with a backdrop from the mode's palette
   (``backdrop``), or put the person into a **scene** from the board (``scene``: the pin chosen by the
   prompt's place words or by engagement, light and colour harmonised, contact shadow);
5. **light**: a soft directional light and small exposure / contrast / warmth changes per variation;
6. **medium** (modes whose pins are paintings or line work, when the pins are here): the picture is
   re-drawn from patches of one of the mode's medoid pins by guided patch synthesis (``medium``); the
   face keeps the selfie's structure above the finest scale, and less medium as the identity guard
   raises ``hold``;
7. **texture and light matching** for photographic modes: softness, vignette and grain until the
   thumbnail's measurements match the mode's.

Variations differ by mode, exemplar, background or scene, crop, and light; the same seed gives the
same pixels. Variations render on two threads (OpenCV, NumPy and faiss release the GIL).

This module is the engine itself: planning, the per-subject preparation and caches (masks, source
levels, the graded selfie), framing and the order of the steps. The steps with substance live apart:
the background's scene and blur in :mod:`.place` (step 4, over :mod:`.scene`), the variation's light and
the texture matching in :mod:`.finish` (steps 5 and 7), the medium in :mod:`.medium_stage` (step 6).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np

from ...media import resize_max_side
from ..assets import load_assets
from ..base import BoardAssets, GenerationRequest, PinImage, Rendered, Subject, VariationPlan
from ..planning import plan_variations
from .backdrop import make_backdrop
from .colour import ColourCharacter, apply_toning, colour_character, keep_skin_alive, toning_amount
from .compose import Frame, content_box, frame_subject
from .fill import extend
from .finish import match_texture_and_light, mix, vary_light
from .grade import apply_lut, fit_lut
from .medium import Exemplar
from .medium_stage import SYNTH_SIDE, Exemplars, redraw
from .place import choose_scene, masked_blur, place_in_scene
from .segment import WORK_SIDE, face_mask, head_top, person_mask, skin_map
from .skin import keep_skin_tone, selfie_skin, skin_patches

if TYPE_CHECKING:
    from ...boards import Board
    from ...prompt import PromptIntent
    from ...taste.profile import LookParams, Mode, TasteProfile

BACKGROUND_CYCLE = ("keep", "backdrop", "blur")
SCENE_CYCLE = ("keep", "scene", "backdrop", "blur")
FRAMING_CYCLE = ("portrait", "closeup", "portrait", "half")
#: on the face the grade's luminance change is kept at this share (tone and mood; hold lowers it): less in
#: a grade-only mode, where the face's tone is all that moves it (0.9 there drifted past the identity
#: threshold on half the demo renders, and each drift costs a second render), more where a medium re-draws it
SKIN_TONE = 0.6
SKIN_TONE_MEDIUM = 0.9
SKIN_PROTECT = 0.6
MAX_EXEMPLARS = 3


class LookEngine:
    """Default engine: classic computer vision and example-based synthesis, driven by the taste profile."""

    name = "look"
    version = "2"
    accepts_identity_only = False

    def __init__(self, *, threads: int = 2, lut_iterations: int = 10, synth_side: int = SYNTH_SIDE,
                 exemplar_cache: int = 12) -> None:
        self.threads = max(1, threads)
        self.lut_iterations = lut_iterations
        self.synth_side = synth_side
        self._lock = threading.Lock()
        self._exemplars = Exemplars(exemplar_cache, self._lock)

    # ------------------------------------------------------------------ board
    def prepare_board(self, board: Board, profile: TasteProfile) -> BoardAssets:
        """Decode the pins medium transfer and scenes draw from (each mode's medoids and heaviest pins)."""
        return load_assets(board, profile)

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        request: GenerationRequest,
        subject: Subject,
        profile: TasteProfile,
        intent: PromptIntent,
        *,
        assets: BoardAssets | None = None,
    ) -> list[VariationPlan]:
        has_scenes = assets is not None and bool(assets.pins)
        seen: dict[str, int] = {}
        prep = self._prepare(subject)
        body_below = prep["body_below_chin"]
        framings = FRAMING_CYCLE if body_below >= 3.0 else ("portrait", "closeup")

        def extra(i: int, mode_id: str, rng: np.random.Generator) -> dict[str, Any]:
            k = seen.get(mode_id, 0)
            seen[mode_id] = k + 1
            mode = profile.mode(mode_id)
            params: dict[str, Any] = {
                "variant": k,
                # a soft window light from a random side; the mode's first variation gets the mildest
                "light": (float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.04, 0.07) if k == 0 else
                                                                   rng.uniform(0.07, 0.14))),
                "exposure": 0.0 if k == 0 else float(rng.uniform(-0.06, 0.06)),
                "contrast": 0.0 if k == 0 else float(rng.uniform(-0.07, 0.07)),
                "warmth": 0.0 if k == 0 else float(rng.uniform(-0.035, 0.035)),
            }
            pins = assets.for_mode(mode_id) if assets is not None else []
            if mode.medium is not None and not mode.medium.photographic and pins:
                medoids = [p for p in pins if p.id in mode.medoids][:MAX_EXEMPLARS] or pins[:MAX_EXEMPLARS]
                params["exemplar"] = medoids[k % len(medoids)].id
            return params

        plans = plan_variations(
            request, profile, intent, backgrounds=SCENE_CYCLE if has_scenes else BACKGROUND_CYCLE,
            framings=framings, extra=extra,
        )
        out = []
        for p in plans:
            if p.background == "scene":
                pins = assets.for_mode(p.mode_id) if assets is not None else []
                if not pins and assets is not None:
                    pins = sorted(assets.pins.values(), key=lambda q: (-q.weight, q.id))
                if pins:
                    pick = choose_scene(pins, intent.scene, int(p.params["variant"]))
                    p = _with_params(p, scene=pick.id)
                else:
                    p = _with_params(p, scene=None)
            out.append(p)
        return out

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
            left, top, right, bottom = subject.face.box
            fh = max(1.0, float(bottom - top))
            content = content_box(img)
            cb = max(1, min(person.shape[0], round(content[3] * work_scale)))
            prep = {
                "work_scale": work_scale,
                "person": person,
                "skin": skin,
                "samples": resize_max_side(img, 160).reshape(-1, 3),
                "touches_bottom": bool(person[max(0, cb - 3) : cb].mean() > 0.05),
                "head_top": head_top(person, subject.face.box, work_scale),
                "body_below_chin": (content[3] - float(bottom)) / fh,
                "content": content,
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
        patches = skin_patches(img.shape, subject.face.landmarks * pre, tuple(v * pre for v in subject.face.box))
        lv = {
            "pre": pre,
            "image": img,
            "person": person,
            "face": face,
            "skin": np.maximum(face, skin),
            "protect": np.maximum(face, SKIN_PROTECT * skin),
            # the selfie's own skin tone (L*, b*) on the face's skin: what a colour render keeps
            "skin_tone": selfie_skin(img, patches),
            "face_skin": patches,
        }
        with self._lock:
            prep["levels"][key] = lv
        return lv

    def _graded(
        self, lv: dict[str, Any], prep: dict[str, Any], look: LookParams, char: ColourCharacter,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the selfie in 0..1, its Lab, its Lab graded toward ``look`` in ``char``) at one source resolution.

        None of it depends on the hold or the strength, so it is made once per level and look: a guard step
        that holds one variation's face more re-blends it (it used to re-grade the full-size selfie, 0.75 s
        of a 1.2 s step on the demo board). Callers must not write into the arrays.
        """
        key = (lv["pre"], self._look_key(look), char.kind)
        with self._lock:
            got = prep.setdefault("graded", {}).get(key)
        if got is not None:
            return cast(tuple[np.ndarray, np.ndarray, np.ndarray], got)
        img = lv["image"]
        graded = apply_lut(img, self._lut(prep, look))
        base = img.astype(np.float32) * np.float32(1 / 255)
        lab_b = cv2.cvtColor(base, cv2.COLOR_RGB2Lab)
        lab_g = cv2.cvtColor(graded, cv2.COLOR_RGB2Lab)
        if char.restricted:
            apply_toning(lab_g, char, 1.0)
        else:
            lab_g = keep_skin_alive(lab_g, lab_b, lv["skin"])
        with self._lock:
            cache = prep["graded"]
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = (base, lab_b, lab_g)
        return base, lab_b, lab_g

    def _composite(
        self, lv: dict[str, Any], prep: dict[str, Any], look: LookParams, char: ColourCharacter, hold: float,
        strength: float, skin_tone: float = SKIN_TONE,
    ) -> np.ndarray:
        """The selfie graded toward a mode at source resolution, in its colour character, face held by ``hold``.

        The grade is pointwise, so grading once in source space and warping per variation gives the
        same pixels as grading every output, at a fraction of the cost.
        """
        key = (lv["pre"], self._look_key(look), round(hold, 3), round(strength, 3), skin_tone)
        with self._lock:
            comp = prep["composites"].get(key)
        if comp is not None:
            return comp
        base, lab_b, lab_g = self._graded(lv, prep, look, char)
        if char.restricted:
            lab_b = apply_toning(lab_b.copy(), char, toning_amount(strength))  # the held face is grey (or toned) too
        # the face and skin like it keep part of their own tone, more as the guard raises hold
        keep = np.float32(1.0 - (1.0 - skin_tone) * (1.0 - hold) - hold) if hold < 1 else np.float32(0.0)
        protect = lv["protect"][..., None]
        lab_t = lab_g.copy()
        lab_t[..., 0] = lab_g[..., 0] + (lab_b[..., 0] - lab_g[..., 0]) * (1 - keep) * protect[..., 0]
        lab_t[..., 1:] = lab_g[..., 1:] + (lab_b[..., 1:] - lab_g[..., 1:]) * np.float32(hold) * protect
        target = cv2.cvtColor(lab_t, cv2.COLOR_Lab2RGB)
        base_c = cv2.cvtColor(lab_b, cv2.COLOR_Lab2RGB) if char.restricted else base
        comp = base_c + (target - base_c) * np.float32(strength)
        with self._lock:
            if len(prep["composites"]) > 16:
                prep["composites"].clear()
            prep["composites"][key] = comp
        return comp

    # ------------------------------------------------------------------ exemplars
    def exemplar(self, pin: PinImage, kind: str) -> Exemplar:
        """The prepared exemplar for a pin (cached by pixel content, built once even when asked twice)."""
        return self._exemplars.get(pin, kind, self.synth_side)

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        plans: Sequence[VariationPlan],
        subject: Subject,
        profile: TasteProfile,
        request: GenerationRequest,
        *,
        hold: Sequence[float],
        assets: BoardAssets | None = None,
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
                head_top=prep["head_top"],
                bounds=prep["content"],
            )
            jobs.append((plan, h, frame, self._level_key(frame.scale)))
        chars = {m.id: colour_character(m.look) for m in profile.modes}
        needed = {(key, plan.mode_id, h, plan.strength) for plan, h, _, key in jobs}

        def build(item: tuple[float, str, float, float]) -> None:
            key, mode_id, h, strength = item
            lv = self._level(subject, prep, key)
            mode = profile.mode(mode_id)
            self._composite(lv, prep, mode.look, chars[mode_id], h, strength, _skin_tone(mode))

        def draw(job: tuple[VariationPlan, float, Frame, float]) -> Rendered:
            plan, h, frame, key = job
            return self._render_one(plan, h, frame, self._level(subject, prep, key), subject, profile, prep,
                                    chars[plan.mode_id], assets)

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
        char: ColourCharacter,
        assets: BoardAssets | None,
    ) -> Rendered:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        info: dict[str, Any] = {"colour": char.kind}
        mode = profile.mode(plan.mode_id)
        look = mode.look
        img_h, img_w = subject.image.shape[:2]
        W, H = frame.out_w, frame.out_h
        if frame.reduced and frame.requested is not None:
            info["size"] = {
                "requested": list(frame.requested), "rendered": [W, H],
                "reason": f"the selfie has {frame.ch:.0f} px for this crop; more than {frame.scale:.1f}x "
                          "would only enlarge blur and compression blocks",
            }
        m = frame.matrix(lv["pre"])
        comp = self._composite(lv, prep, look, char, hold, plan.strength, _skin_tone(mode))
        out = cv2.warpAffine(comp, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        person = cv2.warpAffine(lv["person"], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        face = cv2.warpAffine(lv["face"], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        content = prep["content"]
        if not frame.covers(img_w, img_h, content):
            inside: np.ndarray = np.zeros(lv["image"].shape[:2], np.float32)
            x0, y0, x1, y1 = (round(v * lv["pre"]) for v in content)
            inside[y0:y1, x0:x1] = 1.0
            valid = cv2.warpAffine(inside, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            out = extend(out, valid, seed=plan.seed)
            person = person * valid
            info["extended"] = "the frame reaches past the photo: its colours are continued (never mirrored)"
        fb = subject.face.box
        face_box_out = frame.to_output(np.array([[fb[0], fb[1]], [fb[2], fb[3]]], np.float32)).ravel()
        timings["frame_grade"] = time.perf_counter() - t0

        # ---- background
        t = time.perf_counter()
        background = plan.background
        if background == "scene":
            pin = assets.pins.get(plan.params.get("scene") or "") if assets is not None else None
            if pin is None:
                background = "backdrop"
                info["scene"] = {"fallback": "backdrop", "reason": _no_pins_reason(assets, "a scene")}
            else:
                out = place_in_scene(out, person, face_box_out, pin, self._lut(prep, look), plan, prep, subject,
                                     frame, lock=self._lock)
                info["scene"] = {"pin": pin.id, "text": pin.text[:80]}
        if background == "backdrop":
            bd = make_backdrop(
                np.array(look.palette, np.float32), np.array(look.palette_weights), (W, H), plan.seed
            ).astype(np.float32) * np.float32(1 / 255)
            out = mix(out, bd, person)
        elif background == "blur":
            out = mix(out, masked_blur(out, person, sigma=0.014 * max(W, H)), person)
        timings["background"] = time.perf_counter() - t

        # ---- light: exposure / contrast / warmth, and a soft directional light
        out = vary_light(out, plan, person)

        # ---- medium
        t = time.perf_counter()
        medium = mode.medium
        strength_m = 0.0
        if medium is None:
            info["medium"] = {"kind": "unknown", "applied": False, "fallback": "grade only",
                              "reason": "the profile carries no medium analysis (a private release, or made before "
                                        "it); give the board itself to transfer its medium"}
        elif medium.photographic:
            info["medium"] = {"kind": "photo", "applied": False}
        else:
            pin = assets.pins.get(plan.params.get("exemplar") or "") if assets is not None else None
            if pin is None:
                info["medium"] = {"kind": medium.kind, "applied": False, "fallback": "grade only",
                                  "reason": _no_pins_reason(assets, "the medium's exemplar pins")}
            else:
                try:
                    ex = self.exemplar(pin, medium.kind)
                except ValueError as exc:  # an exemplar too small to hold a mark
                    info["medium"] = {"kind": medium.kind, "applied": False, "fallback": "grade only",
                                      "reason": f"exemplar pin {pin.id}: {exc}"}
                else:
                    strength_m = float(medium.strength) * float(plan.strength)
                    key = (plan.seed, plan.index, self._look_key(look), plan.strength, ex.key, W, H,
                           plan.background, plan.params.get("scene"))
                    out, face_strength = redraw(out, face, ex, strength_m, hold, medium.kind, prep, key,
                                                        synth_side=self.synth_side, lock=self._lock)
                    info["medium"] = {"kind": medium.kind, "applied": True, "exemplar": pin.id,
                                      "strength": round(strength_m, 3), "face_strength": round(face_strength, 3)}
        timings["medium"] = time.perf_counter() - t

        # ---- texture and light, matched on the thumbnail the style encoder measures
        t = time.perf_counter()
        out = match_texture_and_light(out, look, plan, hold, face, float(plan.strength), texture=strength_m == 0.0)
        if char.restricted:
            lab = cv2.cvtColor(np.clip(out, 0.0, 1.0), cv2.COLOR_RGB2Lab)
            out = cv2.cvtColor(apply_toning(lab, char, toning_amount(plan.strength)), cv2.COLOR_Lab2RGB)
        elif lv["skin_tone"] is not None:  # a colour look keeps the person's skin tone (ITA°), see .skin
            warp = (m, (W, H))
            skin = cv2.warpAffine(lv["skin"], *warp, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            face_skin = cv2.warpAffine(lv["face_skin"], *warp, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            out, kept = keep_skin_tone(out, face_skin, skin, lv["skin_tone"])
            if kept is not None:
                info["skin_tone"] = kept
        pixels = cv2.addWeighted(out, 255.0, out, 0.0, 0.5, dtype=cv2.CV_8U)
        timings["texture"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        return Rendered(
            pixels=pixels,
            plan=plan,
            hold=hold,
            face_box=tuple(int(round(v)) for v in face_box_out),  # type: ignore[arg-type]
            timings=timings,
            info=info,
        )


def _skin_tone(mode: Mode) -> float:
    """The share of the grade's tone the face keeps at hold 0 (see :data:`SKIN_TONE`)."""
    medium = mode.medium
    return SKIN_TONE_MEDIUM if medium is not None and not medium.photographic else SKIN_TONE


def _with_params(plan: VariationPlan, **params: Any) -> VariationPlan:
    from dataclasses import replace

    return replace(plan, params={**plan.params, **params})


def _no_pins_reason(assets: BoardAssets | None, what: str) -> str:
    if assets is None:
        return f"{what} need the board's pins; this request has a profile only (give the board, not the profile)"
    return f"{what} could not be loaded from {assets.source}"
