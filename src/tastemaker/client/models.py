"""What the client's methods return: the API's response bodies as typed objects.

Every model allows fields it does not name (``extra="allow"``), so a newer server that adds a field never breaks an
older client; nested parts that clients rarely take apart stay plain dicts. These are the client's own models, not
the server's (``tastemaker.api.schemas``), so the client needs nothing of the ``[server]`` extra.
"""

from __future__ import annotations

import base64
import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import build_error


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class PinInfo(_Model):
    id: str
    image: str
    sha256: str
    bytes: int
    saves: int = 0
    clicks: int = 0
    dwell_seconds: float = 0.0
    pinned_at: datetime | None = None
    title: str = ""
    tags: list[str] = []
    source: str = ""


class SkippedUpload(_Model):
    image: str
    reason: str
    code: str = "skipped"


class BoardInfo(_Model):
    id: str
    name: str
    revision: int
    n_pins: int
    created_at: datetime
    updated_at: datetime
    profile: dict[str, Any] | None = None
    pins: list[PinInfo] = []
    skipped: list[SkippedUpload] = []


class PinsAdded(_Model):
    board: BoardInfo
    added: list[PinInfo]
    skipped: list[SkippedUpload] = []


class StyleEmbed(_Model):
    """A board's differentially private taste release: its modes and the portable profile (``profile``)."""

    board_id: str
    board_revision: int
    encoder: dict[str, str] = {}
    feature_names: list[str] = []
    modes: list[dict[str, Any]] = []
    pins: list[dict[str, Any]] = []
    profile: dict[str, Any]
    privacy: dict[str, Any] | None = None


class Progress(_Model):
    stage: str
    done: int
    total: int
    fraction: float


class JobError(_Model):
    code: str
    message: str
    retryable: bool = False


class OutputImage(_Model):
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


class Generation(_Model):
    """A generation job as the server reports it (``status`` moves queued -> running -> an end)."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: Progress
    board_id: str | None = None
    profile_hash: str
    request: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: JobError | None = None
    images: list[OutputImage] = []
    links: dict[str, str] = {}

    @property
    def done(self) -> bool:
        """The job has ended (succeeded, failed or cancelled)."""
        return self.status in ("succeeded", "failed", "cancelled")

    def raise_for_status(self) -> Generation:
        """This generation if it succeeded; its error (the library's class for its code) if it failed or was
        cancelled."""
        if self.status == "succeeded":
            return self
        if self.status == "cancelled":
            raise build_error("job_finished", f"generation {self.id} was cancelled before it finished")
        if self.error is None:
            raise build_error("not_ready", f"generation {self.id} is {self.status}")
        raise build_error(self.error.code, self.error.message)


class FeedbackResult(_Model):
    board_id: str
    board_revision: int
    version: int
    previous_profile_hash: str
    profile_hash: str
    action: str
    mode: str
    mode_source: str
    image_sha256: str
    generation_id: str | None = None
    image_index: int | None = None
    dwell_seconds: float = 0.0


class ProfileHistory(_Model):
    board_id: str
    board_revision: int
    profile_hash: str | None = None
    versions: list[dict[str, Any]] = []


class VerifyResult(_Model):
    """Where an image came from. ``record["rendered_on"] == "device"``: rendered on a person's device and
    registered with the server (which did not watch it being made)."""

    verdict: Literal["verified", "not_ours", "tampered", "forged", "untrusted"]
    image_sha256: str
    record_owner: str | None = None
    c2pa: dict[str, Any] = {}
    watermark: dict[str, Any] = {}
    record: dict[str, Any] | None = None
    match: dict[str, Any] = {}
    log: dict[str, Any] = {}
    problems: list[str] = []

    @property
    def rendered_on(self) -> str | None:
        """``"device"`` for an output rendered on a person's device and registered; None otherwise."""
        return None if self.record is None else self.record.get("rendered_on")


class RegisteredImage(_Model):
    media_type: str
    width: int
    height: int
    size: int = Field(alias="bytes")
    sha256: str
    b64: str

    @property
    def data(self) -> builtins.bytes:
        """The marked, signed image file."""
        return base64.b64decode(self.b64)


class RegisteredRecord(_Model):
    """An output rendered on the device, registered: its record and the marked image to keep."""

    record_id: str
    log_index: int
    record: dict[str, Any]
    image: RegisteredImage


class Counter(_Model):
    used: int
    limit: int
    remaining: int


class Usage(_Model):
    account_id: str
    tier: str
    period: str
    period_start: datetime
    period_end: datetime
    images: Counter
    generations: int
    styleembed_calls: int
    active_jobs: Counter
    rate_limits: dict[str, dict[str, int]] = {}


class AccountDeleted(_Model):
    account_id: str
    deleted: dict[str, int]
    kept: dict[str, int]
    note: str = ""


@dataclass
class LocalImage:
    """One output of an on-device generation: the file to keep (marked by the server when registered, else by
    this device's own provenance store) and what was measured of it here."""

    index: int
    data: bytes
    media_type: str
    width: int
    height: int
    seed: int
    mode: str
    identity_distance: float
    style_score: float
    registered: bool
    record_id: str
    record: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalGeneration:
    """An on-device generation: what was rendered here from the board's taste, and how each output was marked."""

    board_id: str
    request: dict[str, Any]
    profile_hash: str
    engine: str
    engine_version: str
    images: list[LocalImage]
    notes: list[str]
    timings: dict[str, float]


__all__ = [
    "AccountDeleted",
    "BoardInfo",
    "Counter",
    "FeedbackResult",
    "Generation",
    "JobError",
    "LocalGeneration",
    "LocalImage",
    "OutputImage",
    "PinInfo",
    "PinsAdded",
    "ProfileHistory",
    "Progress",
    "RegisteredImage",
    "RegisteredRecord",
    "SkippedUpload",
    "StyleEmbed",
    "Usage",
    "VerifyResult",
]
