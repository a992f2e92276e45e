"""Settings of the diffusion engine (``TASTEMAKER_DIFFUSION_*`` environment variables).

``create_engine("diffusion")`` (and so ``tastemaker generate --engine diffusion``) builds the engine from
these; explicit keyword arguments win. Kept beside the engine so the core settings stay torch-free; the fields
can move into ``config.Settings`` unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DiffusionSettings(BaseSettings):
    """Where the weights are and how to run them. Paths are local folders/files; nothing is downloaded."""

    model_config = SettingsConfigDict(env_prefix="TASTEMAKER_DIFFUSION_", extra="ignore")

    #: a diffusers text-to-image pipeline folder (model_index.json), e.g. SD-Turbo or SDXL-Turbo
    base: Path | None = None
    #: a transformers CLIPVisionModelWithProjection folder; default: BASE/image_encoder when it exists
    image_encoder: Path | None = None
    #: a StyleEmbed adapter folder (styleembed.json + styleembed.safetensors)
    styleembed: Path | None = None
    #: a public IP-Adapter weights file, used for the style slot when no StyleEmbed adapter is given
    ip_adapter: Path | None = None
    #: pin embeddings for profile-only generation (``tastemaker clip-embed``)
    clip_embeddings: Path | None = None
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    steps: int = Field(2, ge=1, le=100)
    guidance_scale: float = Field(0.0, ge=0.0)
    style_scale: float = Field(0.8, ge=0.0)
    identity_scale: float = Field(0.6, ge=0.0)
    hold_identity_scale: float = Field(1.2, ge=0.0)
    img2img: bool = True
    gen_side: int | None = Field(None, ge=16)
    max_batch: int = Field(8, ge=1)
    compile: bool = False
    channels_last: bool = False

    def engine_kwargs(self) -> dict[str, object]:
        return {k: v for k, v in self.model_dump().items() if v is not None}
