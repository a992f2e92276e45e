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

    Every output gets one full face detection, as anyone verifying the picture would run (:meth:`check`): the
    face is embedded where the detector finds it, and a face that is near enough but that the detector does
    not find on its own is "not detectable" and held more, like one that drifts.
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

    def look(self, rendered: Rendered) -> tuple[np.ndarray | None, bool]:
        """(the face chip to embed, whether a detector finds the face unaided) for one output.

        One full detection on the whole picture — the same anyone verifying it runs (``tastemaker eval``, a
        reverse search). When its dominant face is where the engine put the face, that detected box is the
        one embedded (so the guard's distance is a verifier's); otherwise the face is "not detectable" and is
        embedded inside the engine's box (a crop searched alone is not the same test: HOG cells fall
        differently and a marginal face found there is missed in the whole picture). An engine that cannot
        say where the face is gets the detection alone; no face at all is infinitely far.
        """
        img = rendered.pixels
        faces = self.encoder.detect(img)
        if rendered.face_box is None:
            return (self.encoder.chip(img, faces[0].box) if faces else None), True
        h, w = img.shape[:2]
        x0, y0, x1, y1 = rendered.face_box
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        if faces and faces[0].box[0] <= mx <= faces[0].box[2] and faces[0].box[1] <= my <= faces[0].box[3]:
            return self.encoder.chip(img, faces[0].box), True
        box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
        if box[2] - box[0] >= 20 and box[3] - box[1] >= 20:
            return self.encoder.chip(img, box), False
        return None, False

    def check(self, rendered: Sequence[Rendered]) -> list[tuple[float, bool]]:
        """(identity distance, face detectable) per output."""
        return self.measure([self.look(r) for r in rendered])

    def measure(self, looked: Sequence[tuple[np.ndarray | None, bool]]) -> list[tuple[float, bool]]:
        """(identity distance, face detectable) per output from what :meth:`look` found (one embedding batch)."""
        found = [c for c, _ in looked if c is not None]
        vecs = iter(embed_chips(found, workers=self.workers))
        return [(float("inf") if c is None else identity_distance(next(vecs), self.identity), f) for c, f in looked]
