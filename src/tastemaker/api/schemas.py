"""Request and response bodies as pydantic models: they are the OpenAPI schema clients (and schemathesis) see.

Over 500 lines on purpose: every body of the API in one file, read top to bottom as the API's reference (the
only code here converts pins and boards into their bodies: one conversion each way).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import JsonDict, JsonValue

from ..boards import PIN_FIELDS, Pin
from ..engines.base import Aspect, Background, Framing, GenerationRequest
from ..store.records import Board, StoredPin

_core = GenerationRequest.model_fields


def _bounds(name: str) -> list[Any]:
    """The core request's constraints for one field, so the API cannot drift from the library."""
    return list(_core[name].metadata)


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable error code", examples=["not_found"])
    message: str = Field(description="what went wrong and what to do next")
    error: str = Field(description="the error class name")
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


# ------------------------------------------------------------------------------------------ boards


class PinIn(BaseModel):
    """Engagement for one uploaded image (matched by file name)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=255, description="the uploaded file's name")
    saves: int = Field(0, ge=0, le=10**9)
    clicks: int = Field(0, ge=0, le=10**9)
    dwell_seconds: float = Field(0.0, ge=0, le=1e9, allow_inf_nan=False)
    pinned_at: datetime | None = None
    title: str = Field("", max_length=500)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    source: str = Field("", max_length=500)

    def to_pin(self, sha256: str) -> Pin:
        """The core pin of the uploaded image with this engagement (the one conversion in): times in UTC,
        text trimmed, empty tags dropped."""
        pinned = self.pinned_at
        if pinned is not None:
            pinned = pinned.replace(tzinfo=UTC) if pinned.tzinfo is None else pinned.astimezone(UTC)
        tags = tuple(t.strip() for t in self.tags if t.strip())
        return Pin(image=self.image, saves=self.saves, clicks=self.clicks, dwell_seconds=self.dwell_seconds,
                   pinned_at=pinned, title=self.title.strip(), tags=tags, source=self.source.strip(), sha256=sha256)


class PinOut(BaseModel):
    id: str = Field(description="content id: first 16 hex digits of the image's SHA-256")
    image: str
    sha256: str
    bytes: int
    saves: int
    clicks: int
    dwell_seconds: float
    pinned_at: datetime | None
    title: str
    tags: list[str]
    source: str

    @classmethod
    def of(cls, stored: StoredPin) -> PinOut:
        """A stored pin as the API shows it (the one conversion out)."""
        pin = stored.pin
        fields = {name: getattr(pin, name) for name in PIN_FIELDS}
        return cls(**{**fields, "tags": list(pin.tags)}, id=pin.id, sha256=pin.sha256, bytes=stored.byte_size)


class SkippedPin(BaseModel):
    """An upload (or a ``pins`` entry) that was not added, and why; the rest of the request went ahead."""

    image: str = Field(description="the upload's file name (or the name a `pins` entry gave)")
    reason: str = Field(description="why it was not added, for people")
    code: str = Field(
        "skipped",
        description="why, for programs: the image error's code (`image_unreadable`, `image_too_large`, "
        "`image_too_many_pixels`, ...), `duplicate` (same bytes as another upload), `already_on_board`, or "
        "`not_uploaded` (a `pins` entry without a file)",
    )


class ProfileState(BaseModel):
    hash: str
    revision: int
    stale: bool = Field(description="pins were added since the cached profile was built")


class BoardOut(BaseModel):
    id: str
    name: str
    revision: int
    n_pins: int
    created_at: datetime
    updated_at: datetime
    profile: ProfileState | None
    pins: list[PinOut]
    skipped: list[SkippedPin] = Field(
        default_factory=list,
        description="uploads not added, each with its reason: unreadable, too large, duplicates, `pins` entries "
        "without a file (the board is refused only when none of its images can be used)",
    )

    @classmethod
    def of(cls, board: Board, skipped: list[SkippedPin] | None = None) -> BoardOut:
        """A stored board, read with its pins."""
        assert board.pins is not None, "read the board with its pins"
        profile = None
        if board.profile_hash is not None and board.profile_revision is not None:
            profile = ProfileState(hash=board.profile_hash, revision=board.profile_revision,
                                   stale=board.profile_revision != board.revision)
        return cls(id=board.id, name=board.name, revision=board.revision, n_pins=len(board.pins),
                   created_at=board.created_at, updated_at=board.updated_at, profile=profile,
                   pins=[PinOut.of(p) for p in board.pins], skipped=skipped or [])


class PinsAdded(BaseModel):
    board: BoardOut
    added: list[PinOut]
    skipped: list[SkippedPin]


# ------------------------------------------------------------------------------------------ styleembed


class StyleEmbedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    board_id: str = Field(min_length=1, max_length=32)


class LookSummary(BaseModel):
    palette: list[str] = Field(description="the mode's palette as #rrggbb, heaviest first")
    palette_weights: list[float]
    tone: list[float] = Field(description="L* quantiles at 0, 5, ..., 100 %")
    grain: float
    softness: float
    sharpness: float
    vignette: float
    chroma: float


class ModeOut(BaseModel):
    id: str
    name: str
    weight: float = Field(description="share of the board's engagement weight (modes sum to 1)")
    n_pins: int
    medoids: list[str]
    tags: dict[str, float]
    look: LookSummary
    vector: list[float] = Field(description="the mode's style vector (the encoder's weighted feature space)")


class PinWeight(BaseModel):
    id: str
    image: str
    weight: float
    mode: str


class StyleEmbedOut(BaseModel):
    """A differentially private release: every value is noisy, derived from noisy values, or public. Nothing
    the exact profile measured is in it (no hash, no silhouette, no mode count of the exact clustering)."""

    board_id: str
    board_revision: int
    encoder: dict[str, str]
    feature_names: list[str]
    modes: list[ModeOut] = Field(description="the modes that survived the noise, out of `privacy.modes`")
    pins: list[PinWeight] = Field(description="empty: per-pin data never leaves the store")
    profile: dict[str, Any] = Field(description="the differentially private, portable TasteProfile JSON")
    privacy: dict[str, Any] | None = Field(
        None, description="epsilon, delta, rho, the public starting mode count and the mechanism of this release"
    )


# ------------------------------------------------------------------------------------------ generations


#: Base64 text (RFC 4648), as the JSON forms carry image files.
BASE64: JsonDict = {
    "contentEncoding": "base64",
    "pattern": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",  # what the server decodes
}


def one_of_given(*groups: tuple[dict[str, Any], list[str]]) -> JsonDict:
    """JSON Schema for "exactly one of these ways": each group's fields given (not null), some others left out.

    ``groups`` are (the fields the way needs and their schemas, the fields it excludes: absent or null). What
    the API refuses with a 422 naming the rule (``give exactly one of board_id or profile``) the published
    schema says too.
    """
    branches: list[JsonValue] = []
    for needs, excludes in groups:
        props: JsonDict = {n: {"type": "null"} for n in excludes}
        props.update(needs)
        branches.append({"required": list(needs), "properties": props})
    return {"oneOf": branches}


def _generation_schema(schema: JsonDict) -> None:
    """GenerationCreate's published schema: ``consent`` is required (and must be true; the model defaults it to
    false so that leaving it out gets the clear 400 ``consent_required``), exactly one of board or profile, and
    exactly one of selfie or identity."""
    required = schema.setdefault("required", [])
    assert isinstance(required, list)
    if "consent" not in required:
        required.append("consent")
    schema["allOf"] = [
        one_of_given(({"board_id": {"type": "string"}}, ["profile"]), ({"profile": {"type": "object"}}, ["board_id"])),
        one_of_given(({"selfie": {"type": "string"}}, ["identity"]),
                     ({"identity": {"type": ["array", "object"]}}, ["selfie"])),
        # a product is a photo: never an identity alone
        {"not": {"required": ["subject", "identity"],
                 "properties": {"subject": {"const": "product"}, "identity": {"type": ["array", "object"]}}}},
    ]


#: An identity embedding as the API takes it: its 128 numbers, or the identity file ``tastemaker identity`` writes.
IdentityIn = list[Annotated[float, Field(allow_inf_nan=False)]] | dict[str, Any]


class GenerationCreate(BaseModel):
    """A generation request (JSON form; the multipart form has the same fields, ``selfie`` as a file).

    Exactly one of ``board_id`` and ``profile``, exactly one of ``selfie`` and ``identity``; ``consent`` must be true.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda schema: _generation_schema(schema))

    board_id: str | None = Field(None, min_length=1, max_length=32, description="one of board_id or profile")
    profile: dict[str, Any] | None = Field(None, description="a TasteProfile JSON object, instead of a board")
    selfie: str | None = Field(
        None, min_length=1, description="the selfie image, base64 (JSON) — or a file part (multipart); one of selfie "
        "or identity", json_schema_extra=BASE64,
    )
    identity: IdentityIn | None = Field(
        None,
        description="instead of a selfie: the identity embedding made on your device (`tastemaker identity`), as its "
        "128 numbers or the identity file's JSON (JSON text in a multipart form). Only for a deployment whose engine "
        "draws from an identity alone (the diffusion engine); the look engine redraws a selfie and refuses it "
        "(422 identity_only_unsupported): render on your device instead (`tastemaker generate --remote`)",
        json_schema_extra={"anyOf": [{"type": "array", "items": {"type": "number"}, "minItems": 128,
                                      "maxItems": 128}, {"type": "object"}, {"type": "null"}]},
    )
    selfie_name: str = Field("selfie", max_length=255)
    consent: bool = Field(
        False, description="must be true: you confirm the selfie (or identity) is yours or you have the person's "
        "consent (false is refused: 400 consent_required)",
        json_schema_extra={"const": True},
    )
    prompt: Annotated[str, *_bounds("prompt")] = _core["prompt"].default
    n: Annotated[int, *_bounds("n")] = _core["n"].default
    size: Annotated[int, *_bounds("size")] = _core["size"].default
    aspect: Aspect = _core["aspect"].default
    output_format: Literal["png", "jpeg", "webp"] = _core["format"].default
    strength: Annotated[float, *_bounds("strength")] = _core["strength"].default
    seed: Annotated[int | None, *_bounds("seed")] = None
    background: Background = _core["background"].default
    framing: Framing = _core["framing"].default
    mode: str | None = Field(None, max_length=16, description="force one taste mode by id (e.g. m2)")
    face_index: int | None = Field(None, ge=0, le=32)
    subject: Literal["person", "product"] = Field(
        "person", description="product: the photo (sent as the selfie part) is a product's, shown in the board's look "
        "(cut out, no face needed; consent only matters when a face is in it); its images carry a fidelity check")
    clip: float | None = Field(None, ge=1, le=6, description="also make a clip of each image, this many seconds long "
                               "(1-6): a gentle camera move with parallax, its own provenance record; at "
                               "images[].clip.url")
    clip_format: Literal["mp4", "webm", "gif"] | None = Field(
        None, description="the clip's file: mp4 (H.264, default), webm or gif (with clip)")
    fps: Literal[24, 30] | None = Field(None, description="the clip's frames per second: 24 (default) or 30 (with "
                                        "clip)")

    @field_validator("fps", mode="before")
    @classmethod
    def _fps_from_form(cls, v: Any) -> Any:
        """A form field is text: "30" is 30."""
        return int(v) if isinstance(v, str) and v.strip().isdigit() else v


