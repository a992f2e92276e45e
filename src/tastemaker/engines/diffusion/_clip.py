"""The board's style in CLIP space: pin embeddings, and each taste mode's engagement-weighted prototype.

The encoder is any ``CLIPVisionModelWithProjection`` folder (transformers), e.g. the ``image_encoder`` that
IP-Adapter checkpoints ship; its ``image_embeds`` (projection space) are what the style slot consumes.
Preprocessing is done here in NumPy + Pillow (shortest side to ``size``, bicubic; centre crop; scale; normalise
with the folder's ``preprocessor_config.json`` mean/std, CLIP's defaults otherwise), so no torchvision-backed
image processor is involved.

**Prototype of a mode** = ``sum_i w_i e_i / sum_i w_i`` over the mode's pins (``w_i`` the profile's engagement
weight, ``e_i`` the pin's embedding), rescaled to the weighted mean norm of the ``e_i``: averaging diverse
embeddings shrinks the vector, and IP-Adapter projections were trained on single-image norms.

**Profile-only path**: a :class:`TasteProfile` holds no pixels, so pin embeddings are kept beside it in a
``tastemaker.clip_embeddings`` JSON file keyed by pin id (``tastemaker clip-embed BOARD -o board.clip.json``).
The file records the encoder's fingerprint (SHA-256 of its ``config.json``) and size; a mismatch with the
encoder or adapter in use is an error, never a silent mix of spaces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ProfileError
from ._errors import ModelFilesError

if TYPE_CHECKING:
    from ...boards import Board
    from ...taste.profile import TasteProfile

KIND = "tastemaker.clip_embeddings"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def encoder_fingerprint(folder: Path) -> str:
    """A short, stable id of a CLIP vision folder: SHA-256 of its ``config.json``."""
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise ModelFilesError(f"CLIP image encoder file {cfg} not found (the folder must be a transformers "
                              "CLIPVisionModelWithProjection folder: config.json + model.safetensors)")
    return hashlib.sha256(cfg.read_bytes()).hexdigest()[:16]


class ClipStyleEncoder:
    """A CLIP vision model with projection, loaded from a local folder, embedding RGB uint8 images."""

    def __init__(self, folder: Path | str, *, device: str = "cpu", dtype: Any = None) -> None:
        import torch
        from transformers import CLIPVisionModelWithProjection

        self.folder = Path(folder)
        self.fingerprint = encoder_fingerprint(self.folder)
        weights = [p for p in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
                   if (self.folder / p).is_file()]
        if not weights:
            raise ModelFilesError(f"CLIP image encoder weights not found in {self.folder} "
                                  "(expected model.safetensors or pytorch_model.bin)")
        try:
            model: Any = CLIPVisionModelWithProjection.from_pretrained(
                str(self.folder), local_files_only=True, dtype=dtype or torch.float32
            )
            self.model = model.to(device)
        except (OSError, ValueError) as exc:
            raise ModelFilesError(f"cannot load the CLIP image encoder from {self.folder}: {exc}") from exc
        self.model.eval()
        self.device = device
        self.dim = int(self.model.config.projection_dim)
        pre = self.folder / "preprocessor_config.json"
        cfg: dict[str, Any] = json.loads(pre.read_text()) if pre.is_file() else {}
        image_size = int(self.model.config.image_size)
        crop = cfg.get("crop_size", image_size)
        self.crop = int(crop["height"] if isinstance(crop, dict) else crop)
        size = cfg.get("size", self.crop)
        self.short = int(size.get("shortest_edge", self.crop) if isinstance(size, dict) else size)
        self.mean = np.asarray(cfg.get("image_mean", CLIP_MEAN), np.float32)
        self.std = np.asarray(cfg.get("image_std", CLIP_STD), np.float32)

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 3, crop, crop) float32: resize shortest side, centre crop, scale to [0, 1], normalise."""
        from PIL import Image

        out = np.empty((len(images), 3, self.crop, self.crop), np.float32)
        for k, img in enumerate(images):
            h, w = img.shape[:2]
            s = self.short / min(h, w)
            nw, nh = max(self.crop, round(w * s)), max(self.crop, round(h * s))
            pil = Image.fromarray(np.ascontiguousarray(img[..., :3])).resize((nw, nh), Image.Resampling.BICUBIC)
            x0, y0 = (nw - self.crop) // 2, (nh - self.crop) // 2
            arr = np.asarray(pil, np.float32)[y0 : y0 + self.crop, x0 : x0 + self.crop] / 255.0
            out[k] = ((arr - self.mean) / self.std).transpose(2, 0, 1)
        return out

    def embed(self, images: Sequence[np.ndarray], *, batch_size: int = 16) -> np.ndarray:
        """(N, projection_dim) float32 image embeddings."""
        import torch

        vecs = []
        dtype = next(self.model.parameters()).dtype
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(self.preprocess(images[i : i + batch_size])).to(self.device, dtype)
            with torch.no_grad():
                vecs.append(self.model(pixel_values=x).image_embeds.float().cpu().numpy())
        return np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32)


