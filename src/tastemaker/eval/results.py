"""What an evaluation measured (:class:`EvalRun`) and its machine-readable form, ``results.json``."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..taste.profile import TasteProfile
from . import artefacts as Q
from .config import EvalConfig
from .datasets import BoardSet, SelfieSet, Skip
from .descriptors import DESCRIPTOR_NAME
from .scoring import aggregate
from .texture import TEXTURE_DESCRIPTOR_NAME

SCHEMA = "tastemaker.eval"
SCHEMA_VERSION = 1


@dataclass
class EvalRun:
    """Everything one evaluation measured; :meth:`to_dict` is ``results.json``."""

    config: EvalConfig
    engine: str
    engine_version: str
    methods: list[dict[str, str]]
    selfies: SelfieSet
    boards: BoardSet
    profiles: dict[str, TasteProfile]
    images: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    latency_setup: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    #: (person, selfie, board) -> method -> small output images, for the contact sheets
    thumbs: dict[tuple[str, str, str], dict[str, list[np.ndarray]]] = field(default_factory=dict, repr=False)
    #: (person, selfie) -> small selfie image
    selfie_thumbs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    #: board -> {"monochrome": bool, "chroma_range": [lo, hi], "hue_std_deg": ...} (see artefacts.board_chroma)
    board_colour: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: str = ""
    duration_s: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def method_names(self) -> list[str]:
        return [m["name"] for m in self.methods]

    def summary(self) -> dict[str, Any]:
        return {m: aggregate(self.images, self.requests, method=m) for m in self.method_names}

    def per_board(self) -> dict[str, dict[str, Any]]:
        return {
            m: {b.name: aggregate(self.images, self.requests, method=m, board=b.name) for b in self.boards.boards}
            for m in self.method_names
        }

    def per_person(self) -> dict[str, dict[str, Any]]:
        return {
            m: {p.name: aggregate(self.images, self.requests, method=m, person=p.name) for p in self.selfies.people}
            for m in self.method_names
        }

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable results (every number in the report, and more)."""
        people = []
        for p in self.selfies.people:
            used = [ph.name for ph in p.photos[: self.config.selfies_per_person]]
            people.append({"name": p.name, "photos": [ph.name for ph in p.photos], "selfies": used,
                           "held_out": [ph.name for ph in p.photos if ph.name not in used]})
        return _clean({
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "tastemaker_version": __version__,
            "created_at": self.started_at,
            "duration_s": self.duration_s,
            "config": self.config.model_dump(mode="json"),
            "environment": _environment(),
            "engine": {"name": self.engine, "version": self.engine_version},
            "methods": self.methods,
            "descriptors": {
                "attribution": DESCRIPTOR_NAME,
                "texture_attribution": TEXTURE_DESCRIPTOR_NAME,
                "artefacts": {"mirror_threshold": Q.MIRROR_THRESHOLD, "blocky_threshold": Q.BLOCKY_THRESHOLD,
                              "chroma_margin": Q.CHROMA_MARGIN, "hue_margin_deg": Q.HUE_MARGIN_DEG,
                              "hue_mean_tol_deg": Q.HUE_MEAN_TOL_DEG},
                "attribution_k": self.config.attribution_k,
                "style_score": "tastemaker-style v1 (what the engine optimises)",
                "identity": "dlib-resnet-v1, full detection on every output",
            },
            "models": self.models,
            "dataset": {
                "selfies": {"root": str(self.selfies.root), "layout": self.selfies.layout, "people": people},
                "boards": [
                    {"name": b.name, "n_pins": len(b.board), "n_skipped": len(b.board.skipped),
                     "n_modes": len(self.profiles[b.name].modes),
                     "modes": [m.name for m in self.profiles[b.name].modes],
                     **self.board_colour.get(b.name, {})}
                    for b in self.boards.boards
                ],
                "chance_attribution": 1.0 / len(self.boards.boards),
            },
            "skipped": [s.to_dict() for s in self.skipped],
            "errors": self.errors,
            "summary": self.summary(),
            "per_board": self.per_board(),
            "per_person": self.per_person(),
            "latency_setup_ms": self.latency_setup,
            "resources": {"peak_rss_mb": self.peak_rss_mb},
            "requests": self.requests,
            "images": self.images,
        })


# ------------------------------------------------------------------------------------------ runner


def _environment() -> dict[str, Any]:
    import os

    import cv2

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    try:
        import dlib

        env["dlib"] = getattr(dlib, "__version__", None)
    except ImportError:  # pragma: no cover - core dependency
        env["dlib"] = None
    return env


def _clean(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, floats rounded to 6 significant places, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer | int):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return None if not np.isfinite(f) else float(f"{f:.6g}")
    if isinstance(obj, Path):
        return str(obj)
    return obj
