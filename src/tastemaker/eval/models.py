"""Optional model-based metrics, used only when the user points at weights on their own disk.

* **CLIP** (``--clip-model DIR``): a folder saved with ``transformers``' ``CLIPModel.save_pretrained``
  (``config.json`` + weights; ``preprocessor_config.json`` and tokenizer files when present, as in
  every published CLIP checkpoint). Metrics: ``clip_image_similarity`` (cosine between the output's
  image embedding and its board's engagement-weighted mean pin embedding), ``clip_attribution``
  (own board is the most similar of the run's boards) and ``clip_text_similarity`` (cosine to a
  sentence made of the board's heaviest tags and titles, when the board has any text and the folder
  has a tokenizer). Needs ``torch`` + ``transformers`` (the ``[clip]`` extra); never torchvision:
  images are prepared by transformers' PIL image processor.
* **ArcFace** (``--arcface-model FILE.onnx``): any ArcFace-style ONNX face recogniser taking a
  112x112 face (NCHW or NHWC, RGB) and returning an embedding (512-d for the usual ResNet models).
  Faces are aligned by a similarity transform of 5 dlib landmarks (eye centres, nose tip, mouth
  corners) onto InsightFace's standard 112x112 template. Metric: cosine similarity to the selfie and
  to the person's other photos. Pixels are normalised as InsightFace does: ``(x - 127.5) / 127.5``
  unless the graph starts with its own Sub/Mul normalisation (checked when the ``onnx`` package is
  installed). Needs ``onnxruntime`` (the ``[eval]`` extra).

Both load lazily: ``import tastemaker`` never imports torch, transformers or onnxruntime, and a
missing package raises :class:`~tastemaker.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError, MissingDependencyError

#: InsightFace's 112x112 ArcFace template: left eye, right eye, nose tip, mouth left, mouth right.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


# ----------------------------------------------------------------------------------------- CLIP
class ClipScorer:
    """Image and text embeddings from a local transformers CLIP checkpoint."""

    def __init__(self, path: Path | str, *, batch_size: int = 16) -> None:
        p = Path(path)
        if not p.is_dir() or not (p / "config.json").is_file():
            raise InputError(
                f"--clip-model {p}: expected a folder saved with CLIPModel.save_pretrained "
                "(config.json + model weights), e.g. a downloaded openai/clip-vit-base-patch32"
            )
        try:
            import torch  # noqa: F401
            import transformers
        except ImportError as exc:
            raise MissingDependencyError("CLIP metrics (--clip-model)", "clip", exc.name or "transformers") from exc
        from transformers import AutoTokenizer, CLIPModel

        self.path = p
        self.batch_size = batch_size
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()
        try:
            self.model = CLIPModel.from_pretrained(str(p), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"--clip-model {p}: cannot load it as a CLIPModel ({exc})") from exc
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        self.model.eval()
        config: Any = self.model.config  # transformers types its sub-configs loosely
        side = int(config.vision_config.image_size)
        self.processor = _clip_image_processor(p, side)
        has_tok = any((p / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json"))
        self.tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True) if has_tok else None
        self.max_text_len = int(config.text_config.max_position_embeddings)
        self.name = p.name

    @staticmethod
    def _features(out: Any) -> np.ndarray:
        """transformers 4 returns a tensor, 5 a model output whose pooler_output is the projection."""
        t = out if hasattr(out, "detach") else getattr(out, "pooler_output", None)
        if t is None:
            t = out.image_embeds if hasattr(out, "image_embeds") else out.text_embeds
        return np.asarray(t.detach().cpu().float().numpy(), dtype=np.float64)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, d) unit vectors."""
        import torch

        outs = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch_size):
                batch = [np.ascontiguousarray(im) for im in images[i : i + self.batch_size]]
                px = self.processor(images=batch, return_tensors="np")["pixel_values"]
                feats = self.model.get_image_features(pixel_values=torch.from_numpy(np.asarray(px, np.float32)))
                outs.append(self._features(feats))
        return _unit(np.concatenate(outs)) if outs else np.zeros((0, 0))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray | None:
        """(n, d) unit vectors, or None when the checkpoint folder has no tokenizer."""
        if self.tokenizer is None:
            return None
        import torch

        with torch.no_grad():
            tok = self.tokenizer(
                list(texts), padding=True, truncation=True, max_length=self.max_text_len, return_tensors="pt"
            )
            feats = self.model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return _unit(self._features(feats))


