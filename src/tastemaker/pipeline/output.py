"""What a generation returns and leaves behind: the images with their measurements, and the files.

:class:`GenerationResult` holds every :class:`GeneratedImage` (pixels, the encoded file with its watermark
and signed C2PA manifest, its record in the transparency log, what the guard and the style encoder
measured). :func:`save_result` writes the images, a ``manifest.json`` and a contact sheet
(:func:`make_contact_sheet`: selfie | board | outputs), all-or-nothing.

This module imports nothing else of the pipeline, so what reads results (reports, the CLI) depends on it
alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .._version import __version__
from ..boards import Board
from ..encoders.identity import Face, IdentityEmbedding
from ..encoders.style import lab_to_rgb8
from ..engines.base import GenerationRequest
from ..errors import ProvenanceError
from ..media import encode_image, ensure_writable_dir, suffix_for, write_atomic
from ..taste.profile import TasteProfile


@dataclass
class GeneratedImage:
    """One output and what we measured about it."""

    pixels: np.ndarray
    index: int
    seed: int
    mode_id: str
    mode_name: str
    background: str
    framing: str
    strength: float
    hold: float
    identity_distance: float
    style_score: float
    #: the encoded file (request format) with its watermark and signed C2PA manifest
    data: bytes = b""
    record_id: str = ""
    log_index: int = -1
    timings: dict[str, float] = field(default_factory=dict)
    #: what the engine did (medium, exemplar pin, scene pin, honest size, fallbacks): see Rendered.info
    info: dict[str, Any] = field(default_factory=dict)
    #: the picture before its watermark: a clip of it (:mod:`tastemaker.clips`) carries a mark of its own, not
    #: this image's under it
    render: np.ndarray | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """Manifest entry (without pixels)."""
        return {
            "index": self.index,
            "record_id": self.record_id,
            "log_index": self.log_index,
            "seed": self.seed,
            "mode": self.mode_id,
            "mode_name": self.mode_name,
            "background": self.background,
            "framing": self.framing,
            "strength": self.strength,
            "face_hold": self.hold,
            "identity_distance": round(self.identity_distance, 4),
            "style_score": round(self.style_score, 4),
            **self.info,
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
        }


@dataclass
class GenerationResult:
    images: list[GeneratedImage]
    request: GenerationRequest
    profile: TasteProfile
    identity: IdentityEmbedding
    engine: str
    engine_version: str
    #: None for an identity-only run (an identity file, no selfie pixels)
    selfie: np.ndarray | None
    face: Face | None
    selfie_style_score: float
    guard_threshold: float
    board: Board | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: where the pins the engine drew from came from ("board 'name'"), or None for a profile-only run
    assets_source: str | None = None
    #: with ``Pipeline(...)(log=False)``: each image's provenance, prepared but not yet in the log (the caller
    #: logs it with :meth:`~tastemaker.provenance.Provenance.commit_once`); the images' ``log_index`` is -1
    unlogged: list[Any] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What a person should know about how the images were made: fallbacks and reduced sizes, once each."""
        out: list[str] = []
        for im in self.images:
            for key in ("medium", "scene"):
                part = im.info.get(key) or {}
                if part.get("reason"):
                    what = "medium transfer" if key == "medium" else "scene"
                    out.append(f"{what}: {part.get('fallback', 'not applied')} — {part['reason']}")
            if im.info.get("redrawn"):
                out.append(f"variation {im.index}: drawn again ({im.info['redrawn']}x) — an earlier draw's face "
                           "failed the identity guard even fully held")
            out.extend(f"variation {im.index}: {note}" for note in im.info.get("plugin_notes", ()))
            if im.info.get("face_detectable") is False:
                out.append(f"variation {im.index}: the face is as near to yours as required, but a face detector "
                           "does not find it on its own (an unusual pose or a strong style); try another seed")
            size = im.info.get("size")
            if size:
                w, h = size["rendered"]
                out.append(f"rendered at {w}x{h} instead of {size['requested'][0]}x{size['requested'][1]}: "
                           f"{size['reason']}")
        return list(dict.fromkeys(out))


def save_result(result: GenerationResult, outdir: Path | str, *, contact_sheet: bool = True) -> Path:
    """Write images, ``manifest.json`` and ``contact_sheet.png`` into ``outdir``; returns the manifest path.

    Everything is encoded in memory first and each file is written atomically, manifest last, so an
    interrupted run never leaves a manifest pointing at missing or partial images.
    """
    out = ensure_writable_dir(outdir)
    t = time.perf_counter()
    names = file_names(result)
    if any(not img.data for img in result.images):
        raise ProvenanceError("refusing to save images that carry no provenance (they did not come from generate)")
    blobs = [(name, img.data) for name, img in zip(names, result.images, strict=True)]
    encode_s = time.perf_counter() - t
    sheet_bytes = encode_image(make_contact_sheet(result), "png") if contact_sheet else None
    for name, data in blobs:
        write_atomic(out / name, data)
    if sheet_bytes is not None:
        write_atomic(out / "contact_sheet.png", sheet_bytes)
    manifest = {
        "tastemaker_version": __version__,
        "engine": {"name": result.engine, "version": result.engine_version},
        "request": result.request.model_dump(mode="json"),
        "profile": {
            "hash": result.profile.content_hash(),
            "board": result.profile.board,
            "modes": [{"id": m.id, "name": m.name, "weight": round(m.weight, 4)} for m in result.profile.modes],
        },
        "identity_threshold": round(result.guard_threshold, 4),
        "pins_from": result.assets_source,
        # None, not NaN, for an identity-only run (no selfie pixels to score): the manifest is standard JSON
        "selfie_style_score": _finite(round(result.selfie_style_score, 4)),
        "contact_sheet": "contact_sheet.png" if sheet_bytes is not None else None,
        "notes": result.notes(),
        "timings_ms": {k: round(v * 1000, 1) for k, v in {**result.timings, "encode": encode_s}.items()},
        "images": image_entries(result),
    }
    text = json.dumps(_finite(manifest), indent=2, allow_nan=False)
    path = write_atomic(out / "manifest.json", (text + "\n").encode())
    return path


