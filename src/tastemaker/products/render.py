"""A product shown in a taste mode's look: placed, on a backdrop, in a board scene or its own photo, lit, shadowed.

One variation, at one product hold (0 = the mode's styling on the product too, 1 = the product's own pixels):

1. **place** the cut-out on the output frame: standing on the lower part of the frame, its size by the plan's
   framing (a close-up fills more of it), never enlarged past 2x (reported);
2. **background** from the look engine's own pieces: a palette backdrop (:func:`..engines.look.backdrop.
   make_backdrop`), a board scene (:func:`..engines.look.scene.fit_scene`, graded toward the mode with
   :mod:`..engines.look.grade`), or the photo's own background graded (``keep``) or blurred (``blur``);
3. **light** matched to the background: its light direction and colour (:func:`..engines.look.scene.
   scene_light`) give the product a gentle directional gradient (mean-preserving, so its colours stay) and,
   below full hold, part of the scene's illuminant (von Kries) and of the mode's grade;
4. **contact shadow**: the matte squashed onto the floor, pushed away from the light, blurred (a soft cast
   shadow) plus a tight, darker occlusion line at the base, multiplied into the background (not on a ``keep``
   background, whose photo has its own);
5. **medium** for painting and line modes (:func:`..engines.look.medium_stage.redraw`, the product as the
   "face" it holds), and the mode's softness, vignette and grain (:func:`..engines.look.finish.
   match_texture_and_light`), kept off the product by its hold.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..engines.base import BoardAssets, VariationPlan
from ..engines.look import scene as scenes
from ..engines.look.backdrop import make_backdrop
from ..engines.look.fill import extend
from ..engines.look.finish import match_texture_and_light, mix
from ..engines.look.grade import apply_lut, blend_lut, fit_lut
from ..engines.look.medium_stage import SYNTH_SIDE, Exemplars, redraw
from ..engines.look.place import masked_blur
from ..media import resize_max_side
from .cutout import Cutout

if TYPE_CHECKING:
    from ..taste.profile import Mode, TasteProfile

#: the product's height as a share of the frame, by framing
FILL = {"closeup": 0.62, "portrait": 0.52, "half": 0.44, "full": 0.36}
#: where the product stands (its base), as a share of the frame's height
BASE = 0.86
MAX_ENLARGE = 2.0
#: share of the mode's grade / the scene's illuminant the product gets at hold 0 (x strength)
PRODUCT_GRADE = 0.04
PRODUCT_ILLUMINANT = 0.03
#: the directional light's amplitude on the product (mean-preserving), at hold 0 and at full hold
LIGHT_RAMP = (0.06, 0.03)
SHADOW_OPACITY = 0.42
OCCLUSION_OPACITY = 0.55


@dataclass
class Placed:
    """One render: ``pixels`` uint8 RGB, the cut-out placed the same way (``ref``, ``alpha``) for the guard."""

    pixels: np.ndarray
    ref: np.ndarray
    alpha: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class ProductRenderer:
    """Renders cut-outs in a profile's modes; holds the caches one request's variations share."""

    def __init__(self, *, synth_side: int = SYNTH_SIDE) -> None:
        self._lock = threading.Lock()
        self._exemplars = Exemplars(6, self._lock)
        self.synth_side = synth_side
        self._prep: dict[Any, Any] = {}

    # ------------------------------------------------------------------------------------- placement
    @staticmethod
    def placement(cut: Cutout, plan: VariationPlan, W: int, H: int) -> tuple[np.ndarray, float]:
        """The 2x3 matrix from cut-out pixels to output pixels, and its scale. On its own photo (``keep``,
        ``blur``) the product stays where it was: the photo cropped to the frame around it, never extended."""
        x0, y0, x1, y1 = cut.box
        bw, bh = max(1, x1 - x0), max(1, y1 - y0)
        if plan.background in ("keep", "blur") and cut.source == "grabcut":
            ph, pw = cut.alpha.shape
            s = max(W / pw, H / ph)
            tx = float(np.clip(W / 2 - s * (x0 + x1) / 2, W - s * pw, 0.0))
            ty = float(np.clip(H / 2 - s * (y0 + y1) / 2, H - s * ph, 0.0))
            return np.array([[s, 0.0, tx], [0.0, s, ty]], np.float32), float(s)
        fill = FILL.get(plan.framing, FILL["portrait"]) * float(plan.params.get("zoom", 1.0))
        s = min(fill * H / bh, 0.56 * W / bw, MAX_ENLARGE)
        sx = float(plan.params.get("shift", (0.0, 0.0))[0])
        cx = W / 2 + sx * 0.12 * W
        base = BASE * H
        tx = cx - s * (x0 + x1) / 2
        ty = base - s * y1
        ty = min(ty, H - 1 - s * y1)  # the base stays in the frame
        return np.array([[s, 0.0, tx], [0.0, s, ty]], np.float32), float(s)

    # ------------------------------------------------------------------------------------- render
    def render(self, cut: Cutout, plan: VariationPlan, hold: float, size: tuple[int, int], profile: TasteProfile,
               assets: BoardAssets | None, *, restyle: bool = False) -> Placed:
        """One variation at ``hold``; ``size`` = (W, H)."""
        W, H = size
        mode = profile.mode(plan.mode_id)
        s = float(plan.strength)
        info: dict[str, Any] = {}
        m, scale = self.placement(cut, plan, W, H)
        if scale > 1.01:
            info["enlarged"] = round(scale, 2)
        src = cut.rgb.astype(np.float32) * np.float32(1 / 255)
        prod = cv2.warpAffine(src, m, (W, H), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)
        prod = np.clip(prod, 0.0, 1.0)
        alpha = np.clip(cv2.warpAffine(cut.alpha, m, (W, H), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT), 0.0, 1.0)
        ref = cv2.addWeighted(prod, 255.0, prod, 0.0, 0.5, dtype=cv2.CV_8U)

        # the background (and its light) do not depend on the hold: made once per variation
        key = ("bg", id(cut), plan.index, plan.seed, plan.mode_id, plan.background, W, H)
        with self._lock:
            cached = self._prep.get(key)
        if cached is None:
            bg, shadow_ok, background = self._background(cut, plan, mode, m, (W, H), alpha, assets, info)
            bg8 = cv2.addWeighted(bg, 255.0, bg, 0.0, 0.5, dtype=cv2.CV_8U)
            cached = (bg, shadow_ok, background, scenes.scene_light(resize_max_side(bg8, 256)), dict(info))
            with self._lock:
                self._prep[key] = cached
        bg, shadow_ok, background, light, bg_info = cached
        info.update(bg_info)
        info["background"] = background
        info["light"] = {"direction": [round(float(v), 3) for v in light.direction],
                         "colour": [round(float(v), 3) for v in light.colour]}
        styled = prod.copy()  # the styling only where the product is (its box): outside, alpha hides it
        ys, xs = np.nonzero(alpha > 0)
        if len(xs):
            y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
            styled[y0:y1, x0:x1] = self._style_product(cut, prod[y0:y1, x0:x1], alpha[y0:y1, x0:x1], mode, s, hold,
                                                       light, restyle)
        if shadow_ok:
            bg = self._shadow(bg, alpha, light, s)
            info["shadow"] = "contact"
        out = mix(styled, bg, alpha)
        out = self._medium(out, alpha, plan, mode, hold, assets, info)
        texture = not (info.get("medium") or {}).get("applied", False)
        protect = alpha  # the product is never softened or grained: its print and edges are what it sells
        out = match_texture_and_light(out, mode.look, plan, 1.0, protect, s, texture=texture)
        pixels = cv2.addWeighted(out, 255.0, out, 0.0, 0.5, dtype=cv2.CV_8U)
        return Placed(pixels=pixels, ref=ref, alpha=alpha, info=info)

    def _lut(self, key: str, samples: np.ndarray, mode: Mode) -> np.ndarray:
        with self._lock:
            lut = self._prep.get(key)
        if lut is None:
            lut = fit_lut(samples, mode.look.color_array(), seed=0, iterations=6, size=17)
            with self._lock:
                if len(self._prep) > 64:
                    self._prep.clear()
                self._prep[key] = lut
        return lut

    def _background(self, cut: Cutout, plan: VariationPlan, mode: Mode, m: np.ndarray, size: tuple[int, int],
                    alpha: np.ndarray, assets: BoardAssets | None, info: dict[str, Any]
                    ) -> tuple[np.ndarray, bool, str]:
        W, H = size
        background = plan.background
        s = float(plan.strength)
        if background == "scene":
            pin = assets.pins.get(plan.params.get("scene") or "") if assets is not None else None
            if pin is None:
                background = "backdrop"
                info["scene"] = {"fallback": "backdrop", "reason": "a scene needs the board's pins; this request "
                                 "has none (give the board, not only its profile)"}
            else:
                sc = scenes.fit_scene(pin.image, W, H, person_scale_hint=0.2, person_mask=alpha)
                sc8 = cv2.addWeighted(sc, 255.0, sc, 0.0, 0.5, dtype=cv2.CV_8U)
                lut = self._lut(f"scene:{pin.id}:{mode.id}", resize_max_side(pin.image, 96).reshape(-1, 3), mode)
                graded = apply_lut(sc8, lut)
                info["scene"] = {"pin": pin.id, "text": pin.text[:80]}
                return sc + (graded - sc) * np.float32(0.5 * s), True, background
        if background in ("keep", "blur"):
            photo = cut.rgb if cut.source == "grabcut" else None
            if photo is None:
                background = "backdrop"
                info["background_fallback"] = "a transparent PNG has no background of its own: a backdrop instead"
            else:
                keep = self._kept_photo(cut, mode, m, (W, H), s)
                if background == "blur":
                    keep = mix(keep, masked_blur(keep, alpha, sigma=0.014 * max(W, H)), alpha)
                return keep, False, background
        look = mode.look
        bd = make_backdrop(np.array(look.palette, np.float32), np.array(look.palette_weights), (W, H), plan.seed)
        return bd.astype(np.float32) * np.float32(1 / 255), True, "backdrop"

    def _kept_photo(self, cut: Cutout, mode: Mode, m: np.ndarray, size: tuple[int, int], s: float) -> np.ndarray:
        """The product photo's own background at the output's placement, graded into the mode, extended (never
        mirrored) where the frame reaches past the photo."""
        W, H = size
        raw = cut.cache.get("photo")
        photo = raw if raw is not None else cut.rgb
        lut = self._lut(f"photo:{id(cut)}:{mode.id}", resize_max_side(photo, 96).reshape(-1, 3), mode)
        graded = apply_lut(photo, blend_lut(lut, s))
        out = cv2.warpAffine(graded, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        valid = cv2.warpAffine(np.ones(photo.shape[:2], np.float32), m, (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)
        if float(valid.min()) < 0.999:
            out = extend(out, valid, seed=0)
        return np.asarray(out, np.float32)

    def _style_product(self, cut: Cutout, prod: np.ndarray, alpha: np.ndarray, mode: Mode, s: float, hold: float,
                       light: scenes.SceneLight, restyle: bool) -> np.ndarray:
        """The product's own pixels with part of the look (less with ``hold``) and the scene's light direction."""
        free = (1.0 - hold) * s
        out = prod
        grade = (1.0 if restyle else PRODUCT_GRADE) * free
        if grade > 0.01:
            lut = self._lut(f"product:{id(cut)}:{mode.id}",
                            resize_max_side(cut.rgb, 96)[resize_max_side(cut.alpha, 96) > 0.5].reshape(-1, 3), mode)
            p8 = cv2.addWeighted(prod, 255.0, prod, 0.0, 0.5, dtype=cv2.CV_8U)
            out = apply_lut(p8, blend_lut(lut, grade))
        ill = PRODUCT_ILLUMINANT * free
        if ill > 0.01:
            gains = np.clip(np.asarray(light.colour, np.float64), 0.5, 2.0) ** ill
            gains /= float(gains @ np.array([0.2126, 0.7152, 0.0722]))
            out = np.asarray(out * gains.astype(np.float32)[None, None], np.float32)
        # a gentle gradient across the product from the light's side, zero-mean over the product
        H, W = alpha.shape
        ys, xs = np.nonzero(alpha > 0.5)
        if len(xs):
            amp = (LIGHT_RAMP[0] + (LIGHT_RAMP[1] - LIGHT_RAMP[0]) * hold) * s
            cx, cy = xs.mean(), ys.mean()
            ext = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()), 1.0) / 2
            d = np.asarray(light.direction[:2], np.float32)
            n = float(np.linalg.norm(d))
            if n > 1e-3 and amp > 0:
                d = d / n
                xx = (np.arange(W, dtype=np.float32) - cx) / ext
                yy = (np.arange(H, dtype=np.float32) - cy) / ext
                ramp = np.clip(d[0] * xx[None, :] + d[1] * yy[:, None], -1.0, 1.0)
                ramp -= float(ramp[alpha > 0.5].mean())
                gain = (1.0 + np.float32(amp * min(n * 2, 1.0)) * ramp).astype(np.float32)
                out = cv2.multiply(out, cv2.merge((gain, gain, gain)))
        return np.clip(out, 0.0, 1.0)

    @staticmethod
    def _shadow(bg: np.ndarray, alpha: np.ndarray, light: scenes.SceneLight, s: float) -> np.ndarray:
        """A soft cast shadow on the floor, away from the light, and a tight occlusion at the base (made at a
        quarter of the size: it is all blur)."""
        H, W = alpha.shape
        f = 0.25 if min(H, W) >= 256 else 1.0
        size = (max(1, round(W * f)), max(1, round(H * f)))
        full_alpha = alpha
        if f < 1:
            alpha = np.asarray(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA), np.float32)
        H, W = alpha.shape
        ys, xs = np.nonzero(alpha > 0.5)
        if len(xs) == 0:
            return bg
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
        ph, pw = max(1, y1 - y0), max(1, x1 - x0)
        d = np.asarray(light.direction[:2], np.float32)
        # the silhouette laid on the floor: squashed to a sliver, sheared away from the light
        squash = 0.14
        shear = float(np.clip(-d[0] * 1.4, -0.8, 0.8))
        m = np.array([[1.0, -shear * squash, shear * squash * y1], [0.0, squash, y1 * (1 - squash)]], np.float32)
        cast = cv2.warpAffine(alpha, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        cast = cv2.GaussianBlur(cast, (0, 0), max(1.0, 0.035 * max(ph, pw)))
        # occlusion: the base's footprint, very flat and tight
        foot = np.zeros_like(alpha)
        cv2.ellipse(foot, ((x0 + x1) // 2, y1), (max(1, int(0.46 * pw)), max(1, int(0.02 * ph))), 0, 0, 360, 1.0, -1)
        foot = cv2.GaussianBlur(foot, (0, 0), max(0.7, 0.012 * max(ph, pw)))
        shade = np.clip(SHADOW_OPACITY * cast + OCCLUSION_OPACITY * foot, 0.0, 0.8) * np.float32(0.5 + 0.5 * s)
        if f < 1:
            shade = np.asarray(cv2.resize(shade, (full_alpha.shape[1], full_alpha.shape[0]),
                                          interpolation=cv2.INTER_LINEAR), np.float32)
        gain = (1.0 - shade).astype(np.float32)
        return np.asarray(cv2.multiply(bg, cv2.merge((gain, gain, gain))))

    def _medium(self, out: np.ndarray, alpha: np.ndarray, plan: VariationPlan, mode: Mode, hold: float,
                assets: BoardAssets | None, info: dict[str, Any]) -> np.ndarray:
        medium = mode.medium
        if medium is None or medium.photographic:
            info["medium"] = {"kind": "photo" if medium is not None else "unknown", "applied": False}
            return out
        pins = assets.for_mode(mode.id) if assets is not None else []
        medoids = [p for p in pins if p.id in mode.medoids] or pins
        if not medoids:
            info["medium"] = {"kind": medium.kind, "applied": False, "fallback": "grade only",
                              "reason": "the medium's exemplar pins need the board (a profile carries no pixels)"}
            return out
        pin = medoids[int(plan.params.get("variant", 0)) % len(medoids)]
        try:
            ex = self._exemplars.get(pin, medium.kind, self.synth_side)
        except ValueError as exc:
            info["medium"] = {"kind": medium.kind, "applied": False, "fallback": "grade only",
                              "reason": f"exemplar pin {pin.id}: {exc}"}
            return out
        strength = float(medium.strength) * float(plan.strength)
        key = (plan.seed, plan.index, plan.mode_id, pin.id, out.shape, plan.background, plan.params.get("scene"))
        out, on_product = redraw(out, alpha, ex, strength, hold, medium.kind, self._prep, key,
                                 synth_side=self.synth_side, lock=self._lock)
        info["medium"] = {"kind": medium.kind, "applied": True, "exemplar": pin.id, "strength": round(strength, 3),
                          "product_strength": round(on_product, 3)}
        return np.asarray(out, np.float32)
