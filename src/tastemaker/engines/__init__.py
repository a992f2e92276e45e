"""Engines by name: ``list_engines()``, ``create_engine(name, **config)``, ``get_engine(name)``.

``get_engine`` is the process's one shared instance of a named engine with its default configuration:
the pipeline and the service use it, so an engine's caches (the look engine's prepared exemplars) and
weights (the diffusion engine's) are built once per process, never per job.

Built-in engines register exactly the way a plugin would: a factory under a name. Third-party
packages can add engines through the ``tastemaker.engines`` entry-point group (the entry point
names a zero-argument-or-kwargs factory returning an :class:`~tastemaker.engines.base.Engine`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..errors import RequestError
from .base import Engine, GenerationRequest, Rendered, Subject, VariationPlan

EngineFactory = Callable[..., Engine]
_REGISTRY: dict[str, EngineFactory] = {}
_PLUGINS_LOADED = False
_SHARED: dict[str, Engine] = {}
_SHARED_LOCK = threading.Lock()


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make ``factory`` available as ``create_engine(name)``."""
    _REGISTRY[name] = factory


def _look(**config: Any) -> Engine:
    from .look import LookEngine

    return LookEngine(**config)


register_engine("look", _look)


def _diffusion(**config: Any) -> Engine:
    from .diffusion import create_diffusion_engine  # torch is imported only when the engine is created

    return create_diffusion_engine(**config)


register_engine("diffusion", _diffusion)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in entry_points(group="tastemaker.engines"):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def list_engines() -> list[str]:
    """Names of all registered engines, sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def create_engine(name: str, **config: Any) -> Engine:
    """Instantiate an engine by name."""
    _load_plugins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise RequestError(f"unknown engine {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**config)


def get_engine(name: str) -> Engine:
    """The shared instance of engine ``name`` in this process (created on first use, then reused)."""
    with _SHARED_LOCK:
        eng = _SHARED.get(name)
        if eng is None:
            eng = create_engine(name)
            _SHARED[name] = eng
        return eng


__all__ = [
    "Engine",
    "GenerationRequest",
    "Rendered",
    "Subject",
    "VariationPlan",
    "create_engine",
    "get_engine",
    "list_engines",
    "register_engine",
]
