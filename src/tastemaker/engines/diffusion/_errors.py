"""The diffusion engine's dependency check; its error class lives in :mod:`tastemaker.errors`."""

from __future__ import annotations

from ...errors import MissingDependencyError, ModelFilesError

__all__ = ["ModelFilesError", "require_diffusion"]


def require_diffusion() -> None:
    """Import-check the ``[diffusion]`` extra; raise :class:`MissingDependencyError` naming the install."""
    import importlib.util

    for module in ("torch", "diffusers", "transformers", "safetensors"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("the diffusion engine", "diffusion", module)
