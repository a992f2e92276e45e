"""Product photo + board or profile + request -> product images in the board's look, guarded and stamped.

The product counterpart of :class:`tastemaker.pipeline.Pipeline`, in the same steps:

1. **subject**: the cut-out (:func:`.cutout.cut_out`), its dominant colours measured once;
2. **board**: the profile (built from the board, or given) and the board's pins (scenes, medium exemplars),
   loaded by the look engine's own :func:`~tastemaker.engines.assets.load_assets`;
3. **plan**: the look engine's planner (:func:`~tastemaker.engines.planning.plan_variations`): modes by the
   prompt and engagement, seeds, backgrounds (scene, backdrop, the photo's own), framings, scene pins;
4. **render** and **guard**: every variation rendered at product hold 0 and measured by the product fidelity
   guard (:mod:`.fidelity`); one that fails is rendered again holding the product more (0.5, 0.8, 1: less of
   the look on the product itself), and one that still fails fully held is an error
   (:class:`~.errors.ProductFidelityError`), never a silent return;
5. **stamp**: every output gets its provenance exactly as a person's does (:mod:`tastemaker.provenance.
   service`: a record, the invisible watermark, a signed C2PA manifest and an entry in the transparency
   log), the engine recorded as ``look-product``; any failure discards them all.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..boards import Board
from ..engines.assets import load_assets
from ..engines.base import BoardAssets, GenerationRequest, VariationPlan
from ..engines.look.compose import output_size
from ..engines.look.place import choose_scene
from ..engines.planning import plan_variations
from ..errors import RequestError
from ..media import resize_max_side
from ..prompt import parse_prompt
from ..provenance.batch import prepare_many
from ..provenance.service import Prepared, Provenance
from ..taste.profile import ProfileConfig, TasteProfile, build_profile
from .cutout import Cutout
from .errors import ProductFidelityError
from .fidelity import Fidelity, FidelityGuard, dominant_colours, to_lab
from .output import ProductImage, ProductResult
from .render import Placed, ProductRenderer

ENGINE, ENGINE_VERSION = "look-product", "1"
HOLDS = (0.0, 0.5, 0.8, 1.0)
#: backgrounds cycled by ``background=auto``: with the board's pictures, then without
CYCLE_SCENES = ("scene", "backdrop", "scene", "keep")
CYCLE = ("backdrop", "keep", "backdrop", "blur")
FRAMINGS = ("portrait", "closeup", "half", "portrait")
#: prompt words that ask for the product itself to change (the colour check is then waived)
RESTYLE_WORDS = ("restyle the product", "recolour", "recolor", "restyle product", "product in the board's colours")

Progress = Callable[[str, int, int], None]


def wants_restyle(prompt: str) -> bool:
    """Whether the prompt asks to restyle the product itself (its colours may then follow the look)."""
    low = (prompt or "").lower()
    return any(w in low for w in RESTYLE_WORDS)


@dataclass
class GuardedRender:
    """One variation as the guard left it: the render it passed at its ``hold``, and every attempt's numbers."""

    plan: VariationPlan
    hold: float = 0.0
    placed: Placed | None = None
    fidelity: Fidelity | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class ProductPipeline:
    """Renders product cut-outs in a board's (or profile's) look; stamps every output into ``provenance``."""

    def __init__(self, provenance: Provenance, *, profile_config: ProfileConfig | None = None,
                 renderer: ProductRenderer | None = None, face_detector: Any = None) -> None:
        self.provenance = provenance
        self.profile_config = profile_config
        self.renderer = renderer or ProductRenderer()
        self.face_detector = face_detector
        self._faces: dict[str, bool] = {}

    def __call__(
        self,
        request: GenerationRequest,
        cut: Cutout,
        *,
        board: Board | None = None,
        profile: TasteProfile | None = None,
        assets: BoardAssets | None = None,
        account: str = "local",
        include_prompt: bool = False,
        restyle: bool | None = None,
        progress: Progress | None = None,
        log: bool = True,
    ) -> ProductResult:
        """``request.n`` images of the product; ``restyle`` (default: from the prompt) waives the colour check.

        ``log=False`` marks and signs every output but leaves its record unlogged in ``result.unlogged`` for the
        caller to log (as :class:`tastemaker.pipeline.Pipeline` does for queue workers)."""
        if (board is None) == (profile is None):
            raise RequestError("give exactly one of a board or a taste profile")
        if request.seed is None:
            request = request.with_seed(secrets.randbelow(2**31))
        report = progress or (lambda stage, done, total: None)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        if profile is None:
            assert board is not None
            report("profile", 0, 1)
            profile = build_profile(board, self.profile_config)
            report("profile", 1, 1)
        if board is not None:
            assets = load_assets(board, profile)
        timings["profile"] = time.perf_counter() - t
        restyle = wants_restyle(request.prompt) if restyle is None else restyle
        guard = FidelityGuard(restyle=restyle)
        if "centres" not in cut.cache:
            cut.cache["centres"] = dominant_colours(to_lab(cut.rgb), cut.alpha)
        plans = self.plan(request, profile, assets)
        size = output_size(request.size, request.aspect, cut.rgb.shape[1], cut.rgb.shape[0])
        variations = [GuardedRender(p) for p in plans]
        t = time.perf_counter()
        report("render", 0, len(variations))
        for k, v in enumerate(variations):
            self.render_guarded(v, cut, size, profile, assets, guard, restyle)
            report("render", k + 1, len(variations))
        timings["render"] = time.perf_counter() - t
        t = time.perf_counter()
        meta: dict[str, Any] = dict(fmt=request.format, prompt=request.prompt, profile_hash=profile.content_hash(),
                                    engine=ENGINE, engine_version=ENGINE_VERSION, seed=request.seed, account=account,
                                    include_prompt=include_prompt)
        prepared = prepare_many(self.provenance, [v.placed.pixels for v in variations if v.placed is not None], **meta)
        images = []
        try:
            report("provenance", 0, len(prepared))
            for v, pr in zip(variations, prepared, strict=True):
                log_index = self.provenance.commit(pr).log_index if log else -1
                images.append(self._image(v, pr, log_index, cut, profile))
            report("provenance", len(prepared), len(prepared))
        except BaseException:
            for pr in prepared[len(images):]:
                self.provenance.discard(pr)
            raise
        timings["provenance"] = time.perf_counter() - t
        result = ProductResult(images=images, request=request, profile=profile, cutout=cut, engine=ENGINE,
                               engine_version=ENGINE_VERSION, board=board, timings=timings, restyle=restyle,
                               assets_source=assets.source if assets is not None else None)
        if not log:
            result.unlogged = list(prepared)
            for pr in prepared:
                self.provenance.discard(pr)  # their ids are the caller's now (reserved only in this process)
        return result

    def plan(self, request: GenerationRequest, profile: TasteProfile,
             assets: BoardAssets | None) -> list[VariationPlan]:
        """The variations: the look engine's planner with the product's background cycle, scene pins chosen."""
        modes = [(m.id, m.text, m.weight) for m in profile.modes]
        intent = parse_prompt(request.prompt, modes, None)
        has_scenes = assets is not None and bool(assets.pins)
        seen: dict[str, int] = {}

        def extra(i: int, mode_id: str, rng: np.random.Generator) -> dict[str, Any]:
            k = seen.get(mode_id, 0)
            seen[mode_id] = k + 1
            return {"variant": k}

        plans = plan_variations(request, profile, intent, backgrounds=CYCLE_SCENES if has_scenes else CYCLE,
                                framings=FRAMINGS, zoom=(0.92, 1.06), shift=(0.6, 0.0), extra=extra)
        out = []
        for p in plans:
            if p.background == "scene" and assets is not None:
                pins = assets.for_mode(p.mode_id) or sorted(assets.pins.values(), key=lambda q: (-q.weight, q.id))
                pins = [q for q in pins if not self._has_face(q)] or pins  # a product in front of a face looks wrong
                if pins:
                    pick = choose_scene(pins, intent.scene, int(p.params["variant"]))
                    p = VariationPlan(index=p.index, seed=p.seed, mode_id=p.mode_id, background=p.background,
                                      framing=p.framing, strength=p.strength, params={**p.params, "scene": pick.id})
            out.append(p)
        return out

    def _has_face(self, pin: Any) -> bool:
        """Whether a scene pin shows a face (dlib's detector on a small copy; once per pin)."""
        if pin.id not in self._faces:
            if self.face_detector is None:
                from ..encoders.identity import IdentityEncoder

                self.face_detector = IdentityEncoder(min_face_px=24)
            small = resize_max_side(pin.image, 384)
            self._faces[pin.id] = bool(self.face_detector.detect(small))
        return self._faces[pin.id]

    def render_guarded(self, v: GuardedRender, cut: Cutout, size: tuple[int, int], profile: TasteProfile,
                 assets: BoardAssets | None, guard: FidelityGuard, restyle: bool) -> None:
        """Render at rising holds until the guard passes; fully held and still failing is an error."""
        t = time.perf_counter()
        for hold in HOLDS:
            placed = self.renderer.render(cut, v.plan, hold, size, profile, assets, restyle=restyle)
            fid = guard.measure(placed.pixels, placed.ref, placed.alpha, cut.cache["centres"])
            v.attempts.append({"hold": hold, "delta_e": round(fid.delta_e, 3), "shape_ssim": round(fid.shape_ssim, 4)})
            v.hold, v.placed, v.fidelity = hold, placed, fid
            if fid.passed:
                v.seconds = time.perf_counter() - t
                return
        assert v.fidelity is not None
        raise ProductFidelityError(
            f"variation {v.plan.index} ({v.plan.mode_id}, {v.plan.background}) changed the product beyond the "
            f"fidelity guard's limits even with the product fully held: colour ΔE2000 {v.fidelity.delta_e:.2f} "
            f"(limit {guard.max_delta_e:g}), shape SSIM {v.fidelity.shape_ssim:.3f} (limit {guard.min_shape_ssim:g}); "
            "no image was returned. Try another seed or a lower strength")

    @staticmethod
    def _image(v: GuardedRender, pr: Prepared, log_index: int, cut: Cutout, profile: TasteProfile) -> ProductImage:
        assert v.placed is not None and v.fidelity is not None
        mode = profile.mode(v.plan.mode_id)
        info = {**v.placed.info, "subject": "product", "cutout": cut.info(),
                "fidelity": {**v.fidelity.info(), "attempts": v.attempts}}
        return ProductImage(pixels=pr.pixels, index=v.plan.index, seed=v.plan.seed, mode_id=mode.id,
                            mode_name=mode.name, background=str(v.placed.info.get("background", v.plan.background)),
                            framing=v.plan.framing, strength=v.plan.strength, hold=v.hold,
                            delta_e=v.fidelity.delta_e, shape_ssim=v.fidelity.shape_ssim, data=pr.data,
                            record_id=pr.record.id_hex, log_index=log_index,
                            timings={"render_guard": v.seconds}, info=info, render=v.placed.pixels,
                            alpha=v.placed.alpha)
