"""How to run an evaluation: :class:`EvalConfig` (what ``tastemaker eval``'s options become)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engines.base import GenerationRequest, request_error
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from . import metrics as M
from .baselines import BUILTIN, resolve_baselines


class EvalConfig(BaseModel):
    """How to run an evaluation. Invalid values raise :class:`~tastemaker.errors.RequestError`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(4, ge=1, le=8, description="variations per request")
    size: int = Field(512, ge=256, le=2048, description="longest side of each output")
    aspect: str = "4:5"
    format: str = "png"
    seed: int = Field(0, ge=0, lt=2**63)
    strength: float = Field(0.8, ge=0.0, le=1.0)
    prompt: str = ""
    engine: str = "look"
    baselines: tuple[str, ...] = BUILTIN
    identity_threshold: float = Field(0.35, gt=0, le=1.0, description="the engine's identity guard")
    guard_workers: int = Field(0, ge=0, le=16)
    verify_threshold: float = Field(M.VERIFY_THRESHOLD, gt=0, le=2.0)
    attribution_k: int = Field(3, ge=1, le=50)
    near_duplicate_delta_e: float = Field(M.NEAR_DUPLICATE_DELTA_E, ge=0)
    selfies_per_person: int = Field(1, ge=1, le=20)
    clip_model: Path | None = None
    arcface_model: Path | None = None
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    max_image_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def create(cls, **kwargs: Any) -> EvalConfig:
        """Build from loose input (CLI), resolving ``baselines`` ("all", "a,b") and checking the request."""
        if "baselines" in kwargs and kwargs["baselines"] is not None:
            kwargs["baselines"] = tuple(resolve_baselines(kwargs["baselines"]))
        try:
            cfg = cls(**{k: v for k, v in kwargs.items() if v is not None})
        except ValidationError as exc:
            raise request_error(exc) from None
        cfg.request()  # n, size, aspect, format checked the way generate() checks them
        return cfg

    def request(self) -> GenerationRequest:
        return GenerationRequest.create(
            n=self.n, size=self.size, aspect=self.aspect, format=self.format, seed=self.seed,
            strength=self.strength, prompt=self.prompt,
        )
