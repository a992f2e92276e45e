"""Baselines: simple ways to "put a selfie in a board's look", run with the engine's seeds and framing.

Every baseline starts from the same pixels: the selfie framed exactly as the engine frames each
variation (the look engine's own plan and renderer at strength 0 with the background kept, so the
crop, zoom/shift jitter, output size and resampling are identical and only the restyling differs).
Each then moves the colours toward the board at the request's ``strength`` (the same blend the engine
uses), so the comparison is the restyling and nothing else:

==============  ===================================================================================
``none``        the framed selfie, untouched (the floor for style, the ceiling for identity)
``reinhard``    Reinhard et al. (2001) colour transfer: per-channel Lab mean and standard deviation
                matched to the pooled board (every pin counts equally)
``histmatch``   per-channel RGB histogram matching to the pooled board
``single-pin``  the engine's own sliced-OT 3D-LUT grade, fitted toward one pin (drawn per variation
                from its seed) instead of the engagement-weighted mode: what the profile adds
``stylize``     a stock non-photorealistic filter, OpenCV's ``cv2.stylization`` (edge-preserving
                smoothing plus dark edges: an ink-and-wash look), then the sliced-OT LUT grade
                fitted toward the pooled board: what a generic "make it art" filter gets
``oilpaint``    the same with ``cv2.xphoto.oilPainting`` (size 7, dynamic ratio 1: flat dabs of
                colour): the stock painterly filter
==============  ===================================================================================

The two filter baselines are the floor for *medium*: the engine's medium transfer is only worth its
cost if it takes on the board's marks better than a fixed filter does (see the texture attribution
in :mod:`.texture`). Both run at the output size, about 0.15-0.2 s per 512 px image.

Register more with :func:`register_baseline` (a factory returning an object with ``name``,
``description`` and ``render(framed, ctx)``); ``"all"`` means the six built-ins above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..boards import Board
from ..encoders.style import lab_to_rgb8, to_lab
from ..engines.base import GenerationRequest, Subject, VariationPlan
from ..errors import RequestError
from ..media import resize_max_side
from ..taste.profile import TasteProfile

POOL_PER_PIN = 4096
BUILTIN = ("none", "reinhard", "histmatch", "single-pin", "stylize", "oilpaint")
#: ``cv2.stylization`` parameters (OpenCV's defaults: neighbourhood 60 px, edge threshold 0.45)
STYLIZE_SIGMA_S = 60.0
STYLIZE_SIGMA_R = 0.45
#: ``cv2.xphoto.oilPainting`` parameters (brush neighbourhood, dynamic-range reduction)
OIL_SIZE = 7
OIL_DYN_RATIO = 1


@dataclass
class BaselineContext:
    """What a baseline may use: the board, its profile, the request, and the engine's plans."""

    board: Board
    profile: TasteProfile
    request: GenerationRequest
    plans: Sequence[VariationPlan]
    subject: Subject
    cache: dict[str, Any] = field(default_factory=dict)
    #: per-variation notes a baseline wants in the report (e.g. which pin it used)
    notes: dict[int, str] = field(default_factory=dict)

    @property
    def strength(self) -> float:
        return float(self.request.strength)

    def pooled_pixels(self) -> np.ndarray:
        """(N, 3) uint8 board pixels, the same number from every pin (fixed per-pin sampling)."""
        pool = self.cache.get("pool")
        if pool is None:
            parts = []
            for pin, thumb in zip(self.board.pins, self.board.thumbs, strict=True):
                pix = thumb.reshape(-1, 3)
                rng = np.random.default_rng(int(pin.sha256[:12] or "0", 16))
                parts.append(pix[rng.choice(len(pix), size=POOL_PER_PIN, replace=len(pix) < POOL_PER_PIN)])
            pool = np.concatenate(parts)
            self.cache["pool"] = pool
        return pool


@runtime_checkable
class Baseline(Protocol):
    name: str
    description: str

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]: ...