class Progress(BaseModel):
    stage: str
    done: int
    total: int
    fraction: float


class JobError(BaseModel):
    code: str
    message: str
    retryable: bool


class ImageOut(BaseModel):
    index: int
    url: str
    media_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    seed: int | None = None
    mode: str | None = None
    identity_distance: float | None = None
    style_score: float | None = None
    colour: str | None = Field(None, description="the mode's colour character: colour, toned or monochrome")
    medium: dict[str, Any] | None = Field(
        None, description="the medium drawn (kind, exemplar pin, strength) or why not (fallback, reason)"
    )
    scene: dict[str, Any] | None = Field(None, description="the board picture the person was put into, if any")
    size: dict[str, Any] | None = Field(None, description="set when the output is smaller than requested, and why")
    subject: str | None = Field(None, description="product for a product image (subject=product)")
    fidelity: dict[str, Any] | None = Field(
        None, description="a product image's fidelity check: dominant-colour CIEDE2000, gradient SSIM, holds tried"
    )
    alt_text: str | None = Field(None, description="a text alternative for the image (the alt_text plugin)")
    plugins: dict[str, Any] | None = Field(
        None, description="what each check_output plugin measured and decided (skin_tone: ITA before and after)"
    )
    clip: dict[str, Any] | None = Field(
        None, description="the image's clip (clip=SECONDS): url, media_type, seconds, fps, frames, size, record_id"
    )


