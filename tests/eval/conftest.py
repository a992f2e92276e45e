"""Evaluation fixtures: tiny on-disk datasets made from the demo selfie and two generated boards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer

from tastemaker.eval import BaselineContext, register_baseline, unregister_baseline
from tastemaker.eval.baselines import fit_to
from tastemaker.media import encode_image, load_image

from ..conftest import DATA, DEMO, neon_image


def sepia_image(seed: int, size: int = 256) -> np.ndarray:
    """A synthetic 'faded sepia film' picture: low-chroma browns, soft gradients, heavy grain."""
    rng = np.random.default_rng(1000 + seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 0.35 + 0.3 * (np.sin(6.0 * xx * rng.uniform(0.5, 1.5) + rng.uniform(0, 6)) * 0.5 + 0.5) * (1 - 0.5 * yy)
    base = cv2.GaussianBlur(base, (0, 0), 6)
    grain = rng.normal(0, 0.06, (size, size)).astype(np.float32)
    lum = np.clip(base + grain, 0, 1)
    tint = np.array([1.0, 0.82, 0.62], np.float32)  # warm brown
    return np.clip(lum[..., None] * tint * 235 + 12, 0, 255).astype(np.uint8)


def write_board(folder: Path, images: Sequence[np.ndarray], prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        (folder / f"{prefix}-{i:02d}.png").write_bytes(encode_image(img, "png"))
    return folder


class CheatBaseline:
    """Planted cheat: returns the board's pins themselves — perfect style, nobody's face."""

    name = "cheat"
    description = "returns a board pin (planted to check the harness catches it)"

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        return [fit_to(ctx.board.thumbs[i % len(ctx.board)], f.shape) for i, f in enumerate(framed)]


@pytest.fixture(scope="session")
def cheat() -> Iterator[str]:
    register_baseline("cheat", CheatBaseline)
    yield "cheat"
    unregister_baseline("cheat")


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """selfies/astronaut/{a-selfie.jpg, b-other.jpg, c-noface.png}; boards/{neon,sepia}/ (+ one broken pin)."""
    root = tmp_path_factory.mktemp("evaldata")
    person = root / "selfies" / "astronaut"
    person.mkdir(parents=True)
    (person / "a-selfie.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    # a second photo of the same person that is not the selfie's pixels: mirrored, recropped, re-lit, re-encoded
    img = load_image(DEMO / "selfie.jpg")
    h, w = img.shape[:2]
    other = cv2.resize(img[h // 12 :, : w - w // 10][:, ::-1], None, fx=1.15, fy=1.15, interpolation=cv2.INTER_CUBIC)
    other = np.clip(other.astype(np.float32) * [0.95, 1.0, 1.1] + 8, 0, 255).astype(np.uint8)
    (person / "b-other.jpg").write_bytes(encode_image(np.ascontiguousarray(other), "jpeg", quality=80))
    (person / "c-noface.png").write_bytes(encode_image(neon_image(99), "png"))
    boards = root / "boards"
    write_board(boards / "neon", [neon_image(s) for s in range(6)], "neon")
    write_board(boards / "sepia", [sepia_image(s) for s in range(6)], "sepia")
    (boards / "sepia" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (boards / "stray.png").write_bytes(encode_image(neon_image(7), "png"))
    return {"root": root, "selfies": root / "selfies", "boards": boards}


@pytest.fixture(scope="session")
def hopper_path() -> Path:
    return DATA / "grace_hopper.jpg"


def make_app() -> typer.Typer:
    """A Typer app with ``eval`` registered the way ``tastemaker.cli.app`` registers it."""
    from tastemaker.cli.eval import register

    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _main() -> None:
        """test app"""

    register(app)
    return app
