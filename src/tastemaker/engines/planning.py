"""One planner for every engine: which mode, background, framing and seed each variation gets.

Engines used to carry their own copies of this (and their seeds had drifted apart: 53 bits in one, 63
in the other). Now :func:`plan_variations` decides, for a request:

* **seeds** — one per variation, spawned from the request seed with NumPy's ``SeedSequence`` and cut
  to 53 bits, so they are exact in JSON and in provenance records and the same seed gives the same plan;
* **modes** — the request's ``mode`` for all, else a largest-remainder allocation over the prompt's
  mode weights, interleaved heaviest first; every mode is shown once when ``n`` allows, except a mode
  the poisoning defence flagged (most of its pins' weight down-weighted) or one under
  :data:`MIN_GUARANTEED_WEIGHT`: those get only what their weight earns, so four look-alike "buy now"
  pins that form a 10 % mode cannot claim one output in four;
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
#: a mode below this share of the (prompt-selected) weight is not promised a variation of its own
MIN_GUARANTEED_WEIGHT = 0.15
#: a mode is suspicious when at least this share of its pins carry a poisoning-defence flag
SUSPICIOUS_SHARE = 0.5
Extra = Callable[[int, str, np.random.Generator], dict[str, Any]]


def variation_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 53-bit seeds from one request seed."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(64 - SEED_BITS)) for c in children]


def allocate_modes(weights: dict[str, float], n: int, guaranteed: set[str] | None = None) -> list[str]:
    """Largest-remainder allocation of ``n`` variations to modes, interleaved heaviest first.

    Every mode in ``guaranteed`` (all of them when None) shows up at least once when ``n`` allows; the
    others get only the whole variations their weight earns.
    """
    ids = list(weights)
    w = np.array([weights[i] for i in ids], dtype=np.float64)
    share = w / w.sum() * n
    count = np.floor(share).astype(int)
    promised = [i for i, mid in enumerate(ids) if guaranteed is None or mid in guaranteed]
    # the seats left after the whole shares go by largest remainder, to promised modes only (a light or
    # flagged mode gets exactly what its weight earns, never a rounded-up seat)
    frac = share - count
    if promised:
        frac = np.where(np.isin(np.arange(len(ids)), promised), frac, -1.0)
    order = np.lexsort((np.arange(len(ids)), -frac))
    count[order[: n - count.sum()]] += 1
    if n >= len(promised):  # every promised mode shows up at least once
        for i in promised:
            if count[i] > 0:
                continue
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


def guaranteed_modes(profile: TasteProfile, weights: dict[str, float]) -> set[str]:
    """The modes promised a variation: heavy enough, and not mostly made of pins the defence flagged."""
    flagged: dict[str, list[bool]] = {}
    for pin in profile.pins:
        flagged.setdefault(pin.mode, []).append(bool(pin.flags))
    total = sum(weights.values()) or 1.0
    out = set()
    for mid, w in weights.items():
        marks = flagged.get(mid, [])
        suspicious = bool(marks) and sum(marks) / len(marks) >= SUSPICIOUS_SHARE
        if w / total >= MIN_GUARANTEED_WEIGHT and not suspicious:
            out.add(mid)
    return out


def _choose(asked: str, intended: str | None, cycle: Sequence[str], i: int) -> str:
    """What the request asks for, else what the prompt says, else variation ``i``'s turn in the cycle."""
    if asked != "auto":
        return asked
    return intended or cycle[i % len(cycle)]


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
        modes = allocate_modes(intent.mode_weights, request.n, guaranteed_modes(profile, intent.mode_weights))
    plans = []
    for i, (mode_id, vseed) in enumerate(zip(modes, variation_seeds(seed, request.n), strict=True)):
        rng = np.random.default_rng(vseed)
        bg = _choose(request.background, intent.background, backgrounds, i)
        framing = _choose(request.framing, intent.framing, framings, i)
        params: dict[str, Any] = {
            "zoom": float(rng.uniform(*zoom)),
            "shift": (float(rng.uniform(-shift[0], shift[0])), float(rng.uniform(-shift[1], shift[1]))),
        }
        if extra is not None:
            params.update(extra(i, mode_id, rng))
        plans.append(VariationPlan(index=i, seed=vseed, mode_id=mode_id, background=bg, framing=framing,
                                   strength=request.strength, params=params))
    return plans
