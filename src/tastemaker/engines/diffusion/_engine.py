"""The diffusion engine: a few-step diffusers model drawing the person in the board's aesthetic.

One call of :meth:`DiffusionEngine.render` is one batched pipeline call per face-hold level (the UNet's adapter
scales are per call, not per sample); every image has its own ``torch.Generator`` seeded from its plan, so a
batch of n gives the same pictures as n single calls and the same seed gives the same pixels.

Conditioning of each image:

* **text**: ``base_prompt, <framing words>, <background words>, <the request's prompt>, <the mode's name and
  tags>`` (the look engine's framing/background vocabulary is reused, see ``prompt.py``);
* **style**: the mode's prototype CLIP embedding (``_clip.py``) through the StyleEmbed adapter's style slot;
* **identity**: the person's 128-d dlib embedding through the adapter's FaceID-style identity slot — it may come
  from an identity file made on the user's device, with no selfie pixels at all (text-to-image);
* **img2img** (when the subject has pixels and ``img2img`` is on): the selfie, framed for the variation's shot
  type and aspect with the look engine's face-aware framing, noised to ``denoise`` and redrawn.

Face hold (the identity guard's lever, 0 -> 0.5 -> 0.8 -> 1), see :func:`hold_schedule`:

=================  ================================================================================
identity scale     ``identity_scale + hold * (max(hold_identity_scale, identity_scale) - identity_scale)``
style scale        ``style_scale * (1 - 0.5 * hold)`` (text-to-image: times ``strength`` as well)
img2img denoise    ``max(0.1, strength * (1 - 0.6 * hold))``: less noise, more of the selfie kept
=================  ================================================================================

Outputs are generated at the model's native side (``gen_side``, default UNet sample size x VAE factor, e.g.
512 for SD-Turbo), rounded to the UNet's multiple, then resized to the request's size and aspect. The engine
does not know where it drew the face, so ``Rendered.face_box`` is None and the guard runs full detection.

Speed (CUDA): fp16 weights by default (``dtype``), ``channels_last`` and ``compile`` (``torch.compile`` of the
UNet; each distinct hold level's scales are a new guard, so expect one recompile per level) options, and all
variations of a hold level in one batch (``max_batch`` caps it for memory).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import RequestError
from ..base import BoardAssets, GenerationRequest, Rendered, Subject, VariationPlan
from ..look.compose import frame_subject, output_size
from ..look.fill import push_pull
from ..planning import plan_variations
from ._clip import ClipStyleEncoder, PinEmbeddings, encoder_fingerprint, mode_prototypes
from ._errors import ModelFilesError

if TYPE_CHECKING:
    import torch

    from ...boards import Board
    from ...prompt import PromptIntent
    from ...taste.profile import TasteProfile
    from ._styleembed import StyleEmbed

MIN_DENOISE = 0.1
HOLD_STYLE_DROP = 0.5
HOLD_DENOISE_DROP = 0.6
FRAMING_WORDS = {
    "closeup": "close-up portrait",
    "portrait": "head and shoulders portrait",
    "half": "half body shot",
    "full": "full body shot",
}
BACKGROUND_WORDS = {
    "scene": "",
    "keep": "",
    "blur": "blurred background, shallow depth of field",
    "backdrop": "plain studio backdrop",
}


def mode_words(profile: TasteProfile, mode_id: str, n_tags: int = 3) -> list[str]:
    """A mode's look words and top tags, without repeats ("warm · airy (coffee)" -> warm, airy, coffee...)."""
    mode = profile.mode(mode_id)
    name = re.sub(r"\(.*?\)", "", mode.name)
    words = [w.strip() for w in name.split("·")] + list(mode.tags)[:n_tags]
    out: list[str] = []
    for w in words:
        if w and w.lower() not in {o.lower() for o in out}:
            out.append(w)
    return out