def _blend(src: np.ndarray, moved: np.ndarray, strength: float) -> np.ndarray:
    """``src`` + strength x (``moved`` - ``src``), as uint8."""
    out = src.astype(np.float32) + (moved.astype(np.float32) - src.astype(np.float32)) * np.float32(strength)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class NoneBaseline:
    name = "none"
    description = "the selfie, framed like the engine's output, colours untouched"

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        return [f.copy() for f in framed]


class ReinhardBaseline:
    name = "reinhard"
    description = "Lab mean/std transfer to the pooled board (Reinhard et al. 2001)"

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        tgt = to_lab(ctx.pooled_pixels().reshape(1, -1, 3)).reshape(-1, 3)
        t_mu, t_sd = tgt.mean(0), tgt.std(0)
        out = []
        for img in framed:
            lab = to_lab(img)
            flat = lab.reshape(-1, 3)
            mu, sd = flat.mean(0), flat.std(0)
            moved = (lab - mu) * (t_sd / np.maximum(sd, 1e-3)) + t_mu
            moved[..., 0] = np.clip(moved[..., 0], 0, 100)
            out.append(_blend(img, lab_to_rgb8(moved.astype(np.float32)), ctx.strength))
        return out


def _match_channel(src: np.ndarray, ref_cdf: np.ndarray) -> np.ndarray:
    hist = np.bincount(src.ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(hist) / max(hist.sum(), 1.0)
    lut = np.interp(cdf, ref_cdf, np.arange(256))
    return lut[src]


class HistMatchBaseline:
    name = "histmatch"
    description = "per-channel RGB histogram matching to the pooled board"

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        pool = ctx.pooled_pixels()
        cdfs = []
        for c in range(3):
            h = np.bincount(pool[:, c], minlength=256).astype(np.float64)
            cdfs.append(np.cumsum(h) / h.sum())
        out = []
        for img in framed:
            moved = np.stack([_match_channel(img[..., c], cdfs[c]) for c in range(3)], axis=-1)
            out.append(_blend(img, moved, ctx.strength))
        return out


class SinglePinBaseline:
    name = "single-pin"
    description = "the engine's sliced-OT LUT grade toward one random pin instead of the profile"

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        from ..engines.look.grade import apply_lut, fit_lut

        source = resize_max_side(ctx.subject.image, 160).reshape(-1, 3)
        out = []
        for i, (img, plan) in enumerate(zip(framed, ctx.plans, strict=True)):
            k = int(np.random.default_rng(plan.seed).integers(len(ctx.board)))
            pin = ctx.board.thumbs[k].reshape(-1, 3)
            lut = fit_lut(source, pin, seed=0)
            graded = apply_lut(img, lut)
            moved = np.clip(graded * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out.append(_blend(img, moved, ctx.strength))
            ctx.notes[i] = f"pin {ctx.board.pins[k].image}"
        return out


def _board_lut(ctx: BaselineContext) -> np.ndarray:
    """The engine's sliced-OT LUT fitted from the selfie's colours toward the pooled board (once per context)."""
    lut = ctx.cache.get("board_lut")
    if lut is None:
        from ..engines.look.grade import fit_lut

        source = resize_max_side(ctx.subject.image, 160).reshape(-1, 3)
        lut = fit_lut(source, ctx.pooled_pixels(), seed=0)
        ctx.cache["board_lut"] = lut
    return lut


class _FilterBaseline:
    """A stock OpenCV filter on the framed selfie, then the board LUT, blended in at the request's strength."""

    name = "filter"
    description = ""

    def filter(self, bgr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        from ..engines.look.grade import apply_lut

        lut = _board_lut(ctx)
        out = []
        for img in framed:
            styled = cv2.cvtColor(self.filter(cv2.cvtColor(img, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)
            moved = np.clip(apply_lut(styled, lut) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out.append(_blend(img, moved, ctx.strength))
        return out


class StylizeBaseline(_FilterBaseline):
    name = "stylize"
    description = "OpenCV cv2.stylization (ink-and-wash filter), then the LUT grade toward the pooled board"

    def filter(self, bgr: np.ndarray) -> np.ndarray:
        return cv2.stylization(bgr, sigma_s=STYLIZE_SIGMA_S, sigma_r=STYLIZE_SIGMA_R)


class OilPaintBaseline(_FilterBaseline):
    name = "oilpaint"
    description = "OpenCV cv2.xphoto.oilPainting (painterly filter), then the LUT grade toward the pooled board"

    def filter(self, bgr: np.ndarray) -> np.ndarray:
        return cv2.xphoto.oilPainting(bgr, OIL_SIZE, OIL_DYN_RATIO)


BaselineFactory = Callable[[], Baseline]
_REGISTRY: dict[str, BaselineFactory] = {
    "none": NoneBaseline,
    "reinhard": ReinhardBaseline,
    "histmatch": HistMatchBaseline,
    "single-pin": SinglePinBaseline,
    "stylize": StylizeBaseline,
    "oilpaint": OilPaintBaseline,
}


def register_baseline(name: str, factory: BaselineFactory) -> None:
    """Make ``factory`` available as a baseline under ``name``."""
    _REGISTRY[name] = factory


def unregister_baseline(name: str) -> None:
    """Remove a registered baseline (built-ins cannot be removed)."""
    if name in BUILTIN:
        raise RequestError(f"{name!r} is a built-in baseline and cannot be removed")
    _REGISTRY.pop(name, None)


def list_baselines() -> list[str]:
    """Names of all registered baselines (built-ins first)."""
    return [*BUILTIN, *sorted(n for n in _REGISTRY if n not in BUILTIN)]


def create_baseline(name: str) -> Baseline:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise RequestError(f"unknown baseline {name!r}; available: {', '.join(list_baselines())}, or 'all'") from None


def resolve_baselines(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` -> the built-ins; ``"a,b"`` or a list -> those names (checked); ``""`` -> none at all."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [s.strip() for s in spec]
    names = [n for n in names if n]
    out: list[str] = []
    for n in names:
        for m in (BUILTIN if n == "all" else (n,)):
            if m not in _REGISTRY:
                raise RequestError(f"unknown baseline {m!r}; available: {', '.join(list_baselines())}, or 'all'")
            if m not in out:
                out.append(m)
    return out


def frame_like_engine(
    subject: Subject, profile: TasteProfile, request: GenerationRequest
) -> tuple[list[np.ndarray], list[VariationPlan]]:
    """The selfie framed per variation exactly as the look engine frames it, with no restyling.

    The look engine's planner and renderer at strength 0 with the background kept: the grade is
    blended in at 0 and texture, vignette and grain targets collapse to the image's own values, so
    what is left is the crop, the jitter, the resampling and (only where a crop reaches past the
    photo) the engine's blurred fill.
    """
    from ..engines.look import LookEngine
    from ..prompt import parse_prompt

    eng = LookEngine(threads=1)
    plain = request.model_copy(update={"strength": 0.0, "background": "keep"})
    intent = parse_prompt(plain.prompt, [(m.id, m.text, m.weight) for m in profile.modes])
    plans = eng.plan(plain, subject, profile, intent)
    rendered = eng.render(plans, subject, profile, plain, hold=[0.0] * len(plans))
    return [r.pixels for r in rendered], plans


def fit_to(img: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize and centre-crop ``img`` to fill ``shape`` (h, w): for baselines that bring other pixels."""
    h, w = shape[:2]
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw)
    rs = cv2.resize(img, (max(w, round(iw * s)), max(h, round(ih * s))), interpolation=cv2.INTER_LINEAR)
    y0, x0 = (rs.shape[0] - h) // 2, (rs.shape[1] - w) // 2
    return np.ascontiguousarray(rs[y0 : y0 + h, x0 : x0 + w])
