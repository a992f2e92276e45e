"""The provenance record: what one output was made from, as hashes, with one canonical byte form.

The canonical JSON (sorted keys, no whitespace, UTF-8, integers only below 2**53, so it is also
RFC 8785 / JCS output) is what goes into the transparency-log leaf and into the C2PA assertion;
anyone can re-serialise a record and get the same bytes, hence the same leaf hash.

``record_id`` is the 40-bit number the watermark carries, so a stripped, re-encoded copy of the
image still resolves to this record. ``image_sha256`` is over the *marked pixels*
(:func:`pixels_sha256`), not the file: the file only exists after the C2PA manifest (which
contains this record) is embedded, and pixel hashing is stable across PNG/WebP containers.
No prompt text or selfie bytes are stored.

Schema v2 (what new outputs get) differs from v1 in what a verifier can learn or fake:

* ``prompt_hmac`` replaces ``prompt_sha256``: the prompt keyed with the store's secret, so nobody can test
  guessed prompts against a record (an unsalted SHA-256 of a short prompt is a dictionary lookup away);
* ``account`` is the store's pseudonym of the account (:meth:`StoreKeys.pseudonym`), never the raw id;
* ``fingerprint`` describes the picture itself (:mod:`.fingerprint`), so ``verify`` can tell the record's
  picture from another picture that carries a copied mark.

v1 records (already in logs) still parse, byte for byte, so their inclusion proofs keep working.

``rendered_on`` (v2, optional) is ``"device"`` for an output the person rendered on their own device and then
registered with a service (``POST /v1/records``): the service marked, signed and logged it, but did not watch it
being made, so its engine, seed and profile hash are what the device reported. Absent means the store's own
pipeline made the image; records without it keep their bytes.

``clip`` (v2, optional) says the record is a short motion clip (:mod:`tastemaker.clips`), not a still:
``{"duration_ms", "fps", "frames", "width", "height", "format", "of"}`` (integers only, so the canonical form
stays JCS; ``of`` is the id of the still it was made from), and optionally ``mark_scale`` (2: the mark was
embedded at half the frame's size and enlarged, so that a half-size re-encode keeps it; the verifier lines the
picture up at 1/``mark_scale`` of the mark's detected scale). ``image_sha256`` and ``fingerprint`` then describe
the clip's marked key picture (the composite its layers were cut from), which every frame shows moved.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import ProvenanceInputError
from .watermark import PAYLOAD_BITS

SCHEMA = "tastemaker.record/v2"
SCHEMA_V1 = "tastemaker.record/v1"
_FINGERPRINT = re.compile(r"^fp[0-9]+:[A-Za-z0-9+/=]{8,20000}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_MAX_SAFE_INT = 2**53 - 1
#: where an output was rendered, when it was not by the store's own pipeline
RENDERED_ON = ("device",)
#: what a clip record's ``clip`` object holds
CLIP_FIELDS = {"duration_ms": int, "fps": int, "frames": int, "width": int, "height": int, "format": str, "of": str}
CLIP_FORMATS = ("mp4", "webm", "gif")
#: the mark scales a clip record may name (``mark_scale``, optional: 1 when absent)
MARK_SCALES = (1, 2)


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes, or of a string's UTF-8 encoding."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 over a uint8 image's shape header and raw bytes (container-independent)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ProvenanceInputError(f"expected uint8 pixels (H, W[, C]), got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    head = b"tastemaker.pixels/v1" + struct.pack(">III", h, w, c)
    return hashlib.sha256(head + np.ascontiguousarray(pixels).tobytes()).hexdigest()


def new_record_id() -> int:
    """A random id in the watermark's payload range (the store must check it is unused)."""
    return secrets.randbits(PAYLOAD_BITS)