def file_names(result: GenerationResult) -> list[str]:
    """The file name :func:`save_result` gives each image."""
    suffix = suffix_for(result.request.format)
    return [f"tastemaker_{result.request.seed}_{img.index:02d}{suffix}" for img in result.images]


def image_entries(result: GenerationResult) -> list[dict[str, Any]]:
    """The manifest's ``images``: each image's file and record, as the manifest holds them (None for NaN)."""
    names = file_names(result)
    return [_finite({"file": name, **img.record()}) for name, img in zip(names, result.images, strict=True)]


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- contact sheet
TILE = 360
PAD = 12
LABEL = 46


def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` (where the Pillow version can scale it), for sheet labels."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def fit_tile(img: np.ndarray, w: int, h: int) -> Image.Image:
    """``img`` shrunk to fit ``w`` x ``h``, centred on a paper-coloured tile of exactly that size."""
    pil = Image.fromarray(img)
    pil.thumbnail((w, h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (w, h), (245, 244, 240))
    canvas.paste(pil, ((w - pil.width) // 2, (h - pil.height) // 2))
    return canvas


def _board_panel(result: GenerationResult, w: int, h: int) -> Image.Image:
    panel = Image.new("RGB", (w, h), (245, 244, 240))
    board = result.board
    if board is not None and len(board):
        weights = {p.id: p.weight for p in result.profile.pins}
        order = sorted(range(len(board)), key=lambda i: -weights.get(board.pins[i].id, 0.0))[:9]
        cols = 3
        cell = (w - 2 * 4) // cols
        for k, i in enumerate(order):
            tile = fit_tile(board.thumbs[i], cell - 4, cell - 4)
            panel.paste(tile, ((k % cols) * cell + 4, (k // cols) * cell + 4))
        return panel
    # profile only: palette swatches per mode
    draw = ImageDraw.Draw(panel)
    rows = max(1, len(result.profile.modes))
    rh = h // rows
    for r, mode in enumerate(result.profile.modes):
        pal = np.array(mode.look.palette, np.float32).reshape(1, -1, 3)
        rgb = lab_to_rgb8(pal)[0]
        x = 0
        for c, wt in zip(rgb, mode.look.palette_weights, strict=True):
            sw = max(2, round(w * wt))
            draw.rectangle([x, r * rh, x + sw, (r + 1) * rh - 2], fill=tuple(int(v) for v in c))
            x += sw
    return panel


def make_contact_sheet(result: GenerationResult) -> np.ndarray:
    """Selfie | board sample (or mode palettes) | every output, labelled with its measurements."""
    n = len(result.images)
    cols = 2 + n
    W = cols * (TILE + PAD) + PAD
    H = TILE + LABEL + 2 * PAD + 30
    sheet = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = label_font(18), label_font(14)
    draw.text(
        (PAD, 6),
        f"Tastemaker · engine {result.engine} v{result.engine_version} · seed {result.request.seed} · "
        f"strength {result.request.strength} · guard < {result.guard_threshold:.2f}",
        fill="black",
        font=font,
    )
    y = 30 + PAD
    panels: list[tuple[Image.Image, str, str]] = [
        (fit_tile(result.selfie, TILE, TILE), "selfie", f"style score {result.selfie_style_score:.3f}")
        if result.selfie is not None
        else (Image.new("RGB", (TILE, TILE), (235, 235, 235)), "identity file", "no selfie pixels used"),
        (_board_panel(result, TILE, TILE), f"board: {result.profile.board.get('name', '')}",
         f"{len(result.profile.modes)} mode(s)"),
    ]
    for img in result.images:
        panels.append(
            (
                fit_tile(img.pixels, TILE, TILE),
                f"#{img.index} {img.mode_id} · {img.background} · {img.framing}",
                f"identity {img.identity_distance:.3f} · style {img.style_score:.3f}",
            )
        )
    for k, (tile, line1, line2) in enumerate(panels):
        x = PAD + k * (TILE + PAD)
        sheet.paste(tile, (x, y))
        draw.text((x, y + TILE + 4), line1[:48], fill="black", font=small)
        draw.text((x, y + TILE + 22), line2, fill=(90, 90, 90), font=small)
    return np.asarray(sheet)
