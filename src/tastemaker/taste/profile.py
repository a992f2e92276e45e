"""The taste profile: a board distilled into weighted style modes plus what the engine needs.

A profile is plain, versioned JSON (``schema: tastemaker.profile``, ``schema_version: 1``) so a
person can keep it, move it and inspect it. It holds per-pin weights and mode assignments, and per
mode: its weight, medoid pins, centroid style features, and *look parameters* — colour samples
(the mode's colour distribution, 1024 sRGB values drawn in proportion to engagement), a tone curve
(luminance quantiles), a palette, and texture/falloff targets. It never holds pixels of pins or any
face data, so it can leave the machine (issue 6 adds signing and differential privacy on export).

Built from pins in content-hash order with symmetric weighting, a profile does not depend on the
order of pins; everything but ``created_at`` is a deterministic function of the board.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import safejson
from ..boards import Board
from ..encoders.medium import MediumInfo, medium_stats, mode_medium
from ..encoders.style import (
    ENCODER_NAME,
    ENCODER_VERSION,
    FEATURE_NAMES,
    StyleDescriptor,
    describe,
    features_to_vector,
    kmeans_palette,
    style_similarity,
    to_lab,
    vector_to_features,
)
from ..errors import ProfileError, RequestError
from ..media import read_text_file, write_atomic
from .modes import medoids, split_modes
from .robust import RobustConfig, defend, geometric_median
from .weights import WeightConfig, pin_weights

SCHEMA = "tastemaker.profile"
SCHEMA_VERSION = 1
COLOR_SAMPLES = 1024
TONE_POINTS = 21  # luminance quantiles 0, 5, ..., 100 %


class ProfileConfig(BaseModel):
    """How a profile is built from a board."""

    weights: WeightConfig = Field(default_factory=WeightConfig)
    #: "auto": learned attention weights when the board has enough dated history, else the defaults
    weighting: Literal["auto", "default", "learned"] = "auto"
    max_modes: int = Field(4, ge=1, le=8)
    min_pins_per_mode: int = Field(2, ge=1)
    min_silhouette: float = Field(0.2, ge=0, le=1)
    min_separation: float = Field(3.0, ge=0)
    robust: RobustConfig = Field(default_factory=RobustConfig)


class LookParams(BaseModel):
    """What the look engine needs to reproduce a mode: distributions, not pictures."""

    colors: list[str]  # "#rrggbb" samples of the mode's colour distribution
    tone: list[float]  # L* quantiles at 0, 5, ..., 100 %
    palette: list[list[float]]  # Lab centres, heaviest first
    palette_weights: list[float]
    grain: float  # log1p of grain std in L* units
    softness: float
    sharpness: float
    vignette: float
    chroma: float  # mean chroma
    #: the lowest and highest mean chroma among the mode's pins: an output's colour should land inside
    chroma_range: list[float] | None = None

    @classmethod
    def from_stats(
        cls, colors: np.ndarray, tone: np.ndarray, palette: np.ndarray, palette_weights: np.ndarray,
        features: dict[str, float],
    ) -> LookParams:
        """Look parameters from colour samples (uint8 RGB), a tone curve, a Lab palette and style features."""
        return cls(
            colors=_hex(np.asarray(colors, dtype=np.uint8)),
            tone=[round(float(v), 3) for v in tone],
            palette=[[round(float(v), 3) for v in row] for row in palette],
            palette_weights=[round(float(v), 4) for v in palette_weights],
            grain=features["grain"],
            softness=features["softness"],
            sharpness=features["sharpness"],
            vignette=features["vignette"],
            chroma=features["chroma_mean"],
        )

    def color_array(self) -> np.ndarray:
        """(K, 3) uint8 sRGB samples."""
        return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in self.colors], dtype=np.uint8)


class PinEntry(BaseModel):
    id: str
    image: str
    weight: float
    mode: str
    #: why the poisoning defence down-weighted this pin, if it did
    flags: list[str] = Field(default_factory=list)
    #: engagement score and style vector (+ tone curve / 8): kept in the user's own profile so a
    #: differentially private release can be made later; never part of an export
    engagement: float = 0.0
    vector: list[float] = Field(default_factory=list)


class Mode(BaseModel):
    model_config = ConfigDict(ignored_types=(cached_property,))

    id: str
    name: str
    weight: float
    n_pins: int
    medoids: list[str]  # pin ids
    features: dict[str, float]  # centroid of raw style features
    look: LookParams
    tags: dict[str, float] = Field(default_factory=dict)  # tag -> engagement weight
    titles: list[str] = Field(default_factory=list)
    #: what the mode's pictures are made with (photo, paint, line work) and how strongly to transfer it;
    #: None in profiles made before medium analysis (the engine then grades colour only and says so)
    medium: MediumInfo | None = None

    @cached_property
    def vector(self) -> np.ndarray:
        return features_to_vector(self.features)

    @property
    def text(self) -> str:
        """Words describing the mode: its name, tags and titles (for prompt matching)."""
        return " ".join([self.name.replace("·", " "), *self.tags.keys(), *self.titles])


class TasteProfile(BaseModel):
    """A portable taste profile. Load with :meth:`load`, save with :meth:`save`."""

    model_config = ConfigDict(extra="forbid")

    schema_: str = Field(SCHEMA, alias="schema")
    schema_version: int = SCHEMA_VERSION
    #: stable id of this profile across versions (feedback history, privacy accounting)
    id: str = ""
    #: incremented by every feedback update
    version: int = 1
    created_at: str = ""
    board: dict[str, Any] = Field(default_factory=dict)
    encoder: dict[str, str] = Field(default_factory=lambda: {"name": ENCODER_NAME, "version": ENCODER_VERSION})
    config: ProfileConfig = Field(default_factory=ProfileConfig)
    silhouette: float = 0.0
    #: how pins were weighted: {"kind": "default"} or {"kind": "learned", "theta": [...], "n_history": n}
    weighting: dict[str, Any] = Field(default_factory=lambda: {"kind": "default"})
    #: set on differentially private releases: epsilon, delta, rho, mechanism (see taste/privacy.py)
    privacy: dict[str, Any] | None = None
    #: feedback events and the board-derived base they apply to (see taste/feedback.py)
    feedback: list[dict[str, Any]] = Field(default_factory=list)
    feedback_base: dict[str, Any] | None = None
    pins: list[PinEntry]
    modes: list[Mode]

    # ------------------------------------------------------------------ scoring
    def mode(self, mode_id: str) -> Mode:
        for m in self.modes:
            if m.id == mode_id:
                return m
        raise ProfileError(f"profile has no mode {mode_id!r}; modes are {[m.id for m in self.modes]}")

    def mode_similarities(self, desc: StyleDescriptor | np.ndarray) -> dict[str, float]:
        """Style similarity of an image descriptor to each mode's centroid."""
        return {m.id: style_similarity(desc, m.vector) for m in self.modes}

    def mode_weights_for(self, desc: StyleDescriptor | np.ndarray) -> list[float]:
        """Each mode's weight times its similarity to ``desc``: how much this taste pulls toward a look."""
        sims = self.mode_similarities(desc)
        return [m.weight * sims[m.id] for m in self.modes]

    def style_score(self, desc: StyleDescriptor | np.ndarray) -> float:
        """How well an image matches this taste: its similarity to the closest mode."""
        return max(self.mode_similarities(desc).values())

    # ------------------------------------------------------------------ identity
    def content_hash(self) -> str:
        """SHA-256 of the taste itself (not its id, time or version): equal for equal boards."""
        data = self.model_dump(mode="json", by_alias=True)
        for key in ("created_at", "id", "version", "feedback", "feedback_base"):
            data.pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        """Standard JSON (never ``NaN``/``Infinity``: a profile holding one is refused, not written)."""
        try:
            return json.dumps(self.model_dump(mode="json", by_alias=True), indent=1, ensure_ascii=False,
                              allow_nan=False) + "\n"
        except ValueError as exc:
            raise ProfileError(f"the profile holds a value that is not a finite number ({exc}); not written") from exc

    def save(self, path: Path | str) -> Path:
        """Write atomically as JSON."""
        return write_atomic(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def from_json(cls, text: str, *, name: str = "profile") -> TasteProfile:
        try:
            data = safejson.loads(text, what=name)
        except safejson.JSONSyntaxError as exc:
            raise ProfileError(f"{name}: not valid JSON ({exc.detail})") from exc
        except RequestError as exc:  # nested too deep, a number too long, NaN
            raise ProfileError(exc.message) from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ProfileError(f"{name}: not a Tastemaker taste profile (expected \"schema\": \"{SCHEMA}\")")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ProfileError(
                f"{name}: schema_version {version!r} is not supported by this Tastemaker "
                f"(it reads version {SCHEMA_VERSION}); rebuild the profile with "
                "`tastemaker profile build BOARD -o FILE`"
            )
        enc = data.get("encoder") or {}
        if enc.get("name") != ENCODER_NAME or str(enc.get("version")) != ENCODER_VERSION:
            raise ProfileError(
                f"{name}: made with style encoder {enc.get('name')} v{enc.get('version')}; this Tastemaker uses "
                f"{ENCODER_NAME} v{ENCODER_VERSION}. Rebuild the profile from the board."
            )
        try:
            prof = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ProfileError(f"{name}: invalid profile at {where}: {first['msg']}") from exc
        if not prof.modes:
            raise ProfileError(f"{name}: profile has no modes")
        for m in prof.modes:
            missing = set(FEATURE_NAMES) - set(m.features)
            if missing:
                raise ProfileError(f"{name}: mode {m.id} lacks features {sorted(missing)[:3]}")
            if not m.look.colors or len(m.look.tone) != TONE_POINTS:
                raise ProfileError(f"{name}: mode {m.id} has incomplete look parameters")
            try:
                m.look.color_array()
            except ValueError as exc:
                raise ProfileError(f"{name}: mode {m.id} has malformed colours ({exc})") from exc
        return prof

    @classmethod
    def load(cls, path: Path | str) -> TasteProfile:
        p = Path(path)
        return cls.from_json(read_text_file(p, what="profile", error=ProfileError), name=p.name)


# ---------------------------------------------------------------------- building


def _hex(rgb: np.ndarray) -> list[str]:
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]


