"""Short motion clips of an output: 2.5D parallax, a seeded camera move, living grain, and provenance of their own.

From one generated picture (before its own mark) :func:`make_clip` makes a 1-6 s clip:

1. **layers** (:mod:`.layers`): the subject (the person's mask from the look engine's segmentation, or a product's
   cut-out given as alpha) over the background completed behind it (push-pull fill), the subject's edge colours
   un-mixed from the old background (no halo), the frozen grain taken out of flat areas;
2. **mark**: the clip's own record id is embedded once, in the composite at rest, and the mark's difference is
   added to both layers, so every frame carries it *moved with the picture*: a codec's motion prediction carries
   it along (a mark fixed to the screen would be predicted away in P-frames), and a single frame, or a re-encoded
   half-size copy, still decodes (detection finds the zoom and shift). The mark is embedded at half the frame's
   size (twice as coarse as an image's; the record says ``mark_scale: 2``) with headroom at the extreme tones
   (:func:`.make.mark_frame`): a half-size H.264 copy keeps it even on line art. Marking once keeps the cost per
   clip at one embed (~0.1 s), not one per frame;
3. **camera** (:mod:`.camera`): push in, pull back, pan, rise or drift, 4-7 % of zoom, chosen by the seed, with the
   subject moving 1.5-1.9x as much as the background (parallax), eased in and out;
4. **frames** (:mod:`.render`): two warps and a blend per frame, with fresh grain at the output's level;
5. **file** (:mod:`.codec`, PyAV: FFmpeg comes in its wheel): MP4 (H.264) by default, WebM (VP9) or GIF, at the
   output's size up to 1080p (GIF: up to 640 px; a GIF over 20 MB is made again smaller, then refused), 24 or 30
   fps, even sides;
6. **record**: a v2 provenance record with ``clip`` (duration, fps, frames, size, format, and the still's id),
   a C2PA manifest embedded in MP4 and GIF files (c2pa-python cannot sign WebM: its clips carry the mark only),
   and an entry in the transparency log.

:func:`verify_clip` decodes five frames, looks for the mark in each, votes, and checks the winning frame like an
image (``tastemaker verify clip.mp4``, ``POST /v1/verify``); :func:`verify_any` sends anything else to
:meth:`~tastemaker.provenance.service.Provenance.verify`.
"""

from __future__ import annotations

from .camera import MOVES, Camera, plan_camera
from .codec import decode, encode, sniff
from .layers import Layers, build_layers
from .make import Clip, clips_for_result, make_clip, prepare, render, save_clips
from .options import (
    CLIP_MAX_BYTES,
    FORMATS,
    FPS_CHOICES,
    GIF_MAX_BYTES,
    MAX_SECONDS,
    MIN_SECONDS,
    ClipOptions,
    clip_size,
)
from .verify import is_clip, sample_frames, verify_any, verify_clip

__all__ = [
    "CLIP_MAX_BYTES",
    "FORMATS",
    "FPS_CHOICES",
    "GIF_MAX_BYTES",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "MOVES",
    "Camera",
    "Clip",
    "ClipOptions",
    "Layers",
    "build_layers",
    "clip_size",
    "clips_for_result",
    "decode",
    "encode",
    "is_clip",
    "make_clip",
    "plan_camera",
    "prepare",
    "render",
    "sample_frames",
    "save_clips",
    "sniff",
    "verify_any",
    "verify_clip",
]