class PinEmbeddings:
    """CLIP embeddings of a board's pins by pin id, with the encoder that made them."""

    def __init__(self, encoder: str, vectors: Mapping[str, np.ndarray]) -> None:
        self.encoder = encoder
        self.vectors = {k: np.asarray(v, np.float32) for k, v in vectors.items()}
        dims = {v.shape for v in self.vectors.values()}
        if len(dims) > 1:
            raise ProfileError(f"CLIP embeddings of different sizes {sorted(dims)} in one set")
        self.dim = next(iter(dims))[0] if dims else 0

    @classmethod
    def from_board(cls, board: Board, encoder: ClipStyleEncoder) -> PinEmbeddings:
        """Embed every pin's thumbnail (the board keeps 256 px thumbnails; CLIP looks at 224 px)."""
        vecs = encoder.embed(board.thumbs)
        return cls(encoder.fingerprint, {p.id: v for p, v in zip(board.pins, vecs, strict=True)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "encoder": self.encoder,
            "dim": self.dim,
            "pins": {k: [round(float(x), 6) for x in v] for k, v in sorted(self.vectors.items())},
        }

    def save(self, path: Path | str) -> Path:
        from ...media import write_atomic

        return write_atomic(Path(path), (json.dumps(self.to_dict()) + "\n").encode())

    @classmethod
    def load(cls, path: Path | str) -> PinEmbeddings:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ProfileError(f"CLIP embeddings file {p} not found (make one with `tastemaker clip-embed`)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ProfileError(f"{p}: not readable JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ProfileError(f"{p}: not a CLIP embeddings file (expected \"kind\": \"{KIND}\")")
        pins = data.get("pins")
        if not isinstance(pins, dict):
            raise ProfileError(f"{p}: \"pins\" must map pin ids to vectors")
        try:
            out = cls(str(data.get("encoder", "")), {k: np.asarray(v, np.float32) for k, v in pins.items()})
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"{p}: malformed vectors ({exc})") from exc
        if any(v.ndim != 1 or not np.all(np.isfinite(v)) for v in out.vectors.values()):
            raise ProfileError(f"{p}: every vector must be a list of finite numbers")
        return out

    def update(self, other: PinEmbeddings) -> None:
        if self.vectors and other.vectors and (other.encoder != self.encoder or other.dim != self.dim):
            raise ProfileError(
                f"CLIP embeddings from encoder {other.encoder} ({other.dim}-d) cannot be mixed with "
                f"{self.encoder} ({self.dim}-d)"
            )
        if not self.vectors:
            self.encoder, self.dim = other.encoder, other.dim
        self.vectors.update(other.vectors)


def mode_prototypes(profile: TasteProfile, embeddings: PinEmbeddings) -> dict[str, np.ndarray]:
    """Each mode's engagement-weighted prototype (norm restored; see the module doc)."""
    out: dict[str, np.ndarray] = {}
    for mode in profile.modes:
        pins = [p for p in profile.pins if p.mode == mode.id and p.weight > 0]
        have = [(p, embeddings.vectors[p.id]) for p in pins if p.id in embeddings.vectors]
        if not have:
            raise ProfileError(
                f"no CLIP embeddings for the pins of mode {mode.id} ({len(pins)} pin(s)); give the board, or a "
                "CLIP embeddings file made from it with `tastemaker clip-embed BOARD -o FILE`"
            )
        w = np.array([p.weight for p, _ in have], np.float64)
        e = np.stack([v for _, v in have]).astype(np.float64)
        w = w / w.sum()
        proto = w @ e
        norm = float(np.linalg.norm(proto))
        target = float(w @ np.linalg.norm(e, axis=1))
        out[mode.id] = (proto * (target / norm if norm > 0 else 1.0)).astype(np.float32)
    return out
