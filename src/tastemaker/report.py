"""Pictures for people: the contact sheet (selfie | board | outputs) a run leaves behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .encoders.style import lab_to_rgb8

if TYPE_CHECKING:
    from .pipeline import GenerationResult

TILE = 360
PAD = 12
LABEL = 46


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fit(img: np.ndarray, w: int, h: int) -> Image.Image:
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
            tile = _fit(board.thumbs[i], cell - 4, cell - 4)
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


def contact_sheet(result: GenerationResult) -> np.ndarray:
    """Selfie | board sample (or mode palettes) | every output, labelled with its measurements."""
    n = len(result.images)
    cols = 2 + n
    W = cols * (TILE + PAD) + PAD
    H = TILE + LABEL + 2 * PAD + 30
    sheet = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = _font(18), _font(14)
    draw.text(
        (PAD, 6),
        f"Tastemaker · engine {result.engine} v{result.engine_version} · seed {result.request.seed} · "
        f"strength {result.request.strength} · guard < {result.guard_threshold:.2f}",
        fill="black",
        font=font,
    )
    y = 30 + PAD
    panels: list[tuple[Image.Image, str, str]] = [
        (_fit(result.selfie, TILE, TILE), "selfie", f"style score {result.selfie_style_score:.3f}")
        if result.selfie is not None
        else (Image.new("RGB", (TILE, TILE), (235, 235, 235)), "identity file", "no selfie pixels used"),
        (_board_panel(result, TILE, TILE), f"board: {result.profile.board.get('name', '')}",
         f"{len(result.profile.modes)} mode(s)"),
    ]
    for img in result.images:
        panels.append(
            (
                _fit(img.pixels, TILE, TILE),
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
