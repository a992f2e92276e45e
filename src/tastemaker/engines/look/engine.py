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
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ...encoders.style import ANALYSIS_SIDE, texture_stats
from ...media import resize_max_side
from ..assets import load_assets
from ..base import BoardAssets, GenerationRequest, PinImage, Rendered, Subject, VariationPlan
from ..planning import plan_variations
from . import scene as scenes
from .backdrop import make_backdrop
from .colour import ColourCharacter, apply_toning, colour_character, keep_skin_alive, toning_amount
from .compose import Frame, content_box, frame_subject
from .fill import extend
from .grade import apply_lut, fit_lut
from .medium import Exemplar, band_profile, match_bands, prepare_exemplar, synthesize
from .segment import WORK_SIDE, face_mask, person_mask, skin_map

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
#: L* units to 8-bit RGB levels (mid-tones), for grain.
L_TO_RGB = 2.4
#: longest side of the medium synthesis (the result is upsampled, guided by the full-size render)
SYNTH_SIDE = 448
#: exemplar resolution per medium: line work keeps its marks resolved, paint its strokes
EXEMPLAR_SIDE = {"line": 900, "paint": 640}
EXEMPLAR_CROP = 640
#: by the identity guard's hold (0, 0.5, 0.8, 1): how much of the medium's marks and colour the face gets;
#: at full hold it gets none
HOLDS = (0.0, 0.5, 0.8, 1.0)
FACE_MEDIUM = (1.0, 0.7, 0.4, 0.0)
FACE_DETAIL = (0.3, 0.55, 0.8, 1.0)
#: the marks' amplitude on the face at hold 0, relative to elsewhere, at most MARK_CLIP L* either way, and
#: full only where the skin is darker than SHADE_FROM L*
FACE_MARKS = 0.8
MARK_CLIP = 22.0
#: the marks' scale in synthesis pixels: an engraver's lines are fine, a painter's strokes broader
MARK_SCALE = {"line": 1.2, "paint": 2.5}
SHADE_FROM = 70.0
MAX_EXEMPLARS = 3
#: how far the picture's balance of detail across octaves moves to the exemplar pin's (see ``match_bands``),
#: and the share of that on the face at hold 0
BAND_MATCH = 1.0
BAND_FACE = 0.0
#: how closely the synthesis follows the picture's shading (patch-search guide weight) off and on the face
GUIDE_REST = 1.6
GUIDE_FACE = 4.0


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
        self._exemplars: OrderedDict[str, Exemplar] = OrderedDict()
        self._exemplar_cache = exemplar_cache
        self._building: dict[str, threading.Lock] = {}

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
                    pick = _choose_scene(pins, intent.scene, int(p.params["variant"]))
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
                "head_top": _head_top(person, subject.face.box, work_scale),
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
        lv = {
            "pre": pre,
            "image": img,
            "person": person,
            "face": face,
            "skin": np.maximum(face, skin),
            "protect": np.maximum(face, SKIN_PROTECT * skin),
        }
        with self._lock:
            prep["levels"][key] = lv
        return lv

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
        img = lv["image"]
        graded = apply_lut(img, self._lut(prep, look))
        base = img.astype(np.float32) * np.float32(1 / 255)
        lab_b = cv2.cvtColor(base, cv2.COLOR_RGB2Lab)
        lab_g = cv2.cvtColor(graded, cv2.COLOR_RGB2Lab)
        if char.restricted:
            tone = toning_amount(strength)
            apply_toning(lab_g, char, 1.0)
            lab_b = apply_toning(lab_b.copy(), char, tone)  # the held face is grey (or toned) too
        else:
            lab_g = keep_skin_alive(lab_g, lab_b, lv["skin"])
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
        side = EXEMPLAR_SIDE.get(kind, 640)
        digest = hashlib.sha1(np.ascontiguousarray(pin.image).data).hexdigest()[:20]
        key = f"{digest}:{kind}:{side}"
        with self._lock:
            ex = self._exemplars.get(key)
            if ex is not None:
                self._exemplars.move_to_end(key)
                return ex
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                ex = self._exemplars.get(key)
            if ex is None:
                img = resize_max_side(pin.image, side)
                if kind == "line":
                    img = _busiest_crop(img, EXEMPLAR_CROP)
                ex = prepare_exemplar(img, side=max(img.shape[:2]), key=pin.id)
                whole = resize_max_side(pin.image, self.synth_side)
                ex.bands = band_profile(cv2.cvtColor(whole.astype(np.float32) * np.float32(1 / 255),
                                                     cv2.COLOR_RGB2Lab)[..., 0])
                with self._lock:
                    self._exemplars[key] = ex
                    while len(self._exemplars) > self._exemplar_cache:
                        self._exemplars.popitem(last=False)
                    self._building.pop(key, None)
        return ex

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
                out = self._place_in_scene(out, person, face_box_out, pin, mode, plan, prep, subject, frame)
                info["scene"] = {"pin": pin.id, "text": pin.text[:80]}
        if background == "backdrop":
            bd = make_backdrop(
                np.array(look.palette, np.float32), np.array(look.palette_weights), (W, H), plan.seed
            ).astype(np.float32) * np.float32(1 / 255)
            out = _mix(out, bd, person)
        elif background == "blur":
            out = _mix(out, _masked_blur(out, person, sigma=0.014 * max(W, H)), person)
        timings["background"] = time.perf_counter() - t

        # ---- light: exposure / contrast / warmth, and a soft directional light
        out = self._light(out, plan, person)

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
                    out, face_strength = self._medium(out, face, ex, strength_m, hold, medium.kind, prep, key)
                    info["medium"] = {"kind": medium.kind, "applied": True, "exemplar": pin.id,
                                      "strength": round(strength_m, 3), "face_strength": round(face_strength, 3)}
        timings["medium"] = time.perf_counter() - t

        # ---- texture and light, matched on the thumbnail the style encoder measures
        t = time.perf_counter()
        out = self._texture_and_light(out, look, plan, hold, face, float(plan.strength),
                                      texture=strength_m == 0.0)
        if char.restricted:
            lab = cv2.cvtColor(np.clip(out, 0.0, 1.0), cv2.COLOR_RGB2Lab)
            out = cv2.cvtColor(apply_toning(lab, char, toning_amount(plan.strength)), cv2.COLOR_Lab2RGB)
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

    # ------------------------------------------------------------------ steps
    def _place_in_scene(
        self, out: np.ndarray, person: np.ndarray, face_box: np.ndarray, pin: PinImage, mode: Mode,
        plan: VariationPlan, prep: dict[str, Any], subject: Subject, frame: Frame,
    ) -> np.ndarray:
        """The person in one of the board's pictures, the scene graded into the mode's look.

        The selfie's light (a spherical-harmonic fit on its face mesh) and the scene's are measured once
        per request and passed to the compositor, which relights the person toward the scene.
        """
        H, W = person.shape
        with self._lock:
            lights = prep.setdefault("lights", {})
            geo = lights.get("geometry", False)
        if geo is False:
            geo = scenes.face_geometry(subject.image, subject.face.landmarks)
            own = scenes.person_light(subject.image, subject.face.landmarks, geometry=geo)
            with self._lock:
                lights["geometry"], lights["person"] = geo, own
        with self._lock:
            seen = lights.get(pin.id)
        if seen is None:
            seen = scenes.scene_light(pin.image)
            with self._lock:
                lights[pin.id] = seen
        hint = float(face_box[3] - face_box[1]) / H
        scene = scenes.fit_scene(pin.image, W, H, person_scale_hint=hint, person_mask=person)
        lut = self._lut(prep, mode.look)
        scene8 = cv2.addWeighted(scene, 255.0, scene, 0.0, 0.5, dtype=cv2.CV_8U)
        graded = apply_lut(scene8, lut)
        scene = scene + (graded - scene) * np.float32(0.5 * plan.strength)  # a pin is already in the look
        face = geo.transformed(frame.matrix()) if geo is not None else None
        return scenes.composite(out, person, tuple(float(v) for v in face_box), scene,  # type: ignore[arg-type]
                                strength=float(plan.strength), seed=plan.seed, light=(lights["person"], seen),
                                face=face)

    @staticmethod
    def _light(out: np.ndarray, plan: VariationPlan, person: np.ndarray) -> np.ndarray:
        ex, ct, wm = (float(plan.params.get(k, 0.0)) for k in ("exposure", "contrast", "warmth"))
        if ex or ct or wm:
            g = (1.0 + ex * plan.strength) * np.array([1.0 + wm, 1.0, 1.0 - wm], np.float32)
            c = 1.0 + ct * plan.strength
            affine = np.concatenate([np.diag(g * c), (0.5 * (1.0 - c) * g)[:, None]], axis=1).astype(np.float32)
            out = cv2.transform(out, affine)
        angle, amount = plan.params.get("light", (0.0, 0.0))
        if amount:
            H, W = person.shape
            yy = (np.arange(H, dtype=np.float32) - H / 2) / (max(H, W) / 2)
            xx = (np.arange(W, dtype=np.float32) - W / 2) / (max(H, W) / 2)
            ramp = np.cos(angle) * xx[None, :] + np.sin(angle) * yy[:, None]
            gain = np.float32(1.0) + np.float32(amount * plan.strength) * np.clip(ramp, -1.0, 1.0)
            cv2.multiply(out, cv2.merge((gain, gain, gain)), dst=out)
        return out

    def _medium(
        self, out: np.ndarray, face: np.ndarray, ex: Exemplar, strength: float, hold: float, kind: str,
        prep: dict[str, Any], key: tuple[Any, ...],
    ) -> tuple[np.ndarray, float]:
        """Re-draw ``out`` from the exemplar's patches; the face keeps its structure (more with ``hold``).

        The synthesis of a variation is kept for the request: when the identity guard asks for a higher
        hold only the face's blend changes, so a re-render costs no new synthesis.
        """
        H, W = out.shape[:2]
        f = min(1.0, self.synth_side / max(H, W))
        size = (max(16, round(W * f)), max(16, round(H * f)))
        face_s = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            syn = prep.setdefault("syntheses", {}).get(key)
        if syn is None:
            small = cv2.resize(np.clip(out, 0.0, 1.0), size, interpolation=cv2.INTER_AREA)
            lab_s = cv2.cvtColor(small, cv2.COLOR_RGB2Lab)
            syn = synthesize(lab_s, ex, guide_weight=GUIDE_REST + (GUIDE_FACE - GUIDE_REST) * face_s,
                             tone_match=0.6 * (1.0 - 0.6 * face_s))
            with self._lock:
                cache = prep["syntheses"]
                if len(cache) >= 16:
                    cache.pop(next(iter(cache)))
                cache[key] = syn
        syn_up = cv2.resize(syn, (W, H), interpolation=cv2.INTER_CUBIC)
        if kind == "line":  # crisp the upsampled marks again
            Ls = syn_up[..., 0]
            syn_up[..., 0] = np.clip(Ls + 0.8 * (Ls - cv2.GaussianBlur(Ls, (0, 0), 1.2 / f)), 0.0, 100.0)
        lab = cv2.cvtColor(np.clip(out, 0.0, 1.0), cv2.COLOR_RGB2Lab)
        # the face: the selfie's own structure, every scale of it, with the medium's marks laid over it
        # (a stroke never replaces an eyelid); the rest of the picture is the synthesis itself
        on_face = float(np.interp(hold, HOLDS, FACE_MEDIUM))
        sigma = max(1.0, MARK_SCALE.get(kind, 1.2) / f)
        detail = syn_up - cv2.GaussianBlur(syn_up, (0, 0), sigma)
        marks = np.clip(detail[..., 0], -MARK_CLIP, MARK_CLIP)
        # as an engraver shades a face: marks in its shadows, little on its lit skin
        shade = np.clip((SHADE_FROM - lab[..., 0]) / 35.0, 0.3, 1.0)
        face_lab = lab.copy()
        # the selfie's finest detail (pores, fine wrinkles) is a photograph's, not a painting's: smoothed
        # away edge-aware as far as the hold allows, while eyes, brows and mouth keep their edges
        keep_detail = float(np.interp(hold, HOLDS, FACE_DETAIL))
        if keep_detail < 1.0:
            face_lab[..., 0] = _smooth_face(lab[..., 0], face, f / MARK_SCALE.get(kind, 1.2), keep_detail)
        face_lab[..., 0] += np.float32(FACE_MARKS * on_face) * marks * shade
        face_lab[..., 1:] += (syn_up[..., 1:] - lab[..., 1:]) * np.float32(0.4 * on_face)
        face_lab[..., 1:] += detail[..., 1:] * np.float32(0.6 * on_face)  # the strokes' own colour
        m = face[..., None]
        composed = syn_up + (face_lab - syn_up) * m
        res = lab + (composed - lab) * np.float32(strength)
        if ex.bands is not None and BAND_MATCH > 0:
            # the medium's balance of fine and broad detail (the pin's own, measured on the whole pin at this
            # size): a painting's surface is busy at the finest octaves, a photograph's is not
            Ls = cv2.resize(res[..., 0], size, interpolation=cv2.INTER_AREA)
            amount = np.float32(BAND_MATCH * strength) * (1.0 - face_s * np.float32(1.0 - BAND_FACE * on_face))
            delta = match_bands(Ls, ex.bands, amount) - Ls
            res[..., 0] = np.clip(res[..., 0] + cv2.resize(delta, (W, H), interpolation=cv2.INTER_CUBIC), 0, 100)
        face_strength = float(strength * on_face)
        return cv2.cvtColor(res, cv2.COLOR_Lab2RGB), face_strength

    def _texture_and_light(
        self,
        out: np.ndarray,
        look: LookParams,
        plan: VariationPlan,
        hold: float,
        face: np.ndarray | None,
        s: float,
        *,
        texture: bool = True,
    ) -> np.ndarray:
        H, W = out.shape[:2]
        f = ANALYSIS_SIDE / max(H, W)
        small_size = (max(1, round(W * f)), max(1, round(H * f)))

        def measure(img: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
            th = cv2.resize(img, small_size, interpolation=cv2.INTER_AREA)
            L = cv2.cvtColor(th, cv2.COLOR_RGB2Lab)[..., 0]
            return L, texture_stats(L)

        L, m = measure(out)
        sigma_a = 0.0
        keep_face = None if face is None else face * np.float32(hold)
        if texture:
            # softness: blur at analysis scale until the measured softness matches. A board sharper than the
            # selfie is not matched by sharpening: an unsharp mask adds halos, not the board's detail (on the
            # Gottlieb board it moved outputs off the board by texture: 1 of 6 right with it, 3 of 6 without)
            target_soft = m["softness"] + (look.softness - m["softness"]) * s
            if target_soft > m["softness"] + 0.05:
                sigma_a = _search(lambda c: texture_stats(cv2.GaussianBlur(L, (0, 0), c))["softness"],
                                  target_soft, 0.3, 1.8)
            if sigma_a > 0:
                blurred = _lowpass(out, sigma_a / f)
                out = blurred if keep_face is None else _mix(out, blurred, keep_face)

        # vignette: radial gain solved from the measured centre/ring luminance
        L2, m2 = measure(out) if sigma_a else (L, m)
        target_v = m2["vignette"] + (look.vignette - m2["vignette"]) * s
        ring = float(L2[_radius_map(*L2.shape) > 0.8].mean()) + 1e-3
        mean = float(L2.mean()) + 5.0
        k = float(np.clip((target_v - m2["vignette"]) * mean / (ring * 0.55), -0.25, 0.6))
        if abs(k) > 0.01:
            gain = np.float32(1.0) - np.float32(k) * _vignette_shape(H, W)
            cv2.multiply(out, cv2.merge((gain, gain, gain)), dst=out)  # in place: out is ours
        if not texture:
            return out
        # grain: monochrome noise at analysis scale (film-like grain size), to the mode's level
        target_g = float(np.expm1(min(look.grain, 3.0)))  # profiles are data: never trust them to be sane
        current_g = float(np.expm1(m2["grain"]))
        add = np.sqrt(max(target_g**2 - current_g**2, 0.0)) * s / _grain_gain()
        if add > 0.05:
            rng = np.random.default_rng(plan.seed)
            noise = rng.standard_normal((small_size[1], small_size[0]), dtype=np.float32)
            noise = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC) * np.float32(add * L_TO_RGB / 255.0)
            if face is not None:
                noise *= 1.0 - face * np.float32(hold)
            cv2.add(out, cv2.merge((noise, noise, noise)), dst=out)
        return out


