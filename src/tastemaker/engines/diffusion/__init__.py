"""The ``diffusion`` engine: few-step diffusers generation conditioned on the board and the face.

Layout (everything torch-related is imported lazily, so ``import tastemaker`` never loads torch):

==================  =====================================================================================
``_engine``         :class:`DiffusionEngine` — plan/render behind the common Engine protocol
``_styleembed``     :class:`StyleEmbed` — style prototype + identity -> cross-attention tokens (IP-Adapter slots)
``_clip``           CLIP image embeddings of pins (:class:`PinEmbeddings`) and per-mode prototypes
``_train``          :func:`train_styleembed` — adapter-only training with the denoising loss
``_tiny``           :func:`build_tiny_models` — tiny random models in the real layouts (tests, bench, try-out)
``_settings``       :class:`DiffusionSettings` — ``TASTEMAKER_DIFFUSION_*``
==================  =====================================================================================

Its commands (``tastemaker train-styleembed``, ``clip-embed``, ``diffusion-tiny``) are in
:mod:`tastemaker.cli.diffusion`.

Install with ``pip install 'tastemaker[diffusion]'`` (torch, diffusers, transformers, safetensors, accelerate;
never torchvision). Weights come from local folders; nothing is downloaded at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import ModelFilesError, require_diffusion

if TYPE_CHECKING:
    from ..base import Engine

_LAZY = {
    "DiffusionEngine": "._engine",
    "hold_schedule": "._engine",
    "StyleEmbed": "._styleembed",
    "StyleEmbedConfig": "._styleembed",
    "ClipStyleEncoder": "._clip",
    "PinEmbeddings": "._clip",
    "mode_prototypes": "._clip",
    "TrainConfig": "._train",
    "train_styleembed": "._train",
    "build_tiny_models": "._tiny",
    "DiffusionSettings": "._settings",
}


def create_diffusion_engine(**config: Any) -> Engine:
    """Factory registered as ``"diffusion"``: settings from ``TASTEMAKER_DIFFUSION_*``, keyword arguments win.

    Raises :class:`~tastemaker.errors.MissingDependencyError` (``pip install 'tastemaker[diffusion]'``) when the
    extra is missing, and :class:`~tastemaker.errors.RequestError` when no base model folder is configured.
    """
    require_diffusion()
    from ...errors import RequestError
    from ._engine import DiffusionEngine
    from ._settings import DiffusionSettings

    merged = {**DiffusionSettings().engine_kwargs(), **config}
    if merged.get("base") is None:
        raise RequestError(
            "the diffusion engine needs a base model folder (a diffusers pipeline such as SD-Turbo): "
            "set TASTEMAKER_DIFFUSION_BASE or pass base=..."
        )
    return DiffusionEngine(**merged)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_diffusion()
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "ClipStyleEncoder",
    "DiffusionEngine",
    "DiffusionSettings",
    "ModelFilesError",
    "PinEmbeddings",
    "StyleEmbed",
    "StyleEmbedConfig",
    "TrainConfig",
    "build_tiny_models",
    "create_diffusion_engine",
    "hold_schedule",
    "mode_prototypes",
    "require_diffusion",
    "train_styleembed",
]
