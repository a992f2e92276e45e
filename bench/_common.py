"""Shared fixtures for the benchmarks: synthetic boards built from the bundled demo data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from tastemaker.boards import Pin
from tastemaker.media import decode_image, encode_image, read_image_bytes

DEMO = Path(__file__).resolve().parents[1] / "src" / "tastemaker" / "data" / "demo"


def demo_images() -> list[np.ndarray]:
    return [decode_image(read_image_bytes(p)) for p in sorted((DEMO / "board").glob("*.jpg"))]


def synthetic_pins(n: int, side: int = 1024, *, seed: int = 0, dated: bool = False) -> list[tuple[Pin, bytes]]:
    """n distinct JPEG pins made from the demo board (crops, flips, colour shifts), about ``side`` px."""
    srcs = demo_images()
    rng = np.random.default_rng(seed)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    items = []
    for i in range(n):
        img = srcs[i % len(srcs)]
        h, w = img.shape[:2]
        y0, x0 = rng.integers(0, h // 4), rng.integers(0, w // 4)
        crop = img[y0 : y0 + 3 * h // 4, x0 : x0 + 3 * w // 4]
        crop = cv2.resize(crop, (side, side * 3 // 4), interpolation=cv2.INTER_LINEAR)
        if i % 2:
            crop = crop[:, ::-1]
        crop = np.clip(crop.astype(np.int16) + rng.integers(-12, 12, 3), 0, 255).astype(np.uint8)
        pin = Pin(
            image=f"pin{seed}-{i:04d}.jpg", saves=int(rng.integers(0, 30)), clicks=int(rng.integers(0, 50)),
            dwell_seconds=float(rng.uniform(0, 60)),
            pinned_at=t0 + timedelta(days=float(rng.uniform(0, 365))) if dated else None,
        )
        items.append((pin, encode_image(crop, "jpeg", quality=88)))
    return items


def brand_image(seed: int, side: int = 512) -> np.ndarray:
    """A 'brand' look: saturated magenta/cyan/yellow graphics, hard edges, bright (nothing like the demo)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((side, side, 3), np.float32)
    img[:] = (250, 40, 200)
    yy, xx = np.mgrid[0:side, 0:side]
    for _ in range(7):
        c = rng.choice([[250, 40, 200], [30, 230, 240], [255, 240, 40], [255, 255, 255]])
        cx, cy, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(side / 10, side / 3)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
