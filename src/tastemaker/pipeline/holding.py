"""The guard's loop over one request's outputs: mark, measure, hold the face more, draw afresh, refuse.

Step 4 of :mod:`.generate`'s flow, apart because it is one algorithm with its own bookkeeping (which
variation is at which hold, which earlier draw is the best so far, whose prepared provenance must be
given back). The rules:

* **The marked picture is measured** — what is released, not the render before it. The invisible watermark
  moves a marginal face detection (dev-eval: faces with a detection score near 0, found before marking,
  missed after it; 6 of 120 outputs) and an identity distance, so guarding the unmarked render let through
  pictures a verifier could not find a face in. Provenance is only *prepared* (marked, encoded, signed)
  here; nothing is logged until the whole batch has passed.
* **Hold more**: a variation that drifts, or whose face a detector does not find on its own, is rendered
  again with a stronger face hold of :data:`~.guard.HOLD_LEVELS` until it passes or is fully held. The
  step is aimed (:func:`next_level`): the hold its distance says it needs, from a line through its measured
  draws (a secant), or through :data:`FULL_HOLD_DISTANCE` after one; each guard round costs a render, a
  marking and a face detection, and stepping one level at a time took up to five of them.
* **Draw afresh**: one that fails even fully held gets a new plan (another crop, exemplar, scene) from a
  seed derived from the request's (:func:`redraw_seed`, so it is as reproducible as a first draw), up to
  :data:`REDRAWS` times, each again from no hold upward; the best draw is kept and says ``redrawn``.
* **Refuse**: an output still farther than the threshold is an :class:`IdentityGuardError`, never a
  silent return; a near one that a detector still does not find is returned and marked so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engines.base import Rendered, VariationPlan
from ..errors import IdentityGuardError
from ..provenance.batch import prepare_many
from ..provenance.service import Prepared, Provenance
from .guard import GUARD_MARGIN, HOLD_LEVELS, IdentityGuard

#: how many fresh draws a variation gets when it fails the guard even with its face fully held
REDRAWS = 2
#: the identity distance a fully held face typically has (dev-eval, 1024 px: 0.2-0.3), for aiming the first step
FULL_HOLD_DISTANCE = 0.2


def next_level(level: int, history: Sequence[tuple[float, float]], threshold: float, near_but_hidden: bool) -> int:
    """The next hold level for a variation whose draws at ``history`` (hold, distance) failed the guard.

    The hold it needs is read off a line through its last two measured draws (the distance falls as the
    hold rises), or, after one, through (1, :data:`FULL_HOLD_DISTANCE`); the smallest level at or above that
    is taken, always at least one step up. A face near enough that a detector only misses steps once.
    """
    step = min(level + 1, len(HOLD_LEVELS) - 1)
    if near_but_hidden or not history:
        return step
    h2, d2 = history[-1]
    if len(history) >= 2:
        h1, d1 = history[-2]
        slope = (d2 - d1) / (h2 - h1) if h2 != h1 else 0.0
    else:
        slope = (FULL_HOLD_DISTANCE - d2) / (1.0 - h2) if h2 < 1.0 else 0.0
    if slope >= -1e-3 or not np.isfinite(d2):  # not falling (noise, no face): one step
        return step
    need = h2 + (threshold - d2) / slope
    fits = [i for i, h in enumerate(HOLD_LEVELS) if h >= need - 1e-6]
    return max(step, fits[0] if fits else len(HOLD_LEVELS) - 1)


def redraw_seed(seed: int, attempt: int) -> int:
    """The request seed a redraw plans with: derived from the request's, so a redraw is reproducible."""
    return int(np.random.SeedSequence([seed, 0x7EDA, attempt]).generate_state(1)[0] >> 1)