def hold_schedule(
    hold: float,
    *,
    strength: float,
    style_scale: float,
    identity_scale: float,
    hold_identity_scale: float,
    img2img: bool,
) -> tuple[float, float, float]:
    """(style scale, identity scale, img2img denoise) for a face hold in [0, 1] (table in the module doc)."""
    h = min(max(float(hold), 0.0), 1.0)
    top = max(hold_identity_scale, identity_scale)
    ident = identity_scale + h * (top - identity_scale)
    style = style_scale * (1.0 - HOLD_STYLE_DROP * h) * (1.0 if img2img else strength)
    denoise = max(MIN_DENOISE, strength * (1.0 - HOLD_DENOISE_DROP * h)) if img2img else 1.0
    return style, ident, denoise


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: Any, device: str) -> torch.dtype:
    import torch

    if dtype in (None, "auto"):
        return torch.float16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[str(dtype)]
    except KeyError:
        raise RequestError(f"dtype must be auto, float32, float16 or bfloat16 (got {dtype!r})") from None


def load_base_pipeline(base: Path | str, *, dtype: torch.dtype, device: str) -> Any:
    """A local diffusers text-to-image pipeline folder, loaded offline; problems name the folder or file."""
    from diffusers import AutoPipelineForText2Image

    folder = Path(base)
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelFilesError(
            f"base model file {index} not found: the base must be a diffusers pipeline folder "
            "(e.g. a local copy of stabilityai/sd-turbo)"
        )
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFilesError(f"cannot load the base model from {folder}: {str(exc).splitlines()[0]}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


class _PerSampleEmbeds:
    """Replaces a pipeline's ``prepare_ip_adapter_image_embeds`` so each image keeps its own tokens.

    diffusers treats ``ip_adapter_image_embeds`` as one image prompt shared by the batch and repeats it
    ``batch_size`` times; our tokens are already per sample (each variation has its own mode), with the
    negative half first when classifier-free guidance is on.
    """

    def __call__(self, ip_adapter_image: Any, ip_adapter_image_embeds: Any, device: Any, *args: Any) -> Any:
        return [e.to(device) for e in ip_adapter_image_embeds]


class DiffusionEngine:
    """Few-step diffusion with StyleEmbed style + identity tokens. See the module doc for the design."""

    name = "diffusion"
    version = "1"
    #: can render from an identity embedding alone (text-to-image), so the selfie's pixels may stay home
    accepts_identity_only = True

    def __init__(
        self,
        *,
        base: Path | str,
        image_encoder: Path | str | None = None,
        styleembed: Path | str | None = None,
        ip_adapter: Path | str | None = None,
        clip_embeddings: Path | str | None = None,
        device: str = "auto",
        dtype: Any = "auto",
        steps: int = 2,
        guidance_scale: float = 0.0,
        style_scale: float = 0.8,
        identity_scale: float = 0.6,
        hold_identity_scale: float = 1.2,
        img2img: bool = True,
        gen_side: int | None = None,
        max_batch: int = 8,
        compile: bool = False,
        channels_last: bool = False,
        base_prompt: str = "a photo of a person",
        negative_prompt: str = "",
    ) -> None:
        import torch

        from ._styleembed import StyleEmbed

        if steps < 1 or max_batch < 1:
            raise RequestError(f"steps and max_batch must be at least 1 (got {steps}, {max_batch})")
        self.device = resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.style_scale = style_scale
        self.identity_scale = identity_scale
        self.hold_identity_scale = hold_identity_scale
        self.img2img = img2img
        self.max_batch = max_batch
        self.base_prompt = base_prompt
        self.negative_prompt = negative_prompt
        self._lock = threading.RLock()

        self.t2i = load_base_pipeline(base, dtype=self.dtype, device=self.device)
        self._i2i: Any = None
        unet = self.t2i.unet
        self.adapter: StyleEmbed | None = None
        if styleembed is not None:
            self.adapter = StyleEmbed.load(styleembed)
        elif ip_adapter is not None:
            self.adapter = StyleEmbed.from_ip_adapter(ip_adapter, unet, identity_tokens=0)
        if self.adapter is not None:
            self.adapter.install(unet)
            self.adapter.to(self.device, self.dtype).eval()
            self.t2i.prepare_ip_adapter_image_embeds = _PerSampleEmbeds()
        if channels_last:
            unet.to(memory_format=torch.channels_last)
            self.t2i.vae.to(memory_format=torch.channels_last)
        if compile:
            self.t2i.unet = torch.compile(unet)
        vae_factor = int(getattr(self.t2i, "vae_scale_factor", 8))
        self.multiple = vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)
        sample = unet.config.sample_size
        sample = sample[0] if isinstance(sample, list | tuple) else sample
        self.gen_side = int(gen_side or sample * vae_factor)

        enc = Path(image_encoder) if image_encoder is not None else Path(base) / "image_encoder"
        self.image_encoder_path: Path | None = None
        if image_encoder is not None or (enc / "config.json").is_file():
            encoder_fingerprint(enc)  # fails now, naming the file, if the folder is wrong
            self.image_encoder_path = enc
        self._encoder: ClipStyleEncoder | None = None
        self._prototypes: dict[str, dict[str, np.ndarray]] = {}
        self.embeddings = PinEmbeddings("", {})
        if clip_embeddings is not None:
            self.add_embeddings(PinEmbeddings.load(clip_embeddings))

    # ------------------------------------------------------------------ style inputs
    @property
    def encoder(self) -> ClipStyleEncoder:
        if self._encoder is None:
            if self.image_encoder_path is None:
                raise ModelFilesError(
                    "the diffusion engine needs a CLIP image encoder folder to read a board (image_encoder=... or "
                    "TASTEMAKER_DIFFUSION_IMAGE_ENCODER), or pin embeddings made by `tastemaker clip-embed`"
                )
            self._encoder = ClipStyleEncoder(self.image_encoder_path, device=self.device)
        return self._encoder

    def add_embeddings(self, emb: PinEmbeddings) -> None:
        """Pin embeddings for profile-only runs; they must fit the adapter (and the encoder, when one is set)."""
        if self.adapter is not None and emb.vectors and emb.dim != self.adapter.config.style_dim:
            raise RequestError(
                f"CLIP embeddings are {emb.dim}-d but the style adapter takes {self.adapter.config.style_dim}-d; "
                "embed the board with the adapter's image encoder"
            )
        if self.image_encoder_path is not None and emb.vectors:
            fp = encoder_fingerprint(self.image_encoder_path)
            if emb.encoder != fp:
                raise RequestError(
                    f"CLIP embeddings were made by encoder {emb.encoder}, not the configured one ({fp}); "
                    "re-run `tastemaker clip-embed` with this encoder"
                )
        with self._lock:
            self.embeddings.update(emb)
            self._prototypes.clear()

    def prepare_board(self, board: Board, profile: TasteProfile) -> BoardAssets | None:
        """Embed the board's pins that have no embedding yet (the pipeline calls this when given a board).

        The embeddings live in the engine (keyed by pin content id); no per-request assets are returned.
        """
        if self.adapter is None:
            return None
        missing = [i for i, p in enumerate(board.pins) if p.id not in self.embeddings.vectors]
        if not missing:
            return None
        vecs = self.encoder.embed([board.thumbs[i] for i in missing])
        self.add_embeddings(PinEmbeddings(self.encoder.fingerprint, {
            board.pins[i].id: v for i, v in zip(missing, vecs, strict=True)
        }))
        return None

    def prototypes(self, profile: TasteProfile) -> dict[str, np.ndarray]:
        key = profile.content_hash()
        with self._lock:
            protos = self._prototypes.get(key)
            if protos is None:
                protos = mode_prototypes(profile, self.embeddings)
                self._prototypes[key] = protos
            return protos

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        request: GenerationRequest,
        subject: Subject,
        profile: TasteProfile,
        intent: PromptIntent,
        *,
        assets: BoardAssets | None = None,
    ) -> list[VariationPlan]:
        if self.adapter is not None:
            self.prototypes(profile)  # fail before rendering when the board's embeddings are missing
            ident = np.asarray(subject.identity.vector)
            if self.adapter.n_slots == 2 and ident.shape != (self.adapter.config.identity_dim,):
                raise RequestError(
                    f"identity embedding has {ident.size} values; the adapter takes {self.adapter.config.identity_dim}"
                )
        plans = plan_variations(request, profile, intent, backgrounds=("scene",))
        out = []
        for p in plans:
            parts = [self.base_prompt, FRAMING_WORDS[p.framing], BACKGROUND_WORDS[p.background],
                     request.prompt.strip(), *mode_words(profile, p.mode_id)]
            out.append(VariationPlan(index=p.index, seed=p.seed, mode_id=p.mode_id, background=p.background,
                                     framing=p.framing, strength=p.strength,
                                     params={**p.params, "prompt": ", ".join(w for w in parts if w)}))
        return out

    # ------------------------------------------------------------------ rendering
    @property
    def i2i(self) -> Any:
        if self._i2i is None:
            from diffusers import AutoPipelineForImage2Image

            self._i2i = AutoPipelineForImage2Image.from_pipe(self.t2i)
            self._i2i.set_progress_bar_config(disable=True)
            if self.adapter is not None:
                self._i2i.prepare_ip_adapter_image_embeds = _PerSampleEmbeds()
        return self._i2i

    def _gen_size(self, aspect: str, img_w: int, img_h: int) -> tuple[int, int]:
        w, h = output_size(self.gen_side, aspect, img_w, img_h)
        m = self.multiple
        return max(m, round(w / m) * m), max(m, round(h / m) * m)

    def _init_image(self, subject: Subject, plan: VariationPlan, gw: int, gh: int, aspect: str) -> np.ndarray:
        """The selfie framed for this variation (face-aware crop), at generation size, float [0, 1]."""
        import cv2

        img = subject.image
        h, w = img.shape[:2]
        frame = frame_subject(
            w, h, subject.face.box, framing=plan.framing, size=max(gw, gh), aspect=aspect,
            zoom=plan.params["zoom"], shift=tuple(plan.params["shift"]), max_upscale=None,
        )
        out = cv2.warpAffine(img, frame.matrix(), (frame.out_w, frame.out_h), flags=cv2.INTER_AREA,
                             borderMode=cv2.BORDER_CONSTANT)
        if not frame.covers(w, h):  # continue the photo's colours past its edge: never a mirror image
            valid = cv2.warpAffine(np.ones((h, w), np.float32), frame.matrix(), (frame.out_w, frame.out_h),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            out = np.clip(push_pull(out.astype(np.float32), valid), 0, 255).astype(np.uint8)
        if (frame.out_w, frame.out_h) != (gw, gh):
            out = cv2.resize(out, (gw, gh), interpolation=cv2.INTER_AREA)
        return out.astype(np.float32) / 255.0

    def _embeds(
        self, plans: Sequence[VariationPlan], subject: Subject, profile: TasteProfile, style_on: bool, ident_on: bool
    ) -> list[torch.Tensor]:
        import torch

        assert self.adapter is not None
        n = len(plans)
        dev, dt = self.device, self.dtype
        style = ident = None
        if style_on:
            protos = self.prototypes(profile)
            style = torch.from_numpy(np.stack([protos[p.mode_id] for p in plans])).to(dev, dt)
        if ident_on and self.adapter.n_slots == 2:
            vec = torch.from_numpy(np.asarray(subject.identity.vector, np.float32))
            ident = vec.unsqueeze(0).expand(n, -1).to(dev, dt)
        with torch.no_grad():
            pos = self.adapter.slot_embeds(style, ident, n)
            if self.guidance_scale <= 1.0:
                return pos
            zero_style = None if style is None else torch.zeros_like(style)
            zero_ident = None if ident is None else torch.zeros_like(ident)
            neg = self.adapter.slot_embeds(zero_style, zero_ident, n)
        return [torch.cat([a, b]) for a, b in zip(neg, pos, strict=True)]

    def render(
        self,
        plans: Sequence[VariationPlan],
        subject: Subject,
        profile: TasteProfile,
        request: GenerationRequest,
        *,
        hold: Sequence[float],
        assets: BoardAssets | None = None,
    ) -> list[Rendered]:
        holds = [float(h) for h in hold]
        if len(holds) != len(plans):
            raise RequestError(f"{len(plans)} plans but {len(holds)} hold values")
        out: dict[int, Rendered] = {}
        order: list[float] = []
        for h in holds:
            if h not in order:
                order.append(h)
        for h in order:
            idx = [k for k, hk in enumerate(holds) if hk == h]
            for start in range(0, len(idx), self.max_batch):
                chunk = idx[start : start + self.max_batch]
                for k, r in zip(chunk, self._render_batch([plans[k] for k in chunk], subject, profile, request, h),
                                strict=True):
                    out[k] = r
        return [out[k] for k in range(len(plans))]

    def _render_batch(
        self,
        plans: Sequence[VariationPlan],
        subject: Subject,
        profile: TasteProfile,
        request: GenerationRequest,
        hold: float,
    ) -> list[Rendered]:
        import cv2
        import torch

        from ._styleembed import StyleEmbed

        t0 = time.perf_counter()
        has_pixels = subject.image is not None
        use_i2i = self.img2img and has_pixels
        img_w, img_h = (subject.image.shape[1], subject.image.shape[0]) if has_pixels else (1, 1)
        aspect = request.aspect if has_pixels or request.aspect != "original" else "1:1"
        out_w, out_h = output_size(request.size, aspect, img_w, img_h)
        gw, gh = self._gen_size(aspect, img_w, img_h)
        style_s, ident_s, denoise = hold_schedule(
            hold, strength=request.strength, style_scale=self.style_scale, identity_scale=self.identity_scale,
            hold_identity_scale=self.hold_identity_scale, img2img=use_i2i,
        )
        kwargs: dict[str, Any] = {
            "prompt": [p.params["prompt"] for p in plans],
            "guidance_scale": self.guidance_scale,
            "generator": [torch.Generator("cpu").manual_seed(p.seed) for p in plans],
            "output_type": "np",
        }
        if self.guidance_scale > 1.0:
            kwargs["negative_prompt"] = [self.negative_prompt] * len(plans)
        with self._lock:
            if self.adapter is not None:
                StyleEmbed.set_scales(self.t2i.unet, style_s, ident_s if self.adapter.n_slots == 2 else 0.0)
                kwargs["ip_adapter_image_embeds"] = self._embeds(plans, subject, profile, style_s > 0, ident_s > 0)
            if use_i2i:
                init = np.stack([self._init_image(subject, p, gw, gh, aspect) for p in plans])
                kwargs["image"] = torch.from_numpy(init).permute(0, 3, 1, 2)  # [0, 1]; the pipeline normalises
                kwargs["strength"] = denoise
                kwargs["num_inference_steps"] = max(self.steps, math.ceil(1.0 / denoise - 1e-9))
                images = self.i2i(**kwargs).images
            else:
                kwargs.update(height=gh, width=gw, num_inference_steps=self.steps)
                images = self.t2i(**kwargs).images
        elapsed = time.perf_counter() - t0
        results = []
        for plan, img in zip(plans, images, strict=True):
            u8 = np.clip(np.asarray(img, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if u8.shape[:2] != (out_h, out_w):
                interp = cv2.INTER_AREA if out_w < u8.shape[1] else cv2.INTER_CUBIC
                u8 = cv2.resize(u8, (out_w, out_h), interpolation=interp)
            per = elapsed / len(plans)
            results.append(Rendered(pixels=np.ascontiguousarray(u8), plan=plan, hold=hold, face_box=None,
                                    timings={"diffusion": per, "total": per}))
        return results