class GenerationOut(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: Progress
    board_id: str | None
    profile_hash: str
    request: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    images: list[ImageOut]
    links: dict[str, str]


# ------------------------------------------------------------------------------------------ feedback

FeedbackAction = Literal["save", "like", "skip", "hide"]


class FeedbackIn(BaseModel):
    """A reaction to an image (JSON form; the multipart form has the same fields, ``image`` as a file).

    Either ``generation_id`` (+ ``image_index``): one of this account's generated images — the reaction counts
    toward the mode it was drawn in — or ``image`` + ``board_id``: an uploaded image, counted toward the board's
    mode nearest its style.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=one_of_given(
            ({"generation_id": {"type": "string"}}, ["image"]),
            ({"image": {"type": "string"}, "board_id": {"type": "string"}}, ["generation_id"]),
        ),
    )

    action: FeedbackAction = Field(
        description="save and like move the profile toward the image's look; skip and hide away from it"
    )
    generation_id: str | None = Field(None, min_length=1, max_length=64, description="a generation (gen_...)")
    image_index: int = Field(0, ge=0, le=63, description="which image of the generation, numbered from 0")
    board_id: str | None = Field(
        None, min_length=1, max_length=32, description="the board whose profile learns (default: the generation's)"
    )
    image: str | None = Field(
        None, min_length=1, description="an image, base64 (JSON) — or a file part (multipart); needs board_id",
        json_schema_extra=BASE64,
    )
    dwell_seconds: float = Field(0.0, ge=0, le=86400, allow_inf_nan=False, description="how long it was looked at")


class FeedbackOut(BaseModel):
    """What the reaction did. Taste weights and vectors are not returned: they leave the store only through
    the differentially private ``/v1/styleembed`` release."""

    board_id: str
    board_revision: int
    version: int = Field(description="the profile's version after this reaction")
    previous_profile_hash: str
    profile_hash: str = Field(description="the profile generations from this board use from now on")
    action: FeedbackAction
    mode: str = Field(description="the mode the reaction counted toward")
    mode_source: Literal["generation", "nearest"] = Field(
        description="generation: the mode the image was drawn in; nearest: the mode closest to its style"
    )
    image_sha256: str
    generation_id: str | None
    image_index: int | None
    dwell_seconds: float


class ProfileVersionOut(BaseModel):
    version: int
    board_revision: int
    profile_hash: str
    created_at: datetime
    kind: Literal["built", "feedback", "rebuilt"] = Field(
        description="built: before the first reaction; feedback: after a reaction; rebuilt: pins were added and "
        "the reactions replayed onto the new profile"
    )
    action: FeedbackAction | None = None
    mode: str | None = None
    mode_source: Literal["generation", "nearest"] | None = None
    generation_id: str | None = None
    image_index: int | None = None
    image_sha256: str | None = None
    dwell_seconds: float | None = None
    replayed: int | None = Field(None, description="reactions carried over (rebuilt)")


class ProfileHistoryOut(BaseModel):
    board_id: str
    board_revision: int
    profile_hash: str | None = Field(description="the current profile's hash (null until it is first built)")
    versions: list[ProfileVersionOut] = Field(description="oldest first; empty until the first reaction")


# ------------------------------------------------------------------------------------------ verify


class VerifyIn(BaseModel):
    """An image to check (JSON form; the multipart form sends it as a file part named ``image``)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="the image file's bytes, base64", json_schema_extra=BASE64)


