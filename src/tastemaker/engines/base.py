"""The engine contract: one request type, one plan/render protocol, same argument names everywhere.

A generation is split in two so the pipeline can run the identity guard between them:

* :meth:`Engine.plan` turns a request into one :class:`VariationPlan` per output image — which mode,
  which background, which framing, which seed. Plans are cheap and deterministic for a given seed.
* :meth:`Engine.render` draws planned variations at a given face ``hold`` (0 = the engine's normal
  strength on the face, 1 = leave the face as close to the selfie as the engine can). The guard
  re-renders a variation with a higher hold when its identity drifts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import RequestError

if TYPE_CHECKING:
    from ..boards import Board
    from ..encoders.identity import Face, IdentityEmbedding
    from ..prompt import PromptIntent
    from ..taste.profile import TasteProfile

Aspect = Literal["1:1", "4:5", "2:3", "9:16", "3:2", "original"]
Background = Literal["auto", "keep", "blur", "backdrop", "scene"]
Framing = Literal["auto", "closeup", "portrait", "half", "full"]
ASPECTS: tuple[str, ...] = ("1:1", "4:5", "2:3", "9:16", "3:2", "original")


class GenerationRequest(BaseModel):
    """What to make. Validated on construction; bad values raise :class:`RequestError`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field("", max_length=2000, description="free text: mode hints, framing, background words")
    n: int = Field(4, ge=1, le=8, description="number of variations")
    size: int = Field(1024, ge=256, le=2048, description="longest side of each output, in pixels")
    aspect: Aspect = "4:5"
    format: str = Field("png", description="png, jpeg or webp")
    strength: float = Field(0.8, ge=0.0, le=1.0, description="how far to move toward the board's look")
    seed: int | None = Field(None, ge=0, lt=2**53, description="same seed, same images; None picks one")
    background: Background = "auto"
    framing: Framing = "auto"
    mode: str | None = Field(None, description="force one taste mode by id (e.g. m2)")

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        from ..media import normalize_format

        return normalize_format(v)

    @field_validator("aspect", mode="before")
    @classmethod
    def _aspect(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = re.sub(r"\s+", "", v).replace("x", ":").replace("/", ":").lower()
        return v

    @classmethod
    def create(cls, **kwargs: Any) -> GenerationRequest:
        """Construct from loose input (CLI, API), turning validation failures into RequestError."""
        try:
            return cls(**{k: v for k, v in kwargs.items() if v is not None})
        except ValidationError as exc:
            raise request_error(exc) from None

    def with_seed(self, seed: int) -> GenerationRequest:
        return self.model_copy(update={"seed": seed})


def request_error(exc: ValidationError) -> RequestError:
    """A readable one-line summary of pydantic errors."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "request"
        msg = err["msg"]
        if err["type"] == "literal_error" and where == "aspect":
            msg = f"must be one of {', '.join(ASPECTS)}"
        ctx = err.get("ctx") or {}
        if "error" in ctx and isinstance(ctx["error"], RequestError):
            msg = ctx["error"].message
        parts.append(f"{where}: {msg} (got {err.get('input')!r})")
    return RequestError("; ".join(parts))


@dataclass
class Subject:
    """The person: the selfie pixels the engine works from, its face, and the identity to keep."""

    image: np.ndarray
    face: Face
    identity: IdentityEmbedding
    name: str = "selfie"
    #: per-subject caches engines may fill (segmentation mask, pyramids...)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class IdentitySubject:
    """A person known only by an identity embedding (a file made on their own device): no pixels, no face.

    The pipeline hands one only to engines whose ``accepts_identity_only`` is true (text-to-image engines), so
    the selfie's pixels never leave the person's machine.
    """

    identity: IdentityEmbedding
    name: str = "identity"
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    image: None = None
    face: None = None


@dataclass(frozen=True)
class PinImage:
    """One pin's pixels for this request (medium exemplar or scene), with what the person said about it."""

    id: str
    image: np.ndarray  # uint8 RGB, at most ASSET_SIDE on its longest side
    mode: str
    weight: float
    text: str = ""


@dataclass
class BoardAssets:
    """The board's own pixels for one request: what medium transfer and scenes draw from.

    A taste profile never carries pixels, so these exist only where the pins are (a board folder, the
    server's stored board) and only for the request that loaded them. ``source`` says where they came from.
    """

    source: str
    pins: dict[str, PinImage] = field(default_factory=dict)
    #: what could not be loaded, and why (reported in the manifest)
    missing: dict[str, str] = field(default_factory=dict)

    def for_mode(self, mode_id: str) -> list[PinImage]:
        """The mode's pins that are here, heaviest first."""
        return sorted((p for p in self.pins.values() if p.mode == mode_id), key=lambda p: (-p.weight, p.id))


@dataclass(frozen=True)
class VariationPlan:
    """Everything that makes one variation what it is (reproducible from the request seed)."""

    index: int
    seed: int
    mode_id: str
    background: str
    framing: str
    strength: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rendered:
    """One rendered variation, plus where the engine put the face (for the identity guard)."""

    pixels: np.ndarray
    plan: VariationPlan
    hold: float
    face_box: tuple[int, int, int, int] | None
    timings: dict[str, float] = field(default_factory=dict)
    #: what the engine did that a person may want to know (medium, exemplar, scene, size, fallbacks);
    #: goes into the manifest and the provenance record as is (JSON-safe values only)
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """What every engine provides. Register implementations with :func:`register_engine`.

    * ``accepts_identity_only``: the engine can draw a person known only by an identity embedding
      (:class:`IdentitySubject`, no selfie pixels); the pipeline refuses such requests to other engines.
    * :meth:`prepare_board` runs once per request that has a board (not only a profile): the engine
      loads or embeds what it needs from the pins and returns it as :class:`BoardAssets` (or ``None``).
      The pipeline passes the result to :meth:`plan` and :meth:`render` as ``assets``; a request made
      from a profile alone gets ``assets=None`` (or assets the caller loaded, e.g. the server's stored
      board), and an engine that needs pins falls back and says so in :attr:`Rendered.info`.
    * :meth:`plan` turns a request into one :class:`VariationPlan` per output; :meth:`render` draws them.
    """

    name: str
    version: str
    accepts_identity_only: bool

    def prepare_board(self, board: Board, profile: TasteProfile) -> BoardAssets | None: ...

    def plan(
        self,
        request: GenerationRequest,
        subject: Subject,
        profile: TasteProfile,
        intent: PromptIntent,
        *,
        assets: BoardAssets | None = None,
    ) -> list[VariationPlan]: ...

    def render(
        self,
        plans: Sequence[VariationPlan],
        subject: Subject,
        profile: TasteProfile,
        request: GenerationRequest,
        *,
        hold: Sequence[float],
        assets: BoardAssets | None = None,
    ) -> list[Rendered]: ...
