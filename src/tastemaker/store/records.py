"""What the store hands out and takes in: plain records, the same whatever backend keeps them.

A record is a snapshot, not a live row: changing one changes nothing stored (the one exception is
:meth:`~tastemaker.store.protocol.StoreSession.move_job`, which updates the job record it moved). Image bytes
never appear here: pins and outputs name their blob by SHA-256 (see :mod:`tastemaker.store.blobs`); selfies
are never stored at all, a job keeps only the selfie's hash.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..boards import Pin

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A random, unguessable id like ``brd_5k2m...`` (100 bits): ids are not enumerable across accounts."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def utcnow() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------------------- accounts, keys


@dataclass
class Account:
    id: str
    name: str
    tier: str
    created_at: datetime


@dataclass
class ApiKey:
    """An API key as stored: its hash is all the store knows of it; ``scopes`` are space-separated."""

    id: str
    account_id: str
    name: str
    prefix: str
    scopes: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    account: Account


@dataclass
class WebSession:
    """A browser's signed-in session (the web app): the cookie carries a random token, the store only its
    SHA-256; the session acts with the API key it was opened with, so revoking the key ends it too."""

    id: str
    account_id: str
    key_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass
class DeletedAccount:
    """What deleting an account removed: counts per kind, the board ids, and the blobs to check."""

    counts: dict[str, int]
    board_ids: list[str]
    blob_candidates: list[str]


# ----------------------------------------------------------------------------------------- boards and pins


@dataclass(frozen=True)
class StoredPin:
    """A pin on a stored board: the core :class:`~tastemaker.boards.Pin` (its ``sha256`` names the image's blob)
    and the image's size in bytes."""

    pin: Pin
    byte_size: int


@dataclass
class Board:
    """A board; its taste profile is cached with the revision it was built from (pins bump the revision).

    ``pins`` is None unless they were asked for (``get_board(..., with_pins=True)``, or a create or add)."""

    id: str
    account_id: str
    name: str
    revision: int
    created_at: datetime
    updated_at: datetime
    profile_revision: int | None
    profile_hash: str | None
    pins: list[StoredPin] | None = None

    @property
    def profile_is_current(self) -> bool:
        """The cached profile was built from this revision."""
        return self.profile_revision == self.revision and self.profile_hash is not None


@dataclass(frozen=True)
class BoardProfile:
    """A board's cached profile, read fresh: the TasteProfile JSON and the ready-made /v1/styleembed body of
    ``profile_revision`` (None until built; the body stays None until its private release is asked for)."""

    revision: int
    profile_revision: int | None
    profile_hash: str | None
    profile_json: str | None
    styleembed_json: str | None


@dataclass
class ProfileVersion:
    """One kept version of a board's profile (see ``POST /v1/feedback``); ``event`` holds ids, hashes and small
    scalars only. ``profile_json`` is None when the listing did not load it."""

    account_id: str
    board_id: str
    board_revision: int
    version: int
    profile_hash: str
    event: dict[str, Any]
    created_at: datetime
    profile_json: str | None = None


# ----------------------------------------------------------------------------------------- jobs

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
#: The job state machine: every allowed move. Anything else is a bug and raises.
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


@dataclass
class JobImage:
    """One output image of a job: its blob's hash, format, size and the image's provenance record."""

    k: int
    sha256: str
    media_type: str
    width: int
    height: int
    byte_size: int
    record: dict[str, Any]


@dataclass
class Job:
    """A generation job: ``queued -> running -> succeeded | failed | cancelled`` (:data:`TRANSITIONS`)."""

    id: str
    account_id: str
    board_id: str | None
    status: str
    request: dict[str, Any]
    n_images: int
    profile_hash: str
    selfie_sha256: str
    progress: dict[str, Any]
    error_code: str | None
    error_message: str | None
    usage_period: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    images: list[JobImage] = field(default_factory=list)
    #: queue mode only (see :mod:`tastemaker.jobs.queue`): the worker running the job and until when its lease
    #: holds, how many workers have taken it, and the outputs whose provenance records are being logged
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0
    staged: list[Any] | None = None


# ----------------------------------------------------------------------------------------- usage


def period_of(when: datetime) -> str:
    """The usage period (calendar month, UTC) a moment falls in."""
    return when.astimezone(UTC).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = (int(x) for x in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass
class Usage:
    """Per-account, per-calendar-month (UTC) counters; ``images`` is the quota'd one, reserved at submit."""

    account_id: str
    period: str
    images: int = 0
    generations: int = 0
    styleembed: int = 0


# ----------------------------------------------------------------------------------------- idempotency keys

IN_PROGRESS, DONE = "in_progress", "done"


@dataclass
class IdempotencyRecord:
    """``Idempotency-Key`` bookkeeping: one per (account, key) while it is remembered."""

    account_id: str
    key: str
    endpoint: str
    fingerprint: str
    state: str  # IN_PROGRESS | DONE
    response_status: int | None
    response_body: dict[str, Any] | None
    resource_id: str | None
    created_at: datetime
    expires_at: datetime


# ----------------------------------------------------------------------------------------- audit trail


@dataclass(frozen=True)
class AuditEntry:
    """An append-only, hash-chained audit record: ids and hashes only (see :mod:`tastemaker.audit`)."""

    seq: int
    at: str
    account_id: str | None
    action: str
    objects: dict[str, Any]
    request_id: str | None
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditHead:
    """The chain's head: last seq and hash, MAC'd so truncating the log is detectable."""

    seq: int
    hash: str
    mac: str
