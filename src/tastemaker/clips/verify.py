"""Verifying a clip: a few frames decoded, the watermark looked for in each, the ids voted on, then the frame that
carries the winning id checked like an image (record, picture fingerprint, log proofs) with the file's own C2PA
manifest (MP4 and GIF; a WebM has none)."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np

from ..errors import ImageDecodeError
from ..provenance import watermark as wm
from ..provenance.c2pa import ManifestReport, read_manifest
from ..provenance.ledger import SignedTreeHead
from ..provenance.service import Provenance
from ..provenance.verdict import VerifyReport
from .codec import sniff

#: frames looked at (spread over the clip); the vote stops early once this many agree
SAMPLES, AGREE = 5, 2


def is_clip(data: bytes) -> bool:
    """The bytes are a video container (MP4, WebM) or a GIF: what :func:`verify_clip` reads."""
    return sniff(data) is not None


def sample_frames(data: bytes, k: int = SAMPLES) -> list[np.ndarray]:
    """``k`` frames spread evenly over the clip (first and last included), uint8 RGB."""
    import av

    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.video:
                raise ImageDecodeError("the file holds no video stream")
            total = sum(1 for p in container.demux(video=0) if p.size)
        if total == 0:
            raise ImageDecodeError("the clip holds no frames")
        wanted = sorted({round(i * (total - 1) / max(1, k - 1)) for i in range(k)})
        out: list[np.ndarray] = []
        with av.open(io.BytesIO(data), "r") as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    out.append(frame.to_ndarray(format="rgb24"))
                if len(out) == len(wanted):
                    break
    except av.error.FFmpegError as exc:
        raise ImageDecodeError(f"cannot read the clip: {exc}") from None
    if not out:
        raise ImageDecodeError("no frame of the clip could be decoded")
    return out


def verify_clip(prov: Provenance, data: bytes, *, known_head: SignedTreeHead | None = None) -> VerifyReport:
    """One verdict for a clip (see the module docstring); ``report.media`` says what was checked."""
    kind = sniff(data)
    if kind is None:
        raise ImageDecodeError("not a clip: expected an MP4, WebM or GIF file")
    manifest = (read_manifest(data, kind, trust_anchor_pem=prov.identity.anchor_pem)
                if kind in ("mp4", "gif") else ManifestReport("absent"))
    frames = sample_frames(data)
    # middle first, then the ends: the vote usually settles on the first two
    order = sorted(range(len(frames)), key=lambda i: abs(i - (len(frames) - 1) / 2))
    dets: dict[int, wm.Detection] = {}
    votes: Counter[int] = Counter()
    for i in order:
        dets[i] = det = wm.detect(frames[i], key=prov.key)
        if det.payload is not None:
            votes[det.payload] += 1
            if votes.most_common(1)[0][1] >= AGREE:
                break
    problems: list[str] = []
    if votes:
        winner, count = votes.most_common(1)[0]
        best = max((i for i in dets if dets[i].payload == winner), key=lambda i: dets[i].confidence)
        if len(votes) > 1:
            problems.append(f"frames carry different marks: {', '.join(f'{p:010x}' for p in votes)}; "
                            f"{winner:010x} carried the vote")
        report = prov.verify_pixels(frames[best], manifest, problems=problems, known_head=known_head,
                                    detection=dets[best])
    else:
        # no frame's mark decodes (a copy re-encoded hard, line art's flat paper): the picture's fingerprint may
        # still find the record; the first and last frames first (a push or pull is at rest there: the key picture)
        count = 0
        for i in sorted(dets, key=lambda i: (i not in (0, len(frames) - 1), i)):
            report = prov.verify_pixels(frames[i], manifest, problems=list(problems), known_head=known_head,
                                        detection=dets[i])
            if report.verdict != "not_ours":
                break
    report.media = {"kind": "clip", "container": kind, "frames_checked": len(dets), "frames_marked": count,
                    "height": int(frames[0].shape[0]), "width": int(frames[0].shape[1])}
    if report.record is not None and report.record.clip is None:
        report.problems.append("the clip shows a still output (its record is an image's, not a clip's): a video made "
                               "from it elsewhere")
    return report


def verify_any(prov: Provenance, data: bytes, *, known_head: SignedTreeHead | None = None) -> VerifyReport:
    """A clip through :func:`verify_clip`, anything else through :meth:`Provenance.verify`."""
    if is_clip(data):
        return verify_clip(prov, data, known_head=known_head)
    return prov.verify(data, known_head=known_head)
