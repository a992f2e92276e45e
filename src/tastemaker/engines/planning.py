"""One planner for every engine: which mode, background, framing and seed each variation gets.

Engines used to carry their own copies of this (and their seeds had drifted apart: 53 bits in one, 63
in the other). Now :func:`plan_variations` decides, for a request:

* **seeds** — one per variation, spawned from the request seed with NumPy's ``SeedSequence`` and cut
  to 53 bits, so they are exact in JSON and in provenance records and the same seed gives the same plan;
* **modes** — the request's ``mode`` for all, else a largest-remainder allocation over the prompt's
  mode weights, interleaved heaviest first, every mode shown once when ``n`` allows;
* **background** and **framing** — the request's value, else the prompt's, else the engine's cycle
  (so variations differ in a way a person sees even when mode and framing are fixed);
* **zoom / shift** jitter of the crop, drawn from the variation's own seed.

An engine adds its own parameters through ``extra(index, mode_id, rng)`` (an exemplar, a scene, a
prompt), drawn from the same per-variation generator after the shared ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import GenerationRequest, VariationPlan

if TYPE_CHECKING:
    from ..prompt import PromptIntent
    from ..taste.profile import TasteProfile

SEED_BITS = 53
Extra = Callable[[int, str, np.random.Generator], dict[str, Any]]


def variation_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 53-bit seeds from one request seed."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(64 - SEED_BITS)) for c in children]


def allocate_modes(weights: dict[str, float], n: int) -> list[str]:
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


def plan_variations(
    request: GenerationRequest,
    profile: TasteProfile,
    intent: PromptIntent,
    *,
    backgrounds: Sequence[str],
    framings: Sequence[str] = ("portrait",),
    zoom: tuple[float, float] = (0.94, 1.06),
    shift: tuple[float, float] = (0.05, 0.4),
    extra: Extra | None = None,
) -> list[VariationPlan]:
    """The plans for ``request`` (see the module docstring); ``backgrounds``/``framings`` are the cycles."""
    seed = request.seed if request.seed is not None else 0
    if request.mode:
        profile.mode(request.mode)  # raises a clear error for an unknown id
        modes = [request.mode] * request.n
    else:
        modes = allocate_modes(intent.mode_weights, request.n)
    plans = []
    for i, (mode_id, vseed) in enumerate(zip(modes, variation_seeds(seed, request.n), strict=True)):
        rng = np.random.default_rng(vseed)
        bg: str
        framing: str
        if request.background != "auto":
            bg = request.background
        elif intent.background:
            bg = intent.background
        else:
            bg = backgrounds[i % len(backgrounds)]
        if request.framing != "auto":
            framing = request.framing
        elif intent.framing:
            framing = intent.framing
        else:
            framing = framings[i % len(framings)]
        params: dict[str, Any] = {
            "zoom": float(rng.uniform(*zoom)),
            "shift": (float(rng.uniform(-shift[0], shift[0])), float(rng.uniform(-shift[1], shift[1]))),
        }
        if extra is not None:
            params.update(extra(i, mode_id, rng))
        plans.append(VariationPlan(index=i, seed=vseed, mode_id=mode_id, background=bg, framing=framing,
                                   strength=request.strength, params=params))
    return plans