def utc_now() -> str:
    """RFC 3339 UTC timestamp with milliseconds, the only time format records accept."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class ProvenanceRecord:
    """One output's provenance. Validated on construction; immutable.

    Optional fields are per schema: v2 has ``prompt_hmac`` and ``fingerprint``, v1 ``prompt_sha256``;
    fields a schema does not have are ``None`` and left out of the JSON.
    """

    record_id: int
    account: str
    created_at: str
    profile_hash: str
    engine: str
    engine_version: str
    seed: int
    image_sha256: str
    prompt_hmac: str | None = None
    fingerprint: str | None = None
    prompt_sha256: str | None = None
    schema: str = SCHEMA
    rendered_on: str | None = None
    clip: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        problems = []
        hashes: tuple[str, ...]
        absent: tuple[str, ...]
        if not isinstance(self.record_id, int) or not 0 <= self.record_id < 1 << PAYLOAD_BITS:
            problems.append(f"record_id must be an int in [0, 2**{PAYLOAD_BITS}), got {self.record_id!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= _MAX_SAFE_INT:
            problems.append(f"seed must be an int in [0, 2**53), got {self.seed!r}")
        if self.schema == SCHEMA:
            hashes, absent = ("prompt_hmac", "image_sha256"), ("prompt_sha256",)
            if not isinstance(self.fingerprint, str) or not _FINGERPRINT.match(self.fingerprint):
                problems.append("fingerprint must be an encoded image fingerprint (fp<version>:<base64>)")
        elif self.schema == SCHEMA_V1:
            hashes, absent = ("prompt_sha256", "image_sha256"), ("prompt_hmac", "fingerprint")
        else:
            hashes, absent = (), ()
            problems.append(f"schema must be {SCHEMA!r} (or the older {SCHEMA_V1!r}), got {self.schema!r}")
        for name in hashes:
            if not _HEX64.match(str(getattr(self, name))):
                problems.append(f"{name} must be 64 lowercase hex characters")
        if self.rendered_on is not None and (self.schema != SCHEMA or self.rendered_on not in RENDERED_ON):
            problems.append(f"rendered_on must be one of {', '.join(RENDERED_ON)} (schema v2), "
                            f"got {self.rendered_on!r}")
        if self.clip is not None:
            problems.extend(_clip_problems(self.clip, self.schema))
        for name in absent:
            if getattr(self, name) is not None:
                problems.append(f"{name} is not a field of {self.schema}")
        for name in ("account", "profile_hash", "engine", "engine_version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > 256:
                problems.append(f"{name} must be a non-empty string of at most 256 characters")
        if not isinstance(self.created_at, str) or not _TIME.match(self.created_at):
            problems.append(f"created_at must look like 2026-01-31T12:00:00.000Z, got {self.created_at!r}")
        if problems:
            raise ProvenanceInputError("invalid provenance record: " + "; ".join(problems))

    @classmethod
    def create(
        cls,
        *,
        account: str,
        prompt_hmac: str,
        profile_hash: str,
        engine: str,
        engine_version: str,
        seed: int,
        pixels: np.ndarray,
        fingerprint: str,
        record_id: int | None = None,
        created_at: str | None = None,
        rendered_on: str | None = None,
        clip: dict[str, Any] | None = None,
    ) -> ProvenanceRecord:
        """Build a v2 record; the caller (the store, which holds the keys) supplies the keyed values."""
        return cls(
            record_id=new_record_id() if record_id is None else record_id,
            account=account,
            created_at=created_at or utc_now(),
            prompt_hmac=prompt_hmac,
            profile_hash=profile_hash,
            engine=engine,
            engine_version=engine_version,
            seed=seed,
            image_sha256=pixels_sha256(pixels),
            fingerprint=fingerprint,
            rendered_on=rendered_on,
            clip=clip,
        )

    @property
    def id_hex(self) -> str:
        """The id as 10 hex digits, the form shown to people and used in URLs."""
        return f"{self.record_id:010x}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def canonical_json(self) -> bytes:
        """The exact bytes hashed into the log leaf (JCS-compatible)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ProvenanceRecord:
        """Parse canonical JSON; refuses unknown or missing fields rather than guessing."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProvenanceInputError(f"provenance record is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProvenanceInputError("provenance record must be a JSON object")
        schema = obj.get("schema", SCHEMA_V1)
        wanted = _FIELDS_V1 if schema == SCHEMA_V1 else _FIELDS_V2
        unknown, missing = set(obj) - wanted, wanted - set(obj) - {"schema", "rendered_on", "clip"}
        if unknown or missing:
            raise ProvenanceInputError(
                f"provenance record fields do not match {schema}: unknown {sorted(unknown)}, "
                f"missing {sorted(missing)}"
            )
        return cls(**{**obj, "schema": schema})


def _clip_problems(clip: Any, schema: str) -> list[str]:
    """What is wrong with a record's ``clip`` object (empty: nothing)."""
    if schema != SCHEMA or not isinstance(clip, dict):
        return ["clip must be an object (schema v2)"]
    out = []
    if set(clip) - {"mark_scale"} != set(CLIP_FIELDS):
        out.append(f"clip must hold exactly {', '.join(sorted(CLIP_FIELDS))} (and optionally mark_scale)")
    if "mark_scale" in clip and (type(clip["mark_scale"]) is not int or clip["mark_scale"] not in MARK_SCALES):
        out.append(f"clip.mark_scale must be one of {', '.join(map(str, MARK_SCALES))}")
    for name, kind in CLIP_FIELDS.items():
        value = clip.get(name)
        if kind is int and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= _MAX_SAFE_INT):
            out.append(f"clip.{name} must be a positive integer")
        if kind is str and (not isinstance(value, str) or len(value) > 64):
            out.append(f"clip.{name} must be a short string")
    if clip.get("format") not in CLIP_FORMATS:
        out.append(f"clip.format must be one of {', '.join(CLIP_FORMATS)}")
    return out


_OPTIONAL = {"prompt_hmac", "fingerprint", "prompt_sha256", "rendered_on", "clip"}
_COMMON = {f.name for f in fields(ProvenanceRecord)} - _OPTIONAL
_FIELDS_V2 = _COMMON | {"prompt_hmac", "fingerprint", "rendered_on", "clip"}
_FIELDS_V1 = _COMMON | {"prompt_sha256"}


__all__ = ["CLIP_FIELDS", "CLIP_FORMATS",
           "RENDERED_ON", "SCHEMA", "SCHEMA_V1", "ProvenanceRecord", "new_record_id", "pixels_sha256", "sha256_hex",
           "utc_now"]