@dataclass
class Batch:
    """The outputs under the guard: each variation's latest render, what the guard measured of it, its face
    hold (an index into :data:`HOLD_LEVELS`) and its prepared, not yet logged, provenance."""

    rendered: list[Rendered]
    distances: list[float] = field(default_factory=list)
    detectable: list[bool] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    prepared: list[Prepared | None] = field(default_factory=list)
    #: per variation, (hold, distance) of each guarded render of its current draw
    history: list[list[tuple[float, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.rendered)
        self.distances, self.detectable = [float("inf")] * n, [False] * n
        self.level = [0] * n
        self.prepared = [None] * n
        self.history = [[] for _ in range(n)]

    def failing(self, k: int, threshold: float) -> bool:
        return self.distances[k] > threshold or not self.detectable[k]

    def rank(self, k: int, threshold: float) -> tuple[bool, bool, float]:
        """Sorts a variation's draws best first: passing, then detectable, then nearest."""
        return self.failing(k, threshold), not self.detectable[k], self.distances[k]

    def to_hold_more(self, threshold: float) -> list[int]:
        """Variations that drift (or whose face a detector misses) and can still be held more."""
        return [k for k in range(len(self.rendered))
                if self.failing(k, threshold) and self.level[k] + 1 < len(HOLD_LEVELS)]

    def discard(self, prov: Provenance, indices: Sequence[int] | None = None) -> None:
        """Give back the prepared provenance of ``indices`` (default: all); nothing of it is logged."""
        for k in range(len(self.prepared)) if indices is None else indices:
            stale = self.prepared[k]
            if stale is not None:
                prov.discard(stale)
                self.prepared[k] = None


@dataclass
class _Draw:
    """A variation's earlier draw, kept while it is drawn again (in case no later draw does better)."""

    rank: tuple[bool, bool, float]
    rendered: Rendered
    distance: float
    found: bool
    prepared: Prepared | None


class GuardLoop:
    """The loop for one request (see the module docstring).

    ``draw(plans, holds)`` renders; ``replan(seed)`` plans the whole request again for another seed (a
    redraw takes its variation's plan from it); ``timed(stage)`` times a block into the request's timings;
    ``meta`` is what every output's provenance is prepared with; ``configured_threshold`` is the deployment's
    own, named in a refusal when the guard's was raised to the selfie's own distance; ``workers`` threads mark
    the pictures.
    """

    def __init__(
        self, guard: IdentityGuard, provenance: Provenance, meta: dict[str, Any], *,
        timed: Callable[[str], AbstractContextManager[None]],
        draw: Callable[[list[VariationPlan], list[float]], list[Rendered]],
        replan: Callable[[int], list[VariationPlan]], seed: int, configured_threshold: float, workers: int = 2,
    ) -> None:
        self.guard, self.provenance, self.meta = guard, provenance, meta
        self.timed, self.draw, self.replan, self.seed = timed, draw, replan, seed
        self.configured_threshold = configured_threshold
        self.workers = workers

    def run(self, batch: Batch) -> None:
        """Mark and measure every output, hold, redraw, then refuse what still drifts (discarding nothing
        on success: the caller logs ``batch.prepared``; on an error the caller discards the batch)."""
        self.mark_and_check(batch, range(len(batch.rendered)))
        self.hold_faces(batch)
        self.redraw(batch)
        self.refuse_drift(batch)

    def mark_and_check(self, batch: Batch, todo: Iterable[int]) -> None:
        """Prepare the provenance of the ``todo`` variations' latest renders and guard their marked pictures.

        Pipelined: the pictures are marked on ``workers`` threads while the guard's face detection (which
        holds the GIL: dlib) runs on each marked picture as soon as it is ready; the embeddings are one batch.
        If a preparation fails, every preparation of the round is given back and the error raised.
        """
        todo = list(todo)
        looked: list[tuple[np.ndarray | None, bool]] = []

        def look(i: int, prepared: Prepared) -> None:
            with self.timed("guard"):
                looked.append(self.guard.look(dataclasses.replace(batch.rendered[todo[i]], pixels=prepared.pixels)))

        fresh = prepare_many(self.provenance, [batch.rendered[k].pixels for k in todo], workers=self.workers,
                             each=look, waiting=lambda: self.timed("provenance"), **self.meta)
        for k, prepared in zip(todo, fresh, strict=True):
            batch.prepared[k] = prepared
        with self.timed("guard"):
            for k, (d, f) in zip(todo, self.guard.measure(looked), strict=True):
                batch.distances[k], batch.detectable[k] = d, f
                batch.history[k].append((HOLD_LEVELS[batch.level[k]], d))

    def hold_faces(self, batch: Batch) -> None:
        """Re-render failing variations with a stronger hold on the face until they pass or are fully held."""
        thr = self.guard.threshold
        while todo := batch.to_hold_more(thr):
            for k in todo:
                batch.level[k] = next_level(batch.level[k], batch.history[k], thr, batch.distances[k] <= thr)
            batch.discard(self.provenance, todo)
            again = self.draw([batch.rendered[k].plan for k in todo], [HOLD_LEVELS[batch.level[k]] for k in todo])
            for k, r in zip(todo, again, strict=True):
                batch.rendered[k] = r
            self.mark_and_check(batch, todo)

    def redraw(self, batch: Batch) -> None:
        """Draw afresh the variations that fail even fully held; keep each one's best draw."""
        thr = self.guard.threshold
        todo = [k for k in range(len(batch.rendered)) if batch.failing(k, thr)]
        kept: dict[int, _Draw] = {}
        try:
            for attempt in range(1, REDRAWS + 1):
                if not todo:
                    break
                for k in todo:  # the best draw so far keeps its prepared provenance; the others give theirs back
                    best = kept.get(k)
                    if best is None or batch.rank(k, thr) < best.rank:
                        if best is not None and best.prepared is not None:
                            self.provenance.discard(best.prepared)
                        kept[k] = _Draw(batch.rank(k, thr), batch.rendered[k], batch.distances[k],
                                        batch.detectable[k], batch.prepared[k])
                        batch.prepared[k] = None
                    else:
                        batch.discard(self.provenance, [k])
                fresh = self.replan(redraw_seed(self.seed, attempt))
                for k, r in zip(todo, self.draw([fresh[k] for k in todo], [HOLD_LEVELS[0]] * len(todo)), strict=True):
                    r.info["redrawn"] = attempt
                    batch.rendered[k], batch.level[k], batch.history[k] = r, 0, []
                self.mark_and_check(batch, todo)
                self.hold_faces(batch)
                todo = [k for k in todo if batch.failing(k, thr)]
        except BaseException:
            for draw in kept.values():
                if draw.prepared is not None:
                    self.provenance.discard(draw.prepared)
            raise
        for k, draw in kept.items():
            if k in todo and batch.rank(k, thr) > draw.rank:  # still failing: the best draw (the refusal names it)
                batch.discard(self.provenance, [k])
                batch.rendered[k], batch.distances[k], batch.detectable[k] = draw.rendered, draw.distance, draw.found
                batch.prepared[k] = draw.prepared
            elif draw.prepared is not None:
                self.provenance.discard(draw.prepared)

    def refuse_drift(self, batch: Batch) -> None:
        """Raise for an output still farther than the threshold; mark near ones a detector does not find."""
        threshold = self.guard.threshold
        for r, dist, found in zip(batch.rendered, batch.distances, batch.detectable, strict=True):
            if dist > threshold:
                raised = (f"; the threshold {self.configured_threshold:.2f} was raised to your own selfie's distance "
                          f"+ {GUARD_MARGIN:g}") if threshold > self.configured_threshold else ""
                raise IdentityGuardError(
                    f"variation {r.plan.index} drifted from the selfie (identity distance {dist:.2f} > "
                    f"{threshold:.2f}{raised}) even with the face fully held; try a lower strength or another seed"
                )
            if not found:
                r.info["face_detectable"] = False  # near enough, but a detector does not find it unaided


__all__ = ["FULL_HOLD_DISTANCE", "REDRAWS", "Batch", "GuardLoop", "next_level", "redraw_seed"]
