"""The HTTP service: ``create_app(settings)`` builds a FastAPI app (``tastemaker serve`` runs it).

Importing this package is cheap; FastAPI and the store load when an app is created, so the CLI stays
fast and the core install (without the ``[server]`` extra) can still import ``tastemaker.cli.serve``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .settings import ServerSettings


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment). See :mod:`tastemaker.api.app`."""
    from .app import create_app as _create_app

    return _create_app(settings)


__all__ = ["create_app"]