def _clip_image_processor(path: Path, side: int) -> Any:
    try:  # transformers 5: the PIL backend by name (the default one would want torchvision)
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4: the slow processor is the PIL one
        from transformers import CLIPImageProcessor as Processor  # type: ignore[assignment]
    if (path / "preprocessor_config.json").is_file():
        return Processor.from_pretrained(str(path), local_files_only=True)
    return Processor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


# --------------------------------------------------------------------------------------- ArcFace
def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks -> the 5 ArcFace points (image-left eye first)."""
    lm = np.asarray(landmarks68, dtype=np.float32)
    return np.stack(
        [lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]]
    ).astype(np.float32)


def align_face(img: np.ndarray, landmarks68: np.ndarray, size: int = 112) -> np.ndarray:
    """The face warped onto the ArcFace template (similarity transform, least-median fit)."""
    dst = ARCFACE_TEMPLATE * np.float32(size / 112.0)
    m, _ = cv2.estimateAffinePartial2D(five_points(landmarks68), dst, method=cv2.LMEDS)
    if m is None:  # degenerate landmarks: fall back to a plain least-squares fit
        m, _ = cv2.estimateAffinePartial2D(five_points(landmarks68), dst, method=0)
    if m is None:
        raise InputError("cannot align the face for ArcFace (degenerate landmarks)")
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


class ArcFaceScorer:
    """An ArcFace-style ONNX face recogniser run with onnxruntime on aligned 112x112 crops."""

    def __init__(
        self, path: Path | str, *, input_mean: float | None = None, input_std: float | None = None
    ) -> None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"--arcface-model {p}: file not found; expected an ArcFace .onnx model")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("ArcFace metrics (--arcface-model)", "eval", "onnxruntime") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise InputError(f"--arcface-model {p}: cannot load it as an ONNX model ({exc})") from exc
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise InputError(f"--arcface-model {p}: input {inp.name} has shape {shape}; expected 4-D (1x3x112x112)")
        self.nchw = shape[1] == 3
        if not self.nchw and shape[3] != 3:
            raise InputError(f"--arcface-model {p}: input shape {shape} is neither NCHW nor NHWC with 3 channels")
        side = shape[2] if self.nchw else shape[1]
        self.size = side if isinstance(side, int) else 112
        self.fixed_batch = isinstance(shape[0], int)
        self.input_name = inp.name
        self.path = p
        self.name = p.name
        mean, std = self._normalisation(p)
        self.input_mean = mean if input_mean is None else input_mean
        self.input_std = std if input_std is None else input_std

    @staticmethod
    def _normalisation(path: Path) -> tuple[float, float]:
        """InsightFace's rule: a graph that starts with Sub and Mul normalises itself."""
        try:
            import onnx
        except ImportError:
            return 127.5, 127.5
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception:  # the session loaded it; an onnx parse quirk only costs the heuristic
            return 127.5, 127.5
        ops = {n.op_type for n in graph.node[:8]}
        return (0.0, 1.0) if {"Sub", "Mul"} <= ops else (127.5, 127.5)

    def embed_aligned(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(n, d) unit embeddings of already aligned RGB crops."""
        if not crops:
            return np.zeros((0, 0))
        x = (np.stack(crops).astype(np.float32) - np.float32(self.input_mean)) / np.float32(self.input_std)
        if self.nchw:
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x)
        if self.fixed_batch:
            outs = [self.session.run(None, {self.input_name: x[i : i + 1]})[0] for i in range(len(x))]
            y = np.concatenate([np.asarray(o).reshape(1, -1) for o in outs])
        else:
            y = np.asarray(self.session.run(None, {self.input_name: x})[0]).reshape(len(x), -1)
        return _unit(y)

    def embed(self, img: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        """Unit embedding of the face with these dlib landmarks."""
        return self.embed_aligned([align_face(img, landmarks68, self.size)])[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(_unit(a), _unit(b)))