def _allocate(total: int, w: np.ndarray) -> np.ndarray:
    """Largest-remainder allocation of ``total`` items proportional to ``w``."""
    share = w / w.sum() * total
    base = np.floor(share).astype(np.int64)
    rest = total - base.sum()
    order = np.lexsort((np.arange(len(w)), -(share - base)))
    base[order[:rest]] += 1
    return base


#: A mode's name, word by word: (feature, above this -> high word, below this -> low word); ``None`` = no word.
_NAME_WORDS: tuple[tuple[str, float, str | None, float, str | None], ...] = (
    ("L_p50", 66, "airy", 38, "moody"),
    ("chroma_mean", 28, "vivid", 10, "muted"),
    ("contrast", 72, "punchy", 42, "faded"),
    ("grain", 0.9, "grainy", float("-inf"), None),
    ("softness", 1.6, "soft", float("-inf"), None),
)


def _mode_name(f: dict[str, float], tags: dict[str, float]) -> str:
    warm = f["b_mean"] + 0.3 * f["a_mean"]
    words = ["warm" if warm > 12 else "cool" if warm < 3 else "neutral"]
    for feature, high, high_word, low, low_word in _NAME_WORDS:
        word = high_word if f[feature] > high else low_word if f[feature] < low else None
        if word:
            words.append(word)
    name = " · ".join(words)
    if tags:
        name += f" ({min(tags, key=lambda t: (-tags[t], t))})"
    return name


