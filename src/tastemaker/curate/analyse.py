"""Everything curation measures on one image, as a plain picklable function (the same code runs here, in a
process pool, or as a Ray task): its bytes' hash, size, C2PA training-and-mining permission, faces, quality
measures and perceptual hashes.

**C2PA.** An image carrying a C2PA manifest whose ``c2pa.training-mining`` or ``cawg.training-mining``
assertion says ``notAllowed`` — or ``constrained``, whose conditions a pipeline cannot check — for AI training,
generative training or data mining is excluded, whether or not the manifest's signature is trusted or intact
(an edited file does not change what its creator asked). A manifest that cannot be read at all is recorded as
such and also excluded: consent cannot be confirmed.

**Quality.** Sharpness is the variance of the Laplacian of the grey image at 512 px (blur lowers it); near
blank is a luminance spread (standard deviation of L*) below a threshold; size is the shorter side in pixels.

**Perceptual hashes.** A 64-bit DCT hash (``imagehash.phash``) of the whole image and of 25 crops keeping
80 % of each side (offsets on a 5 x 5 grid), so a copy that was re-encoded, resized *or* cropped still lands within
a few bits of one of the original's hashes (:mod:`.dedup` compares them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, check_image, decode_image, read_image_bytes

#: Side the quality measures and hashes work at.
WORK_SIDE = 512
#: The training and mining uses that matter for a training dataset.
TRAINING_USES = ("ai_training", "ai_generative_training", "data_mining")
CROP = 0.8
#: Crop offsets per axis for the perceptual hashes (5: 0, 5, 10, 15, 20 % of the side).
GRID = 5


@dataclass(frozen=True)
class ImageJob:
    """One image to analyse (plain values: it crosses process and machine boundaries)."""

    index: int
    path: str
    name: str
    look_for_faces: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass
class Analysis:
    """What was measured; ``error`` set when the file could not be read as an image."""

    index: int
    sha256: str = ""
    bytes: int = 0
    format: str = ""
    width: int = 0
    height: int = 0
    faces: int = -1
    c2pa_state: str = "absent"  #: absent | valid | tampered | unreadable
    c2pa_uses: dict[str, str] = field(default_factory=dict)  #: use -> allowed | notAllowed | constrained
    sharpness: float = 0.0
    luminance_std: float = 0.0
    hashes: list[int] = field(default_factory=list)  #: [whole image, 25 crops]
    error: str = ""


def training_uses(manifest: dict | None) -> dict[str, str]:
    """``use -> permission`` from a manifest's training-and-mining assertions (``c2pa.`` and ``cawg.``)."""
    out: dict[str, str] = {}
    for a in (manifest or {}).get("assertions", []) or []:
        label = str(a.get("label", ""))
        if not label.split(".v")[0].endswith("training-mining"):
            continue
        entries = (a.get("data") or {}).get("entries") or {}
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            use = str(name).split(".", 1)[-1]
            value = entry.get("use") if isinstance(entry, dict) else None
            if isinstance(value, str):
                prev = out.get(use)
                # the strictest word wins when two assertions disagree
                rank = {"allowed": 0, "constrained": 1, "notAllowed": 2}
                if prev is None or rank.get(value, 2) > rank.get(prev, 2):
                    out[use] = value
    return out


def c2pa_permission(data: bytes, fmt: str) -> tuple[str, dict[str, str]]:
    """``(state, uses)`` of the image's C2PA manifest; ``("absent", {})`` when there is none."""
    if b"c2pa" not in data or fmt not in ("jpeg", "png", "webp"):
        return "absent", {}
    from ..provenance.c2pa import read_manifest

    try:
        report = read_manifest(data, fmt)
    except Exception:  # c2pa-rs refusing a malformed store: there is a manifest we cannot read
        return "unreadable", {}
    if report.state == "absent":
        return "absent", {}
    if report.manifest is None:
        return "unreadable", {}
    return report.state, training_uses(report.manifest)


def _phash(grey: np.ndarray) -> int:
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(grey)).hash.ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def perceptual_hashes(grey: np.ndarray) -> list[int]:
    """phash of the whole grey image, then of its 80 % crops on a :data:`GRID` x :data:`GRID` grid of offsets
    (a crop anywhere in the picture is then within 2.5 % of the picture's side of one of them)."""
    h, w = grey.shape
    ch, cw = max(1, round(h * CROP)), max(1, round(w * CROP))
    offsets = np.linspace(0.0, 1.0, GRID)
    starts = [(round(oy * (h - ch)), round(ox * (w - cw))) for oy in offsets for ox in offsets]
    crops = [grey] + [grey[y:y + ch, x:x + cw] for y, x in starts]
    return [_phash(np.ascontiguousarray(c)) for c in crops]


def quality_measures(grey: np.ndarray, lum: np.ndarray) -> tuple[float, float]:
    """(sharpness: variance of the Laplacian, luminance std) of a <= 512 px grey image."""
    import cv2

    lap = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3)
    return float(lap.var()), float(lum.std())


def analyse(job: ImageJob) -> Analysis:
    """Measure one image; an unreadable file is an :class:`Analysis` with ``error``, never an exception."""
    import cv2

    from ..discovery.analyse import count_faces
    from ..media import resize_max_side

    out = Analysis(job.index)
    try:
        data = read_image_bytes(Path(job.path), max_bytes=job.max_bytes)
        out.sha256 = hashlib.sha256(data).hexdigest()
        out.bytes = len(data)
        out.width, out.height = check_image(data, name=job.name, max_pixels=job.max_pixels, max_bytes=job.max_bytes)
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            out.format = (im.format or "").lower().replace("mpo", "jpeg")
        img = decode_image(data, name=job.name, max_pixels=job.max_pixels, max_bytes=job.max_bytes,
                           reduce_longest=WORK_SIDE * 2 if job.look_for_faces else WORK_SIDE)
    except ImageError as exc:
        out.error = exc.message
        return out
    out.c2pa_state, out.c2pa_uses = c2pa_permission(data, out.format)
    work = resize_max_side(img, WORK_SIDE)
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    lab_l = cv2.cvtColor(work.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 0]
    out.sharpness, out.luminance_std = quality_measures(grey, lab_l)
    out.hashes = perceptual_hashes(grey)
    if job.look_for_faces:
        out.faces = count_faces(img)
    return out
