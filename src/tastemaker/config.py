"""Settings: the one place that reads the environment (``TASTEMAKER_*`` variables).

Library functions take explicit arguments; the CLI and the service build one ``Settings`` and pass
values down, so nothing reads ``os.environ`` at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where Tastemaker keeps its store, keys and caches unless told otherwise."""
    return Path(user_data_dir("tastemaker", appauthor=False))


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``TASTEMAKER_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TASTEMAKER_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    # Input limits: a decoded image is width*height*3 bytes, so the pixel cap bounds memory.
    max_image_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # Identity: dlib's same-person threshold is 0.6; the guard holds outputs much closer than that.
    identity_threshold: float = 0.35
    min_face_px: int = 80
    # Face descriptors: "numpy" runs dlib's ResNet weights with NumPy/BLAS (~10x faster, same numbers);
    # "dlib" uses dlib's own runner, which holds the GIL, so the guard then embeds in worker processes.
    face_net: Literal["numpy", "dlib"] = "numpy"
    guard_workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1))
    # Taste profile
    recency_half_life_days: float = 180.0
    max_modes: int = 4
    engine: str = "look"
    # Plugins (entry-point group "tastemaker"): "all" installed, "none", "a,b" only these, "-a" all but a;
    # what a raising plugin does: "fail", "skip", or per hook "check_output=fail,describe_output=skip"
    plugins: str = "all"
    plugin_errors: str = ""
    # Differential privacy of taste that leaves the store (taste/privacy.py): epsilon per release, and the
    # budgets composed in zCDP per profile per day and over the profile's life
    privacy_epsilon: float = Field(1.0, gt=0)
    privacy_daily_epsilon: float = Field(4.0, gt=0)
    privacy_lifetime_epsilon: float = Field(10.0, gt=0)
    # Progress bars on stderr: always on a terminal; true shows them elsewhere too (CI logs, `make demo`)
    progress: bool = False
    # C2PA signing: your own certificate chain + key (PEM); unset = a local CA made on first use
    c2pa_chain_pem: Path | None = None
    c2pa_key_pem: Path | None = None
    c2pa_anchor_pem: Path | None = None


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment with explicit overrides on top (used by CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]