def _engagement_weights(board: Board, x: np.ndarray, cfg: ProfileConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Hand-set weights, or attention weights fitted on this board's own dated history."""
    from .learned import MIN_HISTORY, counterfactual_looks, engagement_features, fit_attention
    from .weights import cap_weights, reference_time

    dated = [p for p in board.pins if p.pinned_at is not None]
    want = cfg.weighting == "learned" or (cfg.weighting == "auto" and len(dated) >= MIN_HISTORY)
    if not want or len(dated) < MIN_HISTORY:
        return pin_weights(board.pins, cfg.weights), {"kind": "default"}
    ref = reference_time([p.pinned_at for p in dated])
    assert ref is not None
    days = np.array([(min(p.pinned_at or ref, ref) - ref).total_seconds() / 86400 for p in board.pins])
    saves = np.array([p.saves for p in board.pins], float)
    clicks = np.array([p.clicks for p in board.pins], float)
    dwell = np.array([p.dwell_seconds for p in board.pins], float)
    distract = np.stack([describe(t, palette=False).vector for t in counterfactual_looks(board.thumbs)])
    model = fit_attention(x, times=days, saves=saves, clicks=clicks, dwell=dwell, distractors=distract,
                          half_life_days=cfg.weights.half_life_days)
    if not model.fitted:
        return pin_weights(board.pins, cfg.weights), {"kind": "default"}
    feats = engagement_features(saves, clicks, dwell, -days, x, half_life_days=cfg.weights.half_life_days)
    lg = model.logits(feats)
    raw = np.exp(lg - lg.max())
    info = {"kind": "learned", "theta": [round(float(t), 5) for t in model.theta], "n_history": model.n_history}
    return cap_weights(raw, cfg.weights), info


def build_profile(
    board: Board,
    config: ProfileConfig | None = None,
    *,
    descriptors: Sequence[StyleDescriptor] | None = None,
) -> TasteProfile:
    """Distil a board into a :class:`TasteProfile`."""
    cfg = config or ProfileConfig()
    if len(board) == 0:
        from ..errors import EmptyBoardError

        raise EmptyBoardError(f"board {board.name!r} has no usable pins")
    with ThreadPoolExecutor(max_workers=2) as pool:  # OpenCV/NumPy release the GIL for most of it
        descs = list(descriptors) if descriptors is not None else list(
            pool.map(lambda t: describe(t, palette=False), board.thumbs)
        )
        mediums = list(pool.map(medium_stats, board.thumbs))
    x = np.stack([d.vector for d in descs])
    base_w, weighting = _engagement_weights(board, x, cfg)
    defence = defend(x, board.pins, base_w, cfg.robust, cfg.weights)
    w = defence.weights
    split = split_modes(
        x,
        w,
        max_modes=cfg.max_modes,
        min_pins=cfg.min_pins_per_mode,
        min_silhouette=cfg.min_silhouette,
        min_separation=cfg.min_separation,
    )
    modes: list[Mode] = []
    for j in range(split.k):
        members = split.labels == j
        idx = np.flatnonzero(members)
        mw = w[idx] / w[idx].sum()
        if cfg.robust.enabled and cfg.robust.geometric_median and len(idx) > 2:
            feats = vector_to_features(geometric_median(x[idx], mw))
        else:
            feats = {n: float(np.dot(mw, [descs[i].features[n] for i in idx])) for n in FEATURE_NAMES}
        # colour distribution: samples per pin in proportion to its weight, fixed per-pin RNG
        counts = _allocate(COLOR_SAMPLES, mw)
        samples = []
        for i, c in zip(idx, counts, strict=True):
            if c == 0:
                continue
            rng = np.random.default_rng(int(board.pins[i].sha256[:12] or "0", 16))
            pix = board.thumbs[i].reshape(-1, 3)
            samples.append(pix[rng.choice(len(pix), size=int(c), replace=len(pix) < c)])
        colors = np.concatenate(samples)
        tone = np.zeros(TONE_POINTS)
        for i, wi in zip(idx, mw, strict=True):
            tone += wi * descs[i].tone
        lab_samples = to_lab(colors.reshape(1, -1, 3)).reshape(-1, 3)
        palette, pw = kmeans_palette(lab_samples, k=5)
        tags: dict[str, float] = {}  # tag -> summed engagement weight
        titles = []
        for i in idx[np.argsort(-w[idx], kind="stable")]:
            for t in board.pins[i].tags:
                tags[t.lower()] = tags.get(t.lower(), 0.0) + float(w[i])
            if board.pins[i].title:
                titles.append(board.pins[i].title)
        look = LookParams.from_stats(colors, tone, palette, pw, feats)
        pin_chroma = [descs[i].features["chroma_mean"] for i in idx]
        look.chroma_range = [round(float(min(pin_chroma)), 3), round(float(max(pin_chroma)), 3)]
        modes.append(
            Mode(
                id=f"m{j + 1}",
                name=_mode_name(feats, tags),
                weight=float(w[idx].sum()),
                n_pins=len(idx),
                medoids=[board.pins[i].id for i in medoids(x, w, members)],
                features={k: round(v, 6) for k, v in feats.items()},
                look=look,
                tags={t: round(v, 4) for t, v in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:12]},
                titles=titles[:20],
                medium=mode_medium([mediums[i] for i in idx], w[idx]),
            )
        )
    from .weights import engagement_score

    release = [np.concatenate([d.vector, np.asarray(d.tone) / 8.0]) for d in descs]
    pins = [
        PinEntry(
            id=p.id, image=p.image, weight=round(float(wi), 6), mode=f"m{int(lab) + 1}", flags=fl,
            engagement=round(engagement_score(p, cfg.weights), 5), vector=[round(float(v), 5) for v in vec],
        )
        for p, wi, lab, fl, vec in zip(board.pins, w, split.labels, defence.flags, release, strict=True)
    ]
    return TasteProfile(
        id=uuid.uuid4().hex,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        board={"name": board.name, "n_pins": len(board), "n_skipped": len(board.skipped)},
        config=cfg,
        silhouette=round(split.silhouette, 6),
        weighting=weighting,
        pins=pins,
        modes=modes,
    )
