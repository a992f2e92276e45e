"""The default CPU engine (see :mod:`.engine`)."""

from .engine import LookEngine

__all__ = ["LookEngine"]