class C2paOut(BaseModel):
    state: Literal["valid", "tampered", "absent"]
    trusted: bool = Field(description="signed by a certificate in this server's trust list")
    validation_state: str | None
    record: dict[str, Any] | None = Field(
        description="the provenance record embedded in the manifest (``account`` redacted unless it is yours)"
    )


class WatermarkOut(BaseModel):
    id: str | None = Field(description="the record id the invisible watermark carries (10 hex digits)")
    confidence: float


class RecordOut(BaseModel):
    """A provenance record: keyed hashes, a pseudonym and ids only (no prompt text, no pixels, no selfie)."""

    record_id: int
    account: str = Field(
        description="the account that made the image — yours, or `redacted:<hash>` (the same hash for the same "
        "account) when it belongs to another account"
    )
    created_at: str
    prompt_hmac: str | None = Field(
        None, description="the prompt keyed with the server's secret (schema v2): guesses cannot be tested"
    )
    prompt_sha256: str | None = Field(None, description="SHA-256 of the prompt (older v1 records only)")
    profile_hash: str
    engine: str
    engine_version: str
    seed: int
    image_sha256: str = Field(description="SHA-256 of the marked pixels (not of the file)")
    fingerprint: str | None = Field(
        None, description="keyed fingerprint of the picture (schema v2), compared with the submitted image"
    )
    schema_: str = Field(alias="schema")
    rendered_on: Literal["device"] | None = Field(
        None, description="`device`: rendered on the person's own device and registered here (POST /v1/records): this "
        "service marked, signed and logged it but did not watch it being made, so engine, seed and profile hash are "
        "what the device reported. Absent: this service rendered it"
    )


class MatchOut(BaseModel):
    by: Literal["watermark", "c2pa", "fingerprint"] | None = Field(
        description="what found the record: its watermark, its C2PA manifest, or the picture's fingerprint"
    )
    fingerprint_z: float | None = Field(
        description="agreement of the picture with the record's fingerprint, in standard deviations above "
        "chance (a copy of the record's picture scores over 7; another picture about 0-5)"
    )
    cells: int | None = Field(description="how many cells of the picture were compared")


