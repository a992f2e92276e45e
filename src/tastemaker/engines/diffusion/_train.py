"""Training the StyleEmbed adapter alone on (board, selfie, target image) triples; the base model stays frozen.

Data folder (``--data DIR``): ``examples.jsonl``, one triple per line, paths relative to ``DIR``::

    {"board": "boards/ana", "identity": "ids/ana.json", "target": "targets/ana-01.jpg", "prompt": "on a pier"}
    {"board": "boards/ben", "selfie": "selfies/ben.jpg", "target": "targets/ben-07.jpg"}

``board`` is a board folder (images + optional pins.csv, as everywhere in Tastemaker); its style input is the
engagement-weighted CLIP prototype of all its pins (same formula as a mode's prototype). ``identity`` is an
identity file from ``tastemaker identity`` (the face never has to be shared as pixels), or ``selfie`` a photo
encoded with dlib here. ``target`` is the picture the person wants: that person, in that board's look.

Everything frozen is computed once up front (CLIP prototypes, identity vectors, the targets' VAE latents —
the posterior mean, so it is deterministic — and the prompt embeddings). Each step then draws a batch, a
timestep and noise from one seeded ``torch.Generator`` and minimises the standard denoising loss (epsilon or
v target, following the base's scheduler) with AdamW over ``StyleEmbed.parameters()`` only. With probability
``drop_prob`` a step drops the style or the identity input, so each works alone (and scale 0 stays meaningful).

Checkpoints (``OUT/checkpoint-000250/``: the adapter files + ``trainer_state.pt`` with the optimizer, grad
scaler, generator state, step and losses) make ``--resume`` continue exactly where it stopped: same batches,
same noise, same weights as an uninterrupted run. On CUDA the frozen base runs in fp16/bf16 under autocast
while the adapter's weights and optimizer stay fp32 (fp16 with a gradient scaler).

Training needs a single-text-encoder base (SD 1.x / 2.x, SD-Turbo); SDXL's two encoders and added conditions
are not wired here yet.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ...errors import InputError, RequestError
from ._engine import load_base_pipeline, resolve_device
from ._errors import ModelFilesError
from ._styleembed import StyleEmbed, StyleEmbedConfig

STATE_NAME = "trainer_state.pt"
Progress = Callable[[int, int, float], None]


class TrainConfig(BaseModel):
    """Everything one training run depends on (written next to the adapter as ``train_config.json``)."""

    model_config = ConfigDict(extra="forbid")

    base: Path
    data: Path
    out: Path
    image_encoder: Path | None = None
    #: a StyleEmbed folder or an IP-Adapter file to start from; default: a fresh adapter for this base
    init: Path | None = None
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    resolution: int | None = Field(None, ge=16)
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    seed: int = 0
    drop_prob: float = Field(0.1, ge=0, le=1)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    device: str = "auto"
    style_tokens: int = Field(4, ge=1)
    identity_tokens: int = Field(4, ge=1)


@dataclass
class TrainResult:
    out: Path
    step: int
    losses: list[float] = field(default_factory=list)
    eval_before: float = float("nan")
    eval_after: float = float("nan")


@dataclass
class _Data:
    style: torch.Tensor  # (N, D_s)
    identity: torch.Tensor  # (N, D_i)
    latents: torch.Tensor  # (N, 4, h, w)
    text: torch.Tensor  # (N, L, C)


def _read_examples(data: Path) -> list[dict[str, Any]]:
    path = data / "examples.jsonl"
    if not path.is_file():
        raise InputError(f"training data file {path} not found (one JSON triple per line; see train-styleembed --help)")
    rows = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name}, line {no}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or "board" not in row or "target" not in row or not (
            "identity" in row or "selfie" in row
        ):
            raise InputError(f"{path.name}, line {no}: needs \"board\", \"target\" and \"identity\" or \"selfie\"")
        rows.append(row)
    if not rows:
        raise InputError(f"{path} holds no examples")
    return rows


def _board_prototype(folder: Path, encoder: Any) -> np.ndarray:
    from ...boards import load_board
    from ...taste.weights import pin_weights

    board = load_board(folder)
    w = np.asarray(pin_weights(board.pins), np.float64)
    e = encoder.embed(board.thumbs).astype(np.float64)
    w = w / w.sum()
    proto = w @ e
    scale = float(w @ np.linalg.norm(e, axis=1)) / max(float(np.linalg.norm(proto)), 1e-12)
    return (proto * scale).astype(np.float32)


def _identity(row: dict[str, Any], data: Path) -> np.ndarray:
    from ...encoders.identity import IdentityEmbedding, IdentityEncoder
    from ...media import load_image

    if "identity" in row:
        p = data / row["identity"]
        try:
            return np.asarray(IdentityEmbedding.from_dict(json.loads(p.read_text())).vector, np.float32)
        except FileNotFoundError:
            raise InputError(f"identity file {p} not found") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: not JSON ({exc.msg})") from exc
    _, vec = IdentityEncoder().embed(load_image(data / row["selfie"]), name=str(row["selfie"]))
    return np.asarray(vec, np.float32)


def _target(path: Path, side: int) -> np.ndarray:
    """Centre-cropped square at ``side`` px, float in [-1, 1], CHW."""
    from PIL import Image

    from ...media import load_image

    img = load_image(path)
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    arr = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BICUBIC), np.float32)
    return (arr / 127.5 - 1.0).transpose(2, 0, 1)


def _prepare(cfg: TrainConfig, pipe: Any, device: str, dtype: torch.dtype, side: int) -> _Data:
    from ._clip import ClipStyleEncoder

    enc_dir = cfg.image_encoder or cfg.base / "image_encoder"
    encoder = ClipStyleEncoder(enc_dir, device=device)
    rows = _read_examples(cfg.data)
    protos: dict[str, np.ndarray] = {}
    style, ident, targets, prompts = [], [], [], []
    for row in rows:
        b = str(row["board"])
        if b not in protos:
            protos[b] = _board_prototype(cfg.data / b, encoder)
        style.append(protos[b])
        ident.append(_identity(row, cfg.data))
        targets.append(_target(cfg.data / row["target"], side))
        prompts.append(str(row.get("prompt", "a photo of a person")))
    with torch.no_grad():
        x = torch.from_numpy(np.stack(targets)).to(device, dtype)
        lat = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
        text = pipe.text_encoder(ids)[0]
    return _Data(
        style=torch.from_numpy(np.stack(style)).to(device),
        identity=torch.from_numpy(np.stack(ident)).to(device),
        latents=lat.float(),
        text=text.float(),
    )


def _loss(
    adapter: StyleEmbed, unet: Any, sched: Any, data: _Data, idx: torch.Tensor, noise: torch.Tensor,
    t: torch.Tensor, drop: tuple[bool, bool], autocast: Any,
) -> torch.Tensor:
    lat = data.latents[idx]
    noisy = sched.add_noise(lat, noise, t)
    style = None if drop[0] else data.style[idx]
    ident = None if drop[1] else data.identity[idx]
    with autocast:
        embeds = adapter.slot_embeds(style, ident, len(idx))
        pred = unet(noisy.to(unet.dtype), t, encoder_hidden_states=data.text[idx].to(unet.dtype),
                    added_cond_kwargs={"image_embeds": embeds}).sample
    target = sched.get_velocity(lat, noise, t) if sched.config.prediction_type == "v_prediction" else noise
    return torch.nn.functional.mse_loss(pred.float(), target.float())


def evaluate(adapter: StyleEmbed, unet: Any, sched: Any, data: _Data, *, seed: int = 1234, draws: int = 4) -> float:
    """Mean denoising loss over every example at fixed timesteps and noise: comparable across training."""
    g = torch.Generator("cpu").manual_seed(seed)
    n = data.latents.shape[0]
    total = 0.0
    for _ in range(draws):
        noise = torch.randn(data.latents.shape, generator=g).to(data.latents.device)
        t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=g).to(data.latents.device)
        with torch.no_grad():
            total += float(_loss(adapter, unet, sched, data, torch.arange(n, device=data.latents.device), noise, t,
                                 (False, False), torch.autocast("cpu", enabled=False)))
    return total / draws


def _checkpoints(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("checkpoint-*") if (p / STATE_NAME).is_file())


def train_styleembed(cfg: TrainConfig, *, resume: Path | str | None = None, progress: Progress | None = None
                     ) -> TrainResult:
    """Train (or resume training) a StyleEmbed adapter; returns where it was written and the losses.

    ``resume``: a checkpoint folder, or ``"latest"`` for the newest one under ``cfg.out``.
    """
    from diffusers import DDPMScheduler

    device = resolve_device(cfg.device)
    cuda = device.startswith("cuda")
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if cuda and torch.cuda.is_bf16_supported()
                                                               else "fp16" if cuda else "fp32")
    if precision != "fp32" and not cuda:
        raise RequestError(f"precision {precision} needs a CUDA device; use fp32 on {device}")
    base_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    pipe = load_base_pipeline(cfg.base, dtype=base_dtype, device=device)
    if getattr(pipe, "text_encoder_2", None) is not None:
        raise RequestError("train-styleembed supports single-text-encoder bases (SD 1.x/2.x, SD-Turbo) for now")
    unet = pipe.unet
    for module in (unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
        module.eval()
    side = cfg.resolution or int(unet.config.sample_size) * int(pipe.vae_scale_factor)

    start_dir: Path | None = None
    if resume is not None:
        if str(resume) == "latest":
            found = _checkpoints(cfg.out)
            if not found:
                raise ModelFilesError(f"no checkpoint to resume under {cfg.out} (looked for checkpoint-*/{STATE_NAME})")
            start_dir = found[-1]
        else:
            start_dir = Path(resume)
            if not (start_dir / STATE_NAME).is_file():
                raise ModelFilesError(f"checkpoint file {start_dir / STATE_NAME} not found")
    if start_dir is not None:
        adapter = StyleEmbed.load(start_dir)
    elif cfg.init is not None and cfg.init.is_dir():
        adapter = StyleEmbed.load(cfg.init)
    elif cfg.init is not None:
        adapter = StyleEmbed.from_ip_adapter(cfg.init, unet, identity_tokens=cfg.identity_tokens)
    else:
        from ._clip import ClipStyleEncoder

        enc = ClipStyleEncoder(cfg.image_encoder or cfg.base / "image_encoder", device="cpu")
        with torch.random.fork_rng(devices=[]):  # a fresh adapter's random init follows the run's seed
            torch.manual_seed(cfg.seed)
            adapter = StyleEmbed(StyleEmbedConfig.for_unet(
                unet, style_dim=enc.dim, style_tokens=cfg.style_tokens, identity_tokens=cfg.identity_tokens
            ))
        adapter.init_from_unet(unet)
    if adapter.n_slots != 2:
        raise RequestError("the adapter to train has no identity slot (identity_tokens = 0)")
    adapter.to(device=device, dtype=torch.float32)
    adapter.install(unet)
    adapter.requires_grad_(True)
    adapter.train()
    StyleEmbed.set_scales(unet, 1.0, 1.0)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    sched.alphas_cumprod = sched.alphas_cumprod.to(device)

    data = _prepare(cfg, pipe, device, base_dtype, side)
    if data.style.shape[1] != adapter.config.style_dim:
        raise RequestError(f"the image encoder gives {data.style.shape[1]}-d embeddings; the adapter takes "
                           f"{adapter.config.style_dim}-d")
    opt = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    gen = torch.Generator("cpu").manual_seed(cfg.seed)
    step, losses = 0, []
    if start_dir is not None:
        state = torch.load(start_dir / STATE_NAME, map_location="cpu", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        step, losses = int(state["step"]), [float(v) for v in state["losses"]]
    autocast = torch.autocast("cuda", dtype=base_dtype, enabled=precision != "fp32") if cuda else (
        torch.autocast("cpu", enabled=False)
    )

    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "train_config.json").write_text(cfg.model_dump_json(indent=1) + "\n")
    eval_before = evaluate(adapter, unet, sched, data) if start_dir is None else float("nan")
    n = data.latents.shape[0]
    report = progress or (lambda s, total, loss: None)
    report(step, cfg.steps, losses[-1] if losses else math.nan)
    while step < cfg.steps:
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
        noise = torch.randn((len(idx), *data.latents.shape[1:]), generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(idx),), generator=gen)
        r = torch.rand(2, generator=gen)
        drop = (bool(r[0] < cfg.drop_prob), bool(r[1] < cfg.drop_prob))
        idx, noise, t = idx.to(device), noise.to(device), t.to(device)
        loss = _loss(adapter, unet, sched, data, idx, noise, t, drop, autocast)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        losses.append(float(loss.detach()))
        report(step, cfg.steps, losses[-1])
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(cfg, adapter, opt, scaler, gen, step, losses)
    adapter.eval()
    eval_after = evaluate(adapter, unet, sched, data)
    adapter.save(cfg.out)
    (cfg.out / "train_log.json").write_text(json.dumps(
        {"step": step, "eval_before": eval_before, "eval_after": eval_after, "losses": losses,
         "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
    return TrainResult(out=cfg.out, step=step, losses=losses, eval_before=eval_before, eval_after=eval_after)


def _save_checkpoint(
    cfg: TrainConfig, adapter: StyleEmbed, opt: Any, scaler: Any, gen: torch.Generator, step: int, losses: list[float]
) -> Path:
    ck = cfg.out / f"checkpoint-{step:06d}"
    tmp = cfg.out / f".tmp-checkpoint-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    adapter.save(tmp)
    torch.save({"optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "generator": gen.get_state(),
                "step": step, "losses": losses}, tmp / STATE_NAME)
    shutil.rmtree(ck, ignore_errors=True)
    tmp.replace(ck)
    for old in _checkpoints(cfg.out)[: -cfg.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return ck
