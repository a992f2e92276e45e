"""The ``tastemaker`` command line: :data:`app` (the Typer app) and :func:`main` (the console script)."""

from .app import app, main

__all__ = ["app", "main"]
