"""What the evaluation measures, per output image and per request, and how it is aggregated.

Identity (dlib, the project's identity encoder, run *independently of the engine's guard*: a full
face detection on every output, never the box the engine reports):

* ``identity_to_selfie`` — Euclidean distance between the output's face embedding and the selfie's
  (dlib: < 0.6 means the same person; 99.38 % on LFW);
* ``identity_to_others`` — mean distance to the person's *other* photos (selfie folder laid out one
  sub-folder per person). The engine never sees those photos, so this is identity transfer, not
  "same pixels as the input";
* ``verified`` / ``verified_others`` — the distance is under :data:`VERIFY_THRESHOLD` (0.6). An
  output with no detectable face counts as *not verified*; it is never left out of the rate.

Style:

* ``style_score`` — the project's own score (:meth:`TasteProfile.style_score`): similarity of the
  output's style descriptor to the closest mode of its board's profile. The engine optimises this
  descriptor, so it shows the engine does what it aims at, not that the aim is right;
* ``attribution`` — is the output's own board the nearest of all boards in the run, measured with
  the random-filter Gram descriptor (:mod:`.descriptors`) the engine never sees; the distance to a
  board is the mean distance to its 3 nearest pins. Chance is 1 / number of boards.

Diversity among the ``n`` variations of one request: mean pairwise Gram distance and mean pairwise
CIE76 colour difference (ΔE) of 64 px Lab thumbnails; a pair under ΔE 2 (about one just-noticeable
difference) is flagged as a near-duplicate.

Aggregates: means with a 95 % Student-t interval; rates with a 95 % Wilson score interval. The
intervals treat images as independent; the ``n`` variations of one request are not, so read them
as optimistic when there are few requests (the report gives both counts).
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..encoders.identity import Face, IdentityEncoder, identity_distance
from .descriptors import gram_descriptor, lab_thumb, mean_delta_e

VERIFY_THRESHOLD = 0.6
NEAR_DUPLICATE_DELTA_E = 2.0


# ---------------------------------------------------------------------------------------- identity
@dataclass
class FaceMeasure:
    """The dominant face found in an output (or none) and its dlib embedding."""

    face: Face | None
    embedding: np.ndarray | None


def measure_face(encoder: IdentityEncoder, img: np.ndarray) -> FaceMeasure:
    """Detect (full detection, no hints from the engine) and embed the dominant face, if any."""
    faces = encoder.detect(img)
    if not faces:
        return FaceMeasure(None, None)
    return FaceMeasure(faces[0], encoder.embed_face(img, faces[0]))


def identity_metrics(
    fm: FaceMeasure, selfie: np.ndarray, others: Sequence[np.ndarray], threshold: float = VERIFY_THRESHOLD
) -> dict[str, Any]:
    """Distances of one output's face to the selfie and to the person's other photos."""
    if fm.embedding is None:
        return {
            "face_found": False,
            "identity_to_selfie": None,
            "identity_to_others": None,
            "verified": False,
            "verified_others": False if others else None,
        }
    to_selfie = identity_distance(fm.embedding, selfie)
    to_others = float(np.mean([identity_distance(fm.embedding, o) for o in others])) if others else None
    return {
        "face_found": True,
        "identity_to_selfie": to_selfie,
        "identity_to_others": to_others,
        "verified": to_selfie < threshold,
        "verified_others": None if to_others is None else to_others < threshold,
    }


# ------------------------------------------------------------------------------------- attribution
def attribution(distances: dict[str, float], own: str) -> dict[str, Any]:
    """Nearest board by descriptor distance; margin = nearest other board's distance minus own."""
    nearest = min(distances, key=lambda b: (distances[b], b))
    others = [d for b, d in distances.items() if b != own]
    return {
        "attributed_board": nearest,
        "attribution_correct": nearest == own,
        "attribution_margin": (min(others) - distances[own]) if others else None,
    }


# --------------------------------------------------------------------------------------- diversity
def diversity(images: Sequence[np.ndarray], descriptors: Sequence[np.ndarray] | None = None,
              near_duplicate_de: float = NEAR_DUPLICATE_DELTA_E) -> dict[str, Any]:
    """Mean pairwise distances among one request's variations, and which pairs look the same."""
    descs = list(descriptors) if descriptors is not None else [gram_descriptor(i) for i in images]
    thumbs = [lab_thumb(i) for i in images]
    grams, des, dups = [], [], []
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            grams.append(float(np.linalg.norm(descs[a] - descs[b])))
            de = mean_delta_e(thumbs[a], thumbs[b])
            des.append(de)
            if de < near_duplicate_de:
                dups.append([a, b])
    return {
        "pairs": len(des),
        "diversity_gram": float(np.mean(grams)) if grams else None,
        "diversity_delta_e": float(np.mean(des)) if des else None,
        "near_duplicate_pairs": dups,
    }


# ------------------------------------------------------------------------------------- aggregation
def mean_ci(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean, sample std and a 95 % Student-t interval over the values that are not None."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    from scipy.stats import t

    std = float(v.std(ddof=1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


def rate_ci(flags: Iterable[bool | None]) -> dict[str, Any]:
    """Proportion of True among the non-None flags, with a 95 % Wilson score interval."""
    f = [bool(x) for x in flags if x is not None]
    n, k = len(f), sum(f)
    if n == 0:
        return {"rate": None, "ci95": None, "k": 0, "n": 0}
    z = 1.959963984540054
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"rate": p, "ci95": [max(0.0, centre - half), min(1.0, centre + half)], "k": k, "n": n}


# --------------------------------------------------------------------------------------- resources
def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory since start (or since :func:`reset_peak_rss`), in MB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark so the next :func:`peak_rss_mb` covers one stage only.

    Linux only (``/proc/self/clear_refs``); returns False where it cannot, and the peak then covers
    everything since the process started (reported as such).
    """
    if not os.path.exists("/proc/self/clear_refs"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
