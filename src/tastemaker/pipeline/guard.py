"""The identity guard: every output's face is measured against the person's identity before it is returned.

The output's dlib embedding is compared with the person's; while it is farther than the threshold (default
0.35; dlib's same-person line is 0.6) the pipeline re-renders the variation with a stronger hold on the face
(:data:`HOLD_LEVELS`). The guard never asks an output to be closer to the identity than the person's own
selfie is, plus :data:`GUARD_MARGIN` (:meth:`IdentityGuard.for_subject`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..encoders.identity import IdentityEmbedding, IdentityEncoder, embed_chips, identity_distance
from ..engines.base import IdentitySubject, Rendered, Subject

#: The face holds tried in turn: 0 -> 0.4 -> 0.6 -> 0.8 -> 0.9 -> 1 (the look engine keeps each variation's
#: medium synthesis, so a step only re-blends the face).
HOLD_LEVELS = (0.0, 0.4, 0.6, 0.8, 0.9, 1.0)
#: The guard never asks an output to be closer to the identity than its own source photo is, plus this.
GUARD_MARGIN = 0.05
#: The key under which a subject's cache keeps its own selfie's distance to its identity (computed once).
OWN_DISTANCE = "own_distance"


def own_distance(subject: Subject | IdentitySubject, encoder: IdentityEncoder) -> float:
    """How far the subject's own selfie is from its identity (0 for an identity alone); cached on the subject.

    A caller that already knows it (an identity that *is* this selfie's embedding: 0) may put it in
    ``subject.cache[OWN_DISTANCE]`` so the selfie is not embedded again.
    """
    own = subject.cache.get(OWN_DISTANCE)
    if own is None:
        own = 0.0 if isinstance(subject, IdentitySubject) else identity_distance(
            encoder.embed_face(subject.image, subject.face), subject.identity
        )
        subject.cache[OWN_DISTANCE] = own
    return float(own)


class IdentityGuard:
    """Measures outputs' identity distances (one in-process batch; dlib's own runner uses ``workers`` processes).

    The face is aligned inside the box where the engine put it; an engine that cannot say where the
    face is gets a full detection instead. A missing face counts as infinitely far. :meth:`detectable`
    also asks whether a face detector finds the face there on its own (as anyone verifying the picture
    would have to): a stylised face that is near enough but undetectable is held more, like one that drifts.
    """

    def __init__(
        self, encoder: IdentityEncoder, identity: IdentityEmbedding, threshold: float, *, workers: int = 0
    ) -> None:
        self.encoder = encoder
        self.identity = identity
        self.threshold = threshold
        self.workers = workers

    @classmethod
    def for_subject(
        cls, encoder: IdentityEncoder, subject: Subject | IdentitySubject, threshold: float, *, workers: int = 0
    ) -> IdentityGuard:
        """The guard for ``subject``: ``threshold``, raised to the selfie's own distance + :data:`GUARD_MARGIN`."""
        effective = max(threshold, own_distance(subject, encoder) + GUARD_MARGIN)
        return cls(encoder, subject.identity, effective, workers=workers)

    def _chip(self, rendered: Rendered) -> np.ndarray | None:
        img = rendered.pixels
        if rendered.face_box is not None:
            h, w = img.shape[:2]
            x0, y0, x1, y1 = rendered.face_box
            box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
            if box[2] - box[0] >= 20 and box[3] - box[1] >= 20:
                return self.encoder.chip(img, box)
        faces = self.encoder.detect(img)
        return self.encoder.chip(img, faces[0].box) if faces else None

    def detectable(self, rendered: Sequence[Rendered]) -> list[bool]:
        """Does dlib's detector, unaided, find a face where the engine says the face is? (a crop around it)

        An output without a face box was already searched whole for its distance (no face there: an infinite
        distance), so it is not searched again here.
        """
        out = []
        for r in rendered:
            if r.face_box is None:
                out.append(True)
                continue
            h, w = r.pixels.shape[:2]
            x0, y0, x1, y1 = r.face_box
            bw, bh = x1 - x0, y1 - y0
            cx0, cy0 = max(0, int(x0 - 0.75 * bw)), max(0, int(y0 - 0.75 * bh))
            cx1, cy1 = min(w, int(x1 + 0.75 * bw)), min(h, int(y1 + 0.75 * bh))
            crop = np.ascontiguousarray(r.pixels[cy0:cy1, cx0:cx1])
            if crop.shape[0] < 20 or crop.shape[1] < 20:
                out.append(False)
                continue
            mx, my = (x0 + x1) / 2 - cx0, (y0 + y1) / 2 - cy0
            out.append(any(f.box[0] <= mx <= f.box[2] and f.box[1] <= my <= f.box[3]
                           for f in self.encoder.detect(crop)))
        return out

    def check(self, rendered: Sequence[Rendered]) -> list[tuple[float, bool]]:
        """(identity distance, face detectable) per output."""
        return list(zip(self.distances(rendered), self.detectable(rendered), strict=True))

    def distances(self, rendered: Sequence[Rendered]) -> list[float]:
        chips = [self._chip(r) for r in rendered]
        found = [c for c in chips if c is not None]
        vecs = iter(embed_chips(found, workers=self.workers))
        return [float("inf") if c is None else identity_distance(next(vecs), self.identity) for c in chips]
