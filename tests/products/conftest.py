"""Fixtures for the product tests: synthetic product shots with known masks, a face-free detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tastemaker.products.samples import SampleShot, make_shot


class NoFaces:
    """A face detector that finds none (the synthetic shots have no faces; dlib's detector only adds time)."""

    def detect(self, img: np.ndarray) -> list[object]:
        return []


@pytest.fixture(scope="session")
def plain_shot() -> SampleShot:
    return make_shot(3, size=512, kind="box")


@pytest.fixture
def product_png(tmp_path: Path, plain_shot: SampleShot) -> Path:
    path = tmp_path / "box.png"
    Image.fromarray(plain_shot.image).save(path)
    return path