class ConsistencyOut(BaseModel):
    from_size: int
    from_root: str
    to_size: int | None
    proof: list[str] = Field(description="RFC 9162 consistency proof (hex hashes)")
    ok: bool


class LogProofOut(BaseModel):
    index: int | None = Field(description="the record's leaf index in the transparency log")
    tree_size: int | None
    root: str | None = Field(description="root hash of the current signed tree head (hex)")
    tree_head: str | None = Field(
        None, description="the current signed tree head (a C2SP checkpoint note, Ed25519); keep it to check later"
    )
    inclusion_proof: list[str] = Field(description="RFC 9162 inclusion proof (hex hashes)")
    proof_ok: bool
    consistency: ConsistencyOut | None = Field(
        None, description="proof that today's log extends an older tree head: yours (since_size / since_root), "
        "else the one signed when the record was added"
    )


class VerifyOut(BaseModel):
    """Where an image came from. Every verdict is a 200: the verdict is the answer, not an error."""

    verdict: Literal["verified", "not_ours", "tampered", "forged", "untrusted"] = Field(
        description="`verified`: made here, picture and log check out; `not_ours`: nothing resolves to a record; "
        "`tampered`: altered after signing, a replaced mark, a record or log that does not check out; `forged`: the "
        "mark names a record but the picture is another one (a copied mark); `untrusted`: a manifest claiming to be "
        "ours, signed outside the trust list"
    )
    image_sha256: str = Field(description="SHA-256 of the submitted file")
    record_owner: Literal["you", "another_account"] | None = Field(
        description="whose image the record says this is (null without a record)"
    )
    c2pa: C2paOut
    watermark: WatermarkOut
    record: RecordOut | None
    match: MatchOut
    log: LogProofOut
    problems: list[str]
    media: dict[str, Any] | None = Field(
        None, description="a clip (MP4, WebM, GIF): its container, size, frames checked and frames whose mark decoded"
    )


# ------------------------------------------------------------------------------------------ records


class RecordCreate(BaseModel):
    """An output rendered on the person's device, to be marked, signed and logged here (JSON form; the multipart
    form sends the same fields, ``image`` as a file part). Only the output: never the selfie or the identity."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        min_length=1, description="the output image, base64 (JSON) — or a file part (multipart)",
        json_schema_extra=BASE64,
    )
    profile_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="the content hash of the taste profile it was rendered from"
    )
    engine: str = Field("look", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    engine_version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._+-]+$")
    seed: int = Field(ge=0, lt=2**53, description="the variation's seed")
    prompt: str = Field("", max_length=2000, description="the prompt (the record keeps only its keyed hash)")
    board_id: str | None = Field(
        None, min_length=1, max_length=32, description="the board whose taste it was drawn in (must be yours)"
    )
    output_format: Literal["png", "jpeg", "webp"] | None = Field(
        None, description="the format of the marked image (default: the uploaded image's)"
    )


class RegisteredImageOut(BaseModel):
    media_type: str
    width: int
    height: int
    bytes: int
    sha256: str = Field(description="SHA-256 of the file")
    b64: str = Field(description="the marked, signed image file, base64")


class RecordRegisteredOut(BaseModel):
    """A registered output: its record (``rendered_on: device``) and the marked image to keep and share."""

    record_id: str = Field(description="the record id the watermark carries (10 hex digits)")
    log_index: int = Field(description="the record's entry in the transparency log")
    record: RecordOut
    image: RegisteredImageOut


# ------------------------------------------------------------------------------------------ account


class AccountDeletedOut(BaseModel):
    account_id: str
    deleted: dict[str, int] = Field(description="what was removed, by kind")
    kept: dict[str, int] = Field(description="what stays: hash-only audit entries naming the account")
    note: str


# ------------------------------------------------------------------------------------------ usage, health


class Counter(BaseModel):
    used: int
    limit: int
    remaining: int


class WindowLimit(BaseModel):
    limit: int
    remaining: int
    window_seconds: int
    reset_in_seconds: int


class UsageOut(BaseModel):
    account_id: str
    tier: str
    period: str = Field(description="calendar month (UTC), YYYY-MM")
    period_start: datetime
    period_end: datetime
    images: Counter
    generations: int
    styleembed_calls: int
    active_jobs: Counter
    rate_limits: dict[str, WindowLimit]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: Literal["ok", "error"]
    jobs: dict[str, int]
