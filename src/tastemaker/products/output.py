"""What a product render returns and leaves behind: the images with their fidelity measurements, and the files.

:func:`save_product_result` writes the stamped images (as they came from provenance, never re-encoded), a
``manifest.json`` (each image's record, cut-out, background, light, hold and fidelity) and a contact sheet
(product cut-out | board | outputs), each file atomically, the manifest last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .._version import __version__
from ..boards import Board
from ..engines.base import GenerationRequest
from ..errors import ProvenanceError
from ..media import encode_image, ensure_writable_dir, suffix_for, write_atomic
from ..pipeline.output import PAD, TILE, fit_tile, label_font
from ..taste.profile import TasteProfile
from .cutout import Cutout

MANIFEST, CONTACT_SHEET = "manifest.json", "contact_sheet.png"


@dataclass
class ProductImage:
    """One product output and what the fidelity guard measured of it."""

    pixels: np.ndarray
    index: int
    seed: int
    mode_id: str
    mode_name: str
    background: str
    framing: str
    strength: float
    hold: float
    delta_e: float
    shape_ssim: float
    data: bytes = b""
    record_id: str = ""
    log_index: int = -1
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: the picture before its mark (what a clip is made of) and the product's matte placed in it (0..1)
    render: np.ndarray | None = field(default=None, repr=False)
    alpha: np.ndarray | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """Manifest entry (without pixels)."""
        return {
            "index": self.index, "record_id": self.record_id, "log_index": self.log_index, "seed": self.seed,
            "mode": self.mode_id, "mode_name": self.mode_name, "background": self.background,
            "framing": self.framing, "strength": self.strength, "product_hold": self.hold,
            "delta_e": round(self.delta_e, 3), "shape_ssim": round(self.shape_ssim, 4), **self.info,
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
        }


@dataclass
class ProductResult:
    images: list[ProductImage]
    request: GenerationRequest
    profile: TasteProfile
    cutout: Cutout
    engine: str
    engine_version: str
    board: Board | None = None
    timings: dict[str, float] = field(default_factory=dict)
    restyle: bool = False
    assets_source: str | None = None
    #: with ``log=False``: each image's provenance, prepared but not logged (see ProductPipeline.__call__)
    unlogged: list[Any] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What a person should know: fallbacks, enlargements, holds, the cut-out's notes — once each."""
        out: list[str] = list(self.cutout.notes)
        for im in self.images:
            for key in ("medium", "scene"):
                part = im.info.get(key) or {}
                if part.get("reason"):
                    out.append(f"{key}: {part.get('fallback', 'not applied')} — {part['reason']}")
            if im.info.get("background_fallback"):
                out.append(str(im.info["background_fallback"]))
            if im.info.get("enlarged"):
                out.append(f"variation {im.index}: the product is enlarged {im.info['enlarged']}x from its photo "
                           "(a larger photo gives a sharper image)")
            if im.hold > 0:
                out.append(f"variation {im.index}: the product was held at {im.hold:g} (less of the look on it) to "
                           "keep its colours and shape true")
        return list(dict.fromkeys(out))


def file_names(result: ProductResult, stem: str = "product") -> list[str]:
    """The file name :func:`save_product_result` gives each image."""
    suffix = suffix_for(result.request.format)
    return [f"{stem}_{result.request.seed}_{img.index:02d}{suffix}" for img in result.images]


def save_product_result(result: ProductResult, outdir: Path | str, *, stem: str = "product",
                        contact_sheet: str | None = CONTACT_SHEET, manifest: str | None = MANIFEST) -> Path | None:
    """Write images, the manifest and the contact sheet into ``outdir``; returns the manifest path (if any)."""
    out = ensure_writable_dir(outdir)
    names = file_names(result, stem)
    if any(not img.data for img in result.images):
        raise ProvenanceError("refusing to save product images that carry no provenance")
    sheet = encode_image(make_contact_sheet(result), "png") if contact_sheet else None
    for name, img in zip(names, result.images, strict=True):
        write_atomic(out / name, img.data)
    if sheet is not None and contact_sheet:
        write_atomic(out / contact_sheet, sheet)
    if manifest is None:
        return None
    doc = manifest_doc(result, names, contact_sheet if sheet is not None else None)
    return write_atomic(out / manifest, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())


def manifest_doc(result: ProductResult, names: list[str], contact_sheet: str | None) -> dict[str, Any]:
    """The manifest of one product's render (JSON-ready)."""
    return {
        "tastemaker_version": __version__,
        "subject": "product",
        "engine": {"name": result.engine, "version": result.engine_version},
        "request": result.request.model_dump(mode="json"),
        "product": {"name": result.cutout.name, **result.cutout.info()},
        "restyle": result.restyle,
        "profile": {"hash": result.profile.content_hash(), "board": result.profile.board,
                    "modes": [{"id": m.id, "name": m.name, "weight": round(m.weight, 4)}
                              for m in result.profile.modes]},
        "pins_from": result.assets_source,
        "contact_sheet": contact_sheet,
        "notes": result.notes(),
        "timings_ms": {k: round(v * 1000, 1) for k, v in result.timings.items()},
        "images": [{"file": n, **img.record()} for n, img in zip(names, result.images, strict=True)],
    }


def _cutout_tile(cut: Cutout) -> np.ndarray:
    """The cut-out on a light checkerboard (so its matte shows)."""
    h, w = cut.alpha.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cell = max(8, max(h, w) // 24)
    checker = np.where(((yy // cell + xx // cell) % 2)[..., None] == 0, 235.0, 205.0)
    a = cut.alpha[..., None]
    return np.clip(cut.rgb * a + checker * (1 - a) + 0.5, 0, 255).astype(np.uint8)


def make_contact_sheet(result: ProductResult) -> np.ndarray:
    """Cut-out | board's palettes | every output, labelled with mode, background, hold and fidelity."""
    panels = [(fit_tile(_cutout_tile(result.cutout), TILE, TILE), f"product: {result.cutout.name}"[:48],
               f"cut-out: {result.cutout.source}")]
    for img in result.images:
        panels.append((fit_tile(img.pixels, TILE, TILE), f"#{img.index} {img.mode_name} · {img.background}"[:48],
                       f"dE {img.delta_e:.2f} · shape {img.shape_ssim:.3f} · hold {img.hold:g}"))
    W = len(panels) * (TILE + PAD) + PAD
    H = TILE + 46 + 2 * PAD + 30
    sheet = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = label_font(18), label_font(14)
    draw.text((PAD, 6), f"Tastemaker · products · board {result.profile.board.get('name', '')} · seed "
              f"{result.request.seed} · strength {result.request.strength}", fill="black", font=font)
    y = 30 + PAD
    for k, (tile, line1, line2) in enumerate(panels):
        x = PAD + k * (TILE + PAD)
        sheet.paste(tile, (x, y))
        draw.text((x, y + TILE + 4), line1, fill="black", font=small)
        draw.text((x, y + TILE + 22), line2, fill=(90, 90, 90), font=small)
    return np.asarray(sheet)
