"""Loading a board's pixels for one request: the exemplars of medium transfer and the scenes.

A taste profile names each mode's medoid pins and every pin's weight and mode, but carries no pixels.
Where the pins are — a board folder, the server's stored board — :func:`load_assets` decodes the few an
engine may draw from: per mode its medoids first (the pins that represent it best), then its heaviest
other pins, up to ``per_mode``, each at most :data:`ASSET_SIDE` px on its longest side (JPEGs are
decoded at reduced size). A pin that cannot be read is listed in ``missing`` with the reason; the
engine falls back for what it needed and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..boards import Board, Pin
from ..errors import TastemakerError
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image, resize_max_side
from ..taste.profile import TasteProfile
from .base import BoardAssets, PinImage

ASSET_SIDE = 1024
PINS_PER_MODE = 6


def wanted_pins(profile: TasteProfile, per_mode: int = PINS_PER_MODE) -> dict[str, str]:
    """pin id -> mode id for the pins worth loading: each mode's medoids, then its heaviest pins."""
    out: dict[str, str] = {}
    for mode in profile.modes:
        ids = list(mode.medoids)
        rest = sorted((p for p in profile.pins if p.mode == mode.id), key=lambda p: (-p.weight, p.id))
        ids += [p.id for p in rest if p.id not in ids]
        for pid in ids[:per_mode]:
            out.setdefault(pid, mode.id)
    return out


@dataclass(frozen=True)
class AssetLimits:
    """How much of a board one request may decode: pins per mode, their longest side, and the decoder's
    pixel and byte limits for each (a server passes its own upload limits)."""

    per_mode: int = PINS_PER_MODE
    side: int = ASSET_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES


def load_assets(board: Board, profile: TasteProfile, limits: AssetLimits = AssetLimits()) -> BoardAssets:
    """Decode the pins an engine may draw from a board folder (see the module docstring)."""
    source = f"board {board.name!r}"
    if board.reader is None:
        return BoardAssets(source=source, missing={pid: "the board holds thumbnails only"
                                                   for pid in wanted_pins(profile, limits.per_mode)})
    return _load(source, profile, limits, {p.id: p for p in board.pins}, board.reader)


def assets_from_bytes(
    source: str, pins: Mapping[str, tuple[Pin, bytes]], profile: TasteProfile, limits: AssetLimits = AssetLimits()
) -> BoardAssets:
    """Assets from pins whose bytes the caller already has (pin id -> (pin, bytes)), e.g. a stored board."""
    return _load(source, profile, limits, {pid: pin for pid, (pin, _) in pins.items()}, lambda pin: pins[pin.id][1])


def _load(
    source: str,
    profile: TasteProfile,
    limits: AssetLimits,
    by_id: Mapping[str, Pin],
    read: Callable[[Pin], bytes],
) -> BoardAssets:
    weights = {p.id: p.weight for p in profile.pins}
    wanted = wanted_pins(profile, limits.per_mode)
    assets = BoardAssets(source=source)

    def one(item: tuple[str, str]) -> PinImage | str:
        pid, mode = item
        pin = by_id.get(pid)
        if pin is None:
            return "not on this board (the profile was made from another version of it)"
        try:
            img = decode_image(read(pin), name=pin.image, max_pixels=limits.max_pixels, max_bytes=limits.max_bytes,
                               reduce_to=limits.side)
        except TastemakerError as exc:
            return exc.message
        except OSError as exc:
            return f"cannot read {pin.image}: {exc}"
        return PinImage(id=pid, image=resize_max_side(img, limits.side), mode=mode, weight=weights.get(pid, 0.0),
                        text=pin.text)

    with ThreadPoolExecutor(max_workers=2) as pool:  # Pillow releases the GIL while decoding
        results = list(pool.map(one, wanted.items()))
    for (pid, _), res in zip(wanted.items(), results, strict=True):
        if isinstance(res, str):
            assets.missing[pid] = res
        else:
            assets.pins[pid] = res
    return assets
