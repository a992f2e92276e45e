"""Tiny diffusion models built once per test process (real classes, saved to disk, loaded by the real code)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REASON = "needs the [diffusion] extra (torch, diffusers, transformers): pip install 'tastemaker[diffusion]'"


def require() -> None:
    """Skip the calling module cleanly when the extra is missing."""
    for mod in ("torch", "diffusers", "transformers", "safetensors"):
        pytest.importorskip(mod, reason=REASON)


@functools.cache
def tiny_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="tastemaker-tiny-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    from tastemaker.engines.diffusion import build_tiny_models

    build_tiny_models(root)
    return root


def tiny_paths() -> Any:
    from tastemaker.engines.diffusion._tiny import TinyPaths

    root = tiny_root()
    return TinyPaths(base=root / "base", image_encoder=root / "image_encoder", styleembed=root / "styleembed")


@functools.cache
def tiny_engine() -> Any:
    """The shared tiny engine (StyleEmbed + CLIP encoder). Tests that change its settings use :func:`settings`."""
    import torch

    from tastemaker.engines.diffusion import DiffusionEngine

    # tiny convolutions are fastest on one thread, and the test workers already use the cores
    torch.set_num_threads(1)
    p = tiny_paths()
    return DiffusionEngine(base=p.base, image_encoder=p.image_encoder, styleembed=p.styleembed, device="cpu")


@contextlib.contextmanager
def settings(engine: Any, **values: Any) -> Iterator[Any]:
    """Temporarily change engine attributes (scales, img2img...)."""
    old = {k: getattr(engine, k) for k in values}
    for k, v in values.items():
        setattr(engine, k, v)
    try:
        yield engine
    finally:
        for k, v in old.items():
            setattr(engine, k, v)
