"""StyleEmbed: the adapter that turns a board's style prototype and a face embedding into cross-attention tokens.

Shape of the module (all sizes in :class:`StyleEmbedConfig`)::

    style prototype (CLIP image embedding, D_s) ──► ImageProjection ──► K_s tokens ─┐  + type embedding
    identity (dlib 128-d, or any D_i)  ──► IPAdapterFaceIDImageProjection ──► K_i tokens ─┤
                                                                                      ▼
                                  fusion: one pre-norm transformer block over the present tokens,
                                  gated residuals (gates start at 0, so an untrained fusion is the identity)
                                                                                      │
                          split back ──► style tokens ──► slot 0 ─┐  decoupled cross-attention in every
                                    └──► identity tokens ► slot 1 ─┤  UNet cross-attention layer, through
                                                                   ▼  diffusers' IPAdapterAttnProcessor2_0:
                                 out = Attn(q, text) + style_scale·Attn(q, K_s) + identity_scale·Attn(q, K_i)

The two projections are diffusers' own IP-Adapter classes (``ImageProjection`` as in IP-Adapter,
``IPAdapterFaceIDImageProjection`` as in IP-Adapter-FaceID, which accepts dlib's 128-d vector). The per-layer
``to_k_ip`` / ``to_v_ip`` projections of both slots belong to this module and are *shared* with the attention
processors installed into the UNet, so ``StyleEmbed.parameters()`` is exactly what training updates and what
:meth:`StyleEmbed.save` writes (``styleembed.safetensors`` + ``styleembed.json``).

Why fuse: the identity tokens see the style tokens (and vice versa), so the face can be described *in* the
board's light and palette instead of being pasted in neutral. Why gates and presence: a group whose scale is 0
is left out of the fusion entirely and its attention is skipped, so ``style_scale = 0`` is exactly "no style
adapter" and ``style_scale = identity_scale = 0`` is exactly the base model.

A public IP-Adapter file (``ip-adapter_sd15.safetensors`` / ``.bin`` layout: ``image_proj.*`` and
``ip_adapter.{1,3,5..}.to_{k,v}_ip.weight``) can seed the style slot (:meth:`StyleEmbed.from_ip_adapter`);
the identity slot then starts from the UNet's own text key/value weights (the IP-Adapter recipe) and is learnt
with ``tastemaker train-styleembed``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0
from diffusers.models.embeddings import ImageProjection, IPAdapterFaceIDImageProjection, MultiIPAdapterImageProjection
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ._errors import ModelFilesError

KIND = "tastemaker.styleembed"
FORMAT_VERSION = 1
CONFIG_NAME = "styleembed.json"
WEIGHTS_NAME = "styleembed.safetensors"
SLOTS = ("style", "identity")


class StyleEmbedConfig(BaseModel):
    """Sizes of a StyleEmbed adapter and the UNet layers it plugs into (saved as ``styleembed.json``)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = KIND
    format_version: int = FORMAT_VERSION
    style_dim: int = Field(ge=1, description="CLIP image-embedding size (the vision model's projection_dim)")
    identity_dim: int = Field(128, ge=1, description="face-embedding size: 128 for dlib")
    identity_encoder: str = "dlib-resnet-v1"
    cross_attention_dim: int = Field(ge=1)
    style_tokens: int = Field(4, ge=1)
    identity_tokens: int = Field(4, ge=0, description="0: a style-only adapter")
    identity_mult: int = Field(2, ge=1)
    fusion_heads: int = Field(4, ge=1)
    #: cross-attention processor name -> hidden size, in the UNet's processor order
    layers: dict[str, int]

    @classmethod
    def for_unet(cls, unet: Any, **kwargs: Any) -> StyleEmbedConfig:
        """A config whose layers are ``unet``'s cross-attention layers."""
        return cls(cross_attention_dim=_cross_attention_dim(unet), layers=cross_attention_layers(unet), **kwargs)


def _cross_attention_dim(unet: Any) -> int:
    dim = unet.config.cross_attention_dim
    if isinstance(dim, list | tuple):  # per-block dims exist in diffusers; IP-Adapter needs one
        if len(set(dim)) != 1:
            raise ModelFilesError(f"the UNet has several cross-attention sizes {dim}; StyleEmbed needs one")
        dim = dim[0]
    return int(dim)


