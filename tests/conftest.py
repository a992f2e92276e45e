"""Shared fixtures: isolated environment, the demo data, a control board, and helpers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tastemaker.boards import Board, Pin, build_board, load_board
from tastemaker.media import encode_image, load_image
from tastemaker.taste.profile import TasteProfile, build_profile

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "tastemaker" / "data" / "demo"
DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real home or data dir, or sees the developer's TASTEMAKER_* env."""
    import os

    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith("TASTEMAKER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("TASTEMAKER_GUARD_WORKERS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def selfie_path() -> Path:
    return DEMO / "selfie.jpg"


@pytest.fixture(scope="session")
def selfie(selfie_path: Path) -> np.ndarray:
    return load_image(selfie_path)


@pytest.fixture(scope="session")
def hopper() -> np.ndarray:
    return load_image(DATA / "grace_hopper.jpg")


@pytest.fixture(scope="session")
def demo_board() -> Board:
    return load_board(DEMO / "board")


@pytest.fixture(scope="session")
def demo_profile(demo_board: Board) -> TasteProfile:
    return build_profile(demo_board)


def neon_image(seed: int, size: int = 256) -> np.ndarray:
    """A synthetic 'neon pop' picture: saturated magenta/cyan shapes, hard edges, bright, no grain."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    img[:] = rng.choice([[250, 40, 200], [30, 230, 240], [255, 240, 40]])
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(6):
        c = rng.choice([[250, 40, 200], [30, 230, 240], [255, 240, 40], [255, 255, 255]])
        cx, cy, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 10, size / 3)]
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c
    return img.astype(np.uint8)


def make_board(name: str, images: list[np.ndarray], pins: list[Pin] | None = None) -> Board:
    items = []
    for i, img in enumerate(images):
        pin = pins[i] if pins else Pin(image=f"{name}-{i:03d}.png")
        items.append((pin, encode_image(img, "png")))
    return build_board(name, items)


@pytest.fixture(scope="session")
def control_board() -> Board:
    """A board with a look nothing like the demo board's."""
    return make_board("neon", [neon_image(s) for s in range(8)])


@pytest.fixture(scope="session")
def control_profile(control_board: Board) -> TasteProfile:
    return build_profile(control_board)


def jpeg_bytes(img: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **kw)
    return buf.getvalue()
