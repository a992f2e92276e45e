"""Tiny randomly-initialised models with the real classes, written to disk in the real layouts.

Tests, ``bench/diffusion.py --quick`` and ``tastemaker diffusion-tiny`` use these so every loading and
conditioning code path runs on a CPU in seconds, with no download: a Stable-Diffusion-layout pipeline
directory (UNet, VAE, CLIP text encoder, a byte-level CLIP tokenizer, Euler scheduler with "trailing"
spacing as SD-Turbo ships it), a CLIP vision model with projection (the board's style encoder) and a
StyleEmbed adapter. The weights are random, so the pictures are noise; the shapes, files and code paths
are the ones real weights go through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict


class TinyTransformer(TypedDict):
    """The depth and width both tiny CLIP towers (text and vision) share: small enough to build in a second."""

    intermediate_size: int
    num_attention_heads: int
    num_hidden_layers: int


TINY_TRANSFORMER = TinyTransformer(intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)


@dataclass(frozen=True)
class TinyPaths:
    """Where :func:`build_tiny_models` put each part."""

    base: Path
    image_encoder: Path
    styleembed: Path


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: every byte gets a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


def write_tiny_tokenizer(folder: Path, max_length: int = 77) -> int:
    """A byte-level CLIP tokenizer with no merges (every byte is a token); returns the vocabulary size."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length)
    for name in ("vocab.json", "merges.txt"):
        (folder / name).unlink()
    tok.save_pretrained(str(folder))
    return len(vocab)


def build_tiny_models(
    root: Path | str,
    *,
    sample_size: int = 16,
    cross_attention_dim: int = 32,
    style_dim: int = 16,
    seed: int = 0,
    with_styleembed: bool = True,
) -> TinyPaths:
    """Write a tiny SD-layout pipeline, a tiny CLIP vision encoder and a StyleEmbed adapter under ``root``.

    ``sample_size`` is the UNet's latent side; the VAE halves the image side, so pictures are
    ``2 * sample_size`` pixels (32 by default).
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from ._styleembed import StyleEmbed, StyleEmbedConfig

    root = Path(root)
    base = root / "base"
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        sample_size=2 * sample_size,
    )
    tok_dir = root / "_tokenizer"
    vocab_size = write_tiny_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=cross_attention_dim,
            vocab_size=vocab_size,
            max_position_embeddings=tokenizer.model_max_length,
            projection_dim=cross_attention_dim,
            **TINY_TRANSFORMER,
        )
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    pipe: Any = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(base), safe_serialization=True)

    image_encoder = root / "image_encoder"
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=style_dim,
            image_size=32,
            patch_size=8,
            **TINY_TRANSFORMER,
        )
    )
    vision.save_pretrained(str(image_encoder), safe_serialization=True)
    (image_encoder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_size": {"height": 32, "width": 32},
                "size": {"shortest_edge": 32},
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
            }
        )
    )

    styleembed = root / "styleembed"
    if with_styleembed:
        cfg = StyleEmbedConfig.for_unet(unet, style_dim=style_dim, style_tokens=2, identity_tokens=2)
        se = StyleEmbed(cfg)
        se.init_from_unet(unet)
        with torch.no_grad():  # a trained adapter's fusion gates are open; make the tiny one's too
            se.fusion.gate_attn.fill_(0.5)
            se.fusion.gate_mlp.fill_(0.5)
        se.save(styleembed)
    return TinyPaths(base=base, image_encoder=image_encoder, styleembed=styleembed)
