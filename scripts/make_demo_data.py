"""Rebuild the bundled demo data (src/tastemaker/data/demo) from public-domain / CC0 photos.

Sources (not committed; pass the folder holding them):
  astronaut.png   NASA portrait of Eileen Collins, public domain   (scikit-image's skimage/data)
  coffee.png      Rachel Michetti, CC0                             (scikit-image)
  chelsea.png     Stefan van der Walt, CC0                         (scikit-image)
  rocket.jpg      SpaceX launch of DSCOVR, public domain           (scikit-image)
  brick.png, grass.png, gravel.png   CC0Textures, CC0              (scikit-image)
  hubble_deep_field.jpg  NASA, public domain                       (scikit-image)

The board's pins are crops of those photos, each graded into one of two deliberately different
aesthetics, so the demo board holds two style modes:

  golden film  warm highlights, lifted blacks, soft, grainy, vignetted   (8 pins, more engagement)
  blue noir    teal shadows, crushed blacks, high contrast, desaturated   (5 pins)

Usage: python scripts/make_demo_data.py SOURCE_DIR
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "src" / "tastemaker" / "data" / "demo"


def _load(src: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(src / name).convert("RGB")).astype(np.float32) / 255.0


def _crop(img: np.ndarray, box: tuple[float, float, float, float], side: int = 512) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    c = img[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]
    s = side / max(c.shape[:2])
    return cv2.resize(c, (round(c.shape[1] * s), round(c.shape[0] * s)), interpolation=cv2.INTER_AREA)


def _vignette(img: np.ndarray, k: float) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)) / np.sqrt(2)
    return img * (1 - k * np.clip((r - 0.3) / 0.7, 0, 1) ** 2)[..., None]


def golden_film(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = cv2.GaussianBlur(img, (0, 0), 1.2)
    lum = x.mean(axis=2, keepdims=True)
    x = lum + (x - lum) * 0.85
    x = x * np.array([1.18, 1.0, 0.68]) + np.array([0.07, 0.035, 0.0])
    x = 0.12 + x * 0.82  # lifted blacks, soft whites
    x = _vignette(x, 0.35)
    x = x + rng.normal(0, 0.035, x.shape[:2])[..., None]
    return np.clip(x, 0, 1)


def blue_noir(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lum = img.mean(axis=2, keepdims=True)
    x = lum + (img - lum) * 0.45
    x = (x - 0.5) * 1.45 + 0.42
    shadows = np.clip(1 - x.mean(axis=2, keepdims=True) * 2, 0, 1)
    x = x + shadows * np.array([-0.06, 0.02, 0.09]) + np.array([-0.04, 0.0, 0.05])
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    x = cv2.filter2D(x.astype(np.float32), -1, kernel)
    return np.clip(x, 0, 1)


PINS = [
    # file, source, crop box, look, saves, clicks, dwell, pinned_at, title, tags
    ("cafe-morning.jpg", "coffee.png", (0, 0, 1, 1), "golden", 14, 22, 95, "2024-05-02T09:10:00Z", "sunlit cafe morning", "golden hour;film;warm;cafe"),
    ("latte-close.jpg", "coffee.png", (0.2, 0.1, 0.8, 0.9), "golden", 6, 9, 40, "2024-05-20T08:00:00Z", "latte close up", "film;warm;coffee"),
    ("cat-nap.jpg", "chelsea.png", (0, 0, 1, 1), "golden", 21, 30, 140, "2024-06-11T17:45:00Z", "cat in the afternoon sun", "golden hour;cozy;film"),
    ("whiskers.jpg", "chelsea.png", (0.25, 0.05, 0.85, 0.95), "golden", 3, 5, 20, "2024-03-15T12:00:00Z", "soft portrait", "portrait;warm;soft"),
    ("brick-wall.jpg", "brick.png", (0, 0, 1, 1), "golden", 4, 4, 15, "2024-04-01T10:00:00Z", "old brick in warm light", "texture;warm;film"),
    ("meadow.jpg", "grass.png", (0, 0, 1, 1), "golden", 9, 12, 60, "2024-06-30T19:30:00Z", "meadow at sunset", "golden hour;nature;film"),
    ("gravel-path.jpg", "gravel.png", (0, 0, 1, 1), "golden", 2, 3, 12, "2023-11-20T15:00:00Z", "path at dusk", "texture;warm"),
    ("launch-glow.jpg", "rocket.jpg", (0.1, 0.3, 0.9, 1.0), "golden", 5, 8, 35, "2024-02-10T18:00:00Z", "launch glow", "golden hour;film"),
    ("night-launch.jpg", "rocket.jpg", (0, 0, 1, 1), "noir", 7, 10, 50, "2024-06-20T23:00:00Z", "night launch", "moody;blue hour;noir"),
    ("deep-field.jpg", "hubble_deep_field.jpg", (0, 0, 1, 1), "noir", 4, 6, 30, "2024-05-28T22:00:00Z", "deep field", "moody;night;cool"),
    ("wet-brick.jpg", "brick.png", (0.3, 0.3, 1, 1), "noir", 2, 2, 10, "2024-01-05T21:00:00Z", "rain on brick", "noir;moody;texture"),
    ("cold-cat.jpg", "chelsea.png", (0.0, 0.0, 0.7, 0.8), "noir", 3, 4, 18, "2024-04-22T20:00:00Z", "cat in blue light", "blue hour;moody;portrait"),
    ("night-grass.jpg", "grass.png", (0.2, 0.0, 0.9, 0.7), "noir", 1, 2, 8, "2023-12-12T23:30:00Z", "frost at night", "cool;noir;nature"),
]


def main(src: Path) -> None:
    board = OUT / "board"
    board.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rows = []
    for file, source, box, look, saves, clicks, dwell, when, title, tags in PINS:
        img = _crop(_load(src, source), box)
        out = golden_film(img, rng) if look == "golden" else blue_noir(img, rng)
        Image.fromarray((out * 255 + 0.5).astype(np.uint8)).save(board / file, quality=88)
        rows.append(
            {"image": file, "saves": saves, "clicks": clicks, "dwell_seconds": dwell, "pinned_at": when,
             "title": title, "tags": tags}
        )
    with open(board / "pins.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    selfie = Image.open(src / "astronaut.png").convert("RGB")
    selfie.save(OUT / "selfie.jpg", quality=92)
    print(f"wrote {len(rows)} pins to {board} and the selfie to {OUT / 'selfie.jpg'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
