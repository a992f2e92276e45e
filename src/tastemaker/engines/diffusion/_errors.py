"""Errors of the diffusion engine, in the project's one hierarchy (subclasses of ``errors.InputError``).

::

    InputError
    └── ModelFilesError        exit 2   422 model_files_invalid   (a weights file or folder is missing or wrong)
"""

from __future__ import annotations

from ...errors import InputError, MissingDependencyError


class ModelFilesError(InputError):
    """A model folder or weights file is missing, incomplete, or made for another model; the message names it."""

    code = "model_files_invalid"


def require_diffusion() -> None:
    """Import-check the ``[diffusion]`` extra; raise :class:`MissingDependencyError` naming the install."""
    import importlib.util

    for module in ("torch", "diffusers", "transformers", "safetensors"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("the diffusion engine", "diffusion", module)
