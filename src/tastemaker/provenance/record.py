"""The provenance record: what one output was made from, as hashes, with one canonical byte form.

The canonical JSON (sorted keys, no whitespace, UTF-8, integers only below 2**53, so it is also
RFC 8785 / JCS output) is what goes into the transparency-log leaf and into the C2PA assertion;
anyone can re-serialise a record and get the same bytes, hence the same leaf hash.

``record_id`` is the 40-bit number the watermark carries, so a stripped, re-encoded copy of the
image still resolves to this record. ``image_sha256`` is over the *marked pixels*
(:func:`pixels_sha256`), not the file: the file only exists after the C2PA manifest (which
contains this record) is embedded, and pixel hashing is stable across PNG/WebP containers.
No prompt text or selfie bytes are stored: only SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import ProvenanceInputError
from .watermark import PAYLOAD_BITS

SCHEMA = "tastemaker.record/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_MAX_SAFE_INT = 2**53 - 1


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
    """One output's provenance. Validated on construction; immutable."""

    record_id: int
    account: str
    created_at: str
    prompt_sha256: str
    profile_hash: str
    engine: str
    engine_version: str
    seed: int
    image_sha256: str
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.record_id, int) or not 0 <= self.record_id < 1 << PAYLOAD_BITS:
            problems.append(f"record_id must be an int in [0, 2**{PAYLOAD_BITS}), got {self.record_id!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= _MAX_SAFE_INT:
            problems.append(f"seed must be an int in [0, 2**53), got {self.seed!r}")
        for name in ("prompt_sha256", "image_sha256"):
            if not _HEX64.match(str(getattr(self, name))):
                problems.append(f"{name} must be 64 lowercase hex characters")
        for name in ("account", "profile_hash", "engine", "engine_version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > 256:
                problems.append(f"{name} must be a non-empty string of at most 256 characters")
        if not isinstance(self.created_at, str) or not _TIME.match(self.created_at):
            problems.append(f"created_at must look like 2026-01-31T12:00:00.000Z, got {self.created_at!r}")
        if self.schema != SCHEMA:
            problems.append(f"schema must be {SCHEMA!r}, got {self.schema!r}")
        if problems:
            raise ProvenanceInputError("invalid provenance record: " + "; ".join(problems))

    @classmethod
    def create(
        cls,
        *,
        account: str,
        prompt: str,
        profile_hash: str,
        engine: str,
        engine_version: str,
        seed: int,
        pixels: np.ndarray,
        record_id: int | None = None,
        created_at: str | None = None,
    ) -> ProvenanceRecord:
        """Build a record from the raw inputs, hashing the prompt and the (marked) pixels."""
        return cls(
            record_id=new_record_id() if record_id is None else record_id,
            account=account,
            created_at=created_at or utc_now(),
            prompt_sha256=sha256_hex(prompt),
            profile_hash=profile_hash,
            engine=engine,
            engine_version=engine_version,
            seed=seed,
            image_sha256=pixels_sha256(pixels),
        )

    @property
    def id_hex(self) -> str:
        """The id as 10 hex digits, the form shown to people and used in URLs."""
        return f"{self.record_id:010x}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
        names = {f.name for f in fields(cls)}
        unknown, missing = set(obj) - names, names - set(obj) - {"schema"}
        if unknown or missing:
            raise ProvenanceInputError(
                f"provenance record fields do not match {SCHEMA}: unknown {sorted(unknown)}, "
                f"missing {sorted(missing)}"
            )
        return cls(**obj)


__all__ = ["SCHEMA", "ProvenanceRecord", "new_record_id", "pixels_sha256", "sha256_hex", "utc_now"]