def _skin_tone(mode: Mode) -> float:
    """The share of the grade's tone the face keeps at hold 0 (see :data:`SKIN_TONE`)."""
    medium = mode.medium
    return SKIN_TONE_MEDIUM if medium is not None and not medium.photographic else SKIN_TONE


def _smooth_face(L: np.ndarray, face: np.ndarray, f: float, keep: float) -> np.ndarray:
    """``L`` with the face's finest detail reduced to ``keep`` of itself by an edge-aware (guided) filter.

    Only the face's bounding box is filtered; ``f`` is the synthesis scale (the filter's radius follows
    the size of the medium's marks).
    """
    ys, xs = np.nonzero(face > 0.02)
    out = L.copy()
    if len(ys) == 0:
        return out
    pad = max(4, round(4 / f))
    y0, y1 = max(0, ys.min() - pad), min(L.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(L.shape[1], xs.max() + pad + 1)
    crop = np.ascontiguousarray(L[y0:y1, x0:x1])
    radius = max(2, round(1.5 / f))
    guided = getattr(getattr(cv2, "ximgproc", None), "guidedFilter", None)
    if guided is not None:
        smooth = guided(crop, crop, radius, 64.0)
    else:  # a plain OpenCV build: the bilateral filter does the same job, slower
        smooth = cv2.bilateralFilter(crop, 2 * radius + 1, 6.0, float(radius))
    out[y0:y1, x0:x1] = smooth + (crop - smooth) * np.float32(keep)
    return out


def _with_params(plan: VariationPlan, **params: Any) -> VariationPlan:
    from dataclasses import replace

    return replace(plan, params={**plan.params, **params})


def _no_pins_reason(assets: BoardAssets | None, what: str) -> str:
    if assets is None:
        return f"{what} need the board's pins; this request has a profile only (give the board, not the profile)"
    return f"{what} could not be loaded from {assets.source}"


def _choose_scene(pins: list[PinImage], query: str | None, variant: int) -> PinImage:
    """The scene pin: the best match of the prompt's place words to pin titles/tags, else by engagement."""
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


def _head_top(person: np.ndarray, face_box: tuple[int, int, int, int], scale: float) -> float | None:
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


def _busiest_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` x ``side`` window with the most marks (edge density): margins and blank paper out."""
    h, w = img.shape[:2]
    if h <= side and w <= side:
        return img
    small_f = 128 / max(h, w)
    g = cv2.cvtColor(cv2.resize(img, None, fx=small_f, fy=small_f, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    e = np.abs(cv2.Laplacian(g.astype(np.float32), cv2.CV_32F))
    cw, ch = max(1, round(min(side, w) * small_f)), max(1, round(min(side, h) * small_f))
    integ = cv2.integral(e)
    best, pos = -1.0, (0, 0)
    for y in range(0, e.shape[0] - ch + 1, 2):
        for x in range(0, e.shape[1] - cw + 1, 2):
            s = integ[y + ch, x + cw] - integ[y, x + cw] - integ[y + ch, x] + integ[y, x]
            if s > best:
                best, pos = float(s), (x, y)
    x0, y0 = round(pos[0] / small_f), round(pos[1] / small_f)
    return np.ascontiguousarray(img[y0 : y0 + min(side, h), x0 : x0 + min(side, w)])


def _search(fn: Any, target: float, lo: float, hi: float, *, steps: int = 4) -> float:
    """Bisection for the parameter where the increasing ``fn`` reaches ``target`` (clamped to [lo, hi])."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fn(mid) > target:
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
    return float(np.expm1(texture_stats(n * 10.0)["grain"]) / 10.0)