def cross_attention_layers(unet: Any) -> dict[str, int]:
    """The UNet's cross-attention processors and their hidden sizes (the rule diffusers' IP-Adapter loader uses)."""
    channels = list(unet.config.block_out_channels)
    out: dict[str, int] = {}
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or "motion_modules" in name:
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        out[name] = hidden
    return out


class TokenFusion(nn.Module):
    """One pre-norm transformer block over the style and identity tokens, with zero-initialised gates."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.gate_attn = nn.Parameter(torch.zeros(1))
        self.gate_mlp = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.gate_attn * self.attn(h, h, h, need_weights=False)[0]
        return x + self.gate_mlp * self.mlp(self.norm2(x))


class StyleEmbed(nn.Module):
    """Style prototype + identity vector -> style and identity cross-attention tokens (see the module doc)."""

    def __init__(self, config: StyleEmbedConfig) -> None:
        super().__init__()
        c = config
        if c.cross_attention_dim % c.fusion_heads:
            raise ModelFilesError(
                f"StyleEmbed fusion_heads {c.fusion_heads} must divide cross_attention_dim {c.cross_attention_dim}"
            )
        self.config = c
        self.style_proj = ImageProjection(c.style_dim, c.cross_attention_dim, c.style_tokens)
        self.identity_proj = (
            IPAdapterFaceIDImageProjection(c.identity_dim, c.cross_attention_dim, c.identity_mult, c.identity_tokens)
            if c.identity_tokens
            else None
        )
        self.type_embed = nn.Parameter(torch.zeros(len(SLOTS), c.cross_attention_dim))
        self.fusion = TokenFusion(c.cross_attention_dim, c.fusion_heads)
        n_slots = self.n_slots
        self.to_k = nn.ModuleList(
            nn.ModuleList(nn.Linear(c.cross_attention_dim, h, bias=False) for _ in range(n_slots))
            for h in c.layers.values()
        )
        self.to_v = nn.ModuleList(
            nn.ModuleList(nn.Linear(c.cross_attention_dim, h, bias=False) for _ in range(n_slots))
            for h in c.layers.values()
        )

    def kv(self, layer: int) -> tuple[nn.ModuleList, nn.ModuleList]:
        """The per-slot key and value projections of cross-attention layer ``layer``."""
        return cast(nn.ModuleList, self.to_k[layer]), cast(nn.ModuleList, self.to_v[layer])

    @property
    def n_slots(self) -> int:
        return 2 if self.config.identity_tokens else 1

    # ------------------------------------------------------------------ tokens
    def forward(
        self, style: torch.Tensor | None, identity: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Tokens for the present inputs (B, K, C); an absent input (None) gives None and takes no part."""
        groups: list[torch.Tensor] = []
        if style is not None:
            groups.append(self.style_proj(style) + self.type_embed[0])
        if identity is not None:
            if self.identity_proj is None:
                raise ModelFilesError("this StyleEmbed adapter is style-only (identity_tokens = 0)")
            groups.append(self.identity_proj(identity.to(self.type_embed.dtype)) + self.type_embed[1])
        if not groups:
            return None, None
        fused = self.fusion(torch.cat(groups, dim=1))
        s_tok = fused[:, : self.config.style_tokens] if style is not None else None
        i_tok = fused[:, fused.shape[1] - self.config.identity_tokens :] if identity is not None else None
        return s_tok, i_tok

    def slot_embeds(
        self, style: torch.Tensor | None, identity: torch.Tensor | None, batch: int
    ) -> list[torch.Tensor]:
        """What the pipeline's ``ip_adapter_image_embeds`` takes: per slot (B, 1, K, C); absent slots are zeros
        (their scale is 0, so the processor skips them)."""
        s_tok, i_tok = self(style, identity)
        dtype, device = self.type_embed.dtype, self.type_embed.device
        c = self.config
        out = [s_tok if s_tok is not None else torch.zeros(batch, c.style_tokens, c.cross_attention_dim)]
        if self.n_slots == 2:
            out.append(i_tok if i_tok is not None else torch.zeros(batch, c.identity_tokens, c.cross_attention_dim))
        return [t.to(device=device, dtype=dtype).unsqueeze(1) for t in out]

    # ------------------------------------------------------------------ UNet plumbing
    def check_unet(self, unet: Any) -> None:
        """Refuse a UNet whose cross-attention layers differ from the ones this adapter was made for."""
        have = cross_attention_layers(unet)
        if _cross_attention_dim(unet) != self.config.cross_attention_dim or have != self.config.layers:
            missing = [k for k in self.config.layers if have.get(k) != self.config.layers[k]]
            raise ModelFilesError(
                "this StyleEmbed adapter was made for another base model: "
                f"cross_attention_dim {self.config.cross_attention_dim} vs the UNet's {_cross_attention_dim(unet)}, "
                f"{len(missing)} layer(s) differ (first: {missing[:1]}); train one for this base with "
                "`tastemaker train-styleembed`"
            )

    def install(self, unet: Any) -> None:
        """Put IP-Adapter attention processors sharing this module's key/value projections into ``unet``.

        Mirrors diffusers' ``UNet2DConditionLoadersMixin._load_ip_adapter_weights``; the image projections are
        identities because the tokens are made by :meth:`forward` (both slots need both inputs to fuse).
        """
        self.check_unet(unet)
        names = list(self.config.layers)
        tokens = [self.config.style_tokens, self.config.identity_tokens][: self.n_slots]
        procs: dict[str, Any] = {}
        for name, proc in unet.attn_processors.items():
            if name not in self.config.layers:
                procs[name] = proc
                continue
            i = names.index(name)
            cls = IPAdapterAttnProcessor2_0 if hasattr(torch.nn.functional, "scaled_dot_product_attention") else (
                IPAdapterAttnProcessor
            )
            new = cls(self.config.layers[name], self.config.cross_attention_dim, num_tokens=tokens, scale=1.0)
            new.to_k_ip = self.kv(i)[0]
            new.to_v_ip = self.kv(i)[1]
            procs[name] = new
        unet.set_attn_processor(procs)
        unet.encoder_hid_proj = MultiIPAdapterImageProjection([nn.Identity() for _ in tokens])
        unet.config.encoder_hid_dim_type = "ip_image_proj"

    @staticmethod
    def set_scales(unet: Any, style: float, identity: float) -> None:
        """Per-slot attention scales in every installed processor (0 skips the slot exactly)."""
        for proc in unet.attn_processors.values():
            if _is_ip(proc):
                proc.scale = [float(style), float(identity)][: len(proc.scale)]

    def init_from_unet(self, unet: Any) -> None:
        """Start every slot's key/value projections from the layer's text key/value weights (IP-Adapter's init)."""
        self.check_unet(unet)
        modules = dict(unet.named_modules())
        with torch.no_grad():
            for i, name in enumerate(self.config.layers):
                attn = modules[name[: -len(".processor")]]
                to_k, to_v = self.kv(i)
                for s in range(self.n_slots):
                    _linear(to_k[s]).weight.copy_(attn.to_k.weight)
                    _linear(to_v[s]).weight.copy_(attn.to_v.weight)

    @classmethod
    def from_ip_adapter(
        cls, path: Path | str, unet: Any, *, identity_tokens: int = 4, identity_dim: int = 128, **kwargs: Any
    ) -> StyleEmbed:
        """Seed the style slot from a public IP-Adapter weights file (plain ``image_proj`` layout)."""
        sd = load_ip_adapter_file(path)
        proj, attn = sd["image_proj"], sd["ip_adapter"]
        if "proj.weight" not in proj:
            raise ModelFilesError(
                f"{path}: only plain IP-Adapter files (image_proj.proj.weight, 4 tokens) can seed the style slot; "
                f"found image_proj keys {sorted(proj)[:4]}"
            )
        layers = cross_attention_layers(unet)
        cad = _cross_attention_dim(unet)
        tokens = proj["proj.weight"].shape[0] // cad
        cfg = StyleEmbedConfig(
            style_dim=int(proj["proj.weight"].shape[1]),
            identity_dim=identity_dim,
            cross_attention_dim=cad,
            style_tokens=tokens,
            identity_tokens=identity_tokens,
            layers=layers,
            **kwargs,
        )
        se = cls(cfg)
        se.init_from_unet(unet)
        with torch.no_grad():
            se.style_proj.image_embeds.weight.copy_(proj["proj.weight"])
            se.style_proj.image_embeds.bias.copy_(proj["proj.bias"])
            se.style_proj.norm.weight.copy_(proj["norm.weight"])
            se.style_proj.norm.bias.copy_(proj["norm.bias"])
            for i in range(len(layers)):
                key = 1 + 2 * i  # diffusers' numbering of cross-attention layers in IP-Adapter files
                try:
                    _linear(se.kv(i)[0][0]).weight.copy_(attn[f"{key}.to_k_ip.weight"])
                    _linear(se.kv(i)[1][0]).weight.copy_(attn[f"{key}.to_v_ip.weight"])
                except KeyError as exc:
                    raise ModelFilesError(f"{path}: no {exc.args[0]}; the file is for another base model") from None
                except RuntimeError as exc:
                    raise ModelFilesError(f"{path}: layer {key} has the wrong shape for this base model") from exc
        return se

    # ------------------------------------------------------------------ files
    def save(self, folder: Path | str) -> Path:
        """Write ``styleembed.json`` and ``styleembed.safetensors`` into ``folder`` (atomically each)."""
        from safetensors.torch import save_file

        from ...media import write_atomic

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        tmp = out / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"kind": KIND, "format_version": str(FORMAT_VERSION)})
        tmp.replace(out / WEIGHTS_NAME)
        write_atomic(out / CONFIG_NAME, (self.config.model_dump_json(indent=1) + "\n").encode())
        return out

    @classmethod
    def load(cls, folder: Path | str, *, device: str | torch.device = "cpu") -> StyleEmbed:
        """Read an adapter written by :meth:`save`; every problem names the file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(folder)
        cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise ModelFilesError(f"StyleEmbed file {p} not found (an adapter folder holds {CONFIG_NAME} and "
                                      f"{WEIGHTS_NAME}; make one with `tastemaker train-styleembed`)")
        try:
            raw = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFilesError(f"{cfg_path}: not readable JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("kind") != KIND:
            raise ModelFilesError(f"{cfg_path}: not a StyleEmbed config (expected \"kind\": \"{KIND}\")")
        if raw.get("format_version") != FORMAT_VERSION:
            raise ModelFilesError(f"{cfg_path}: format_version {raw.get('format_version')!r}; this Tastemaker "
                                  f"reads {FORMAT_VERSION}")
        try:
            cfg = StyleEmbedConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ModelFilesError(f"{cfg_path}: invalid at {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
        module = cls(cfg)
        try:
            state = load_file(str(w_path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ModelFilesError(f"{w_path}: not a readable safetensors file ({exc})") from exc
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0]
            raise ModelFilesError(f"{w_path}: weights do not match {cfg_path.name} ({reason})") from exc
        return module.to(device)


def _linear(module: nn.Module) -> nn.Linear:
    return cast(nn.Linear, module)


def _is_ip(proc: Any) -> bool:
    return isinstance(proc, IPAdapterAttnProcessor | IPAdapterAttnProcessor2_0)


def load_ip_adapter_file(path: Path | str) -> dict[str, dict[str, torch.Tensor]]:
    """A public IP-Adapter weights file as ``{"image_proj": {...}, "ip_adapter": {...}}`` (safetensors or .bin)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFilesError(f"IP-Adapter weights file {p} not found")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            flat = load_file(str(p), device="cpu")
            out: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
            for key, value in flat.items():
                head, _, rest = key.partition(".")
                if head in out:
                    out[head][rest] = value
        else:
            out = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file; say which
        raise ModelFilesError(f"{p}: not a readable IP-Adapter weights file ({exc})") from exc
    if not isinstance(out, dict) or not out.get("image_proj") or not out.get("ip_adapter"):
        raise ModelFilesError(f"{p}: not an IP-Adapter file (needs image_proj.* and ip_adapter.* weights)")
    return out
