"""The service's tables (SQLAlchemy 2 declarative). Alembic migrations in ``migrations/`` create the same
schema; ``tests/api/test_store.py`` asserts that they match.

Every row an API caller can see has an ``account_id``; repositories always filter by it, so another
account's id is simply not found. Image bytes never live in the database: pins and outputs refer to
blobs by SHA-256 (see :mod:`tastemaker.store.blobs`). Selfies are never stored at all; a job keeps only
the selfie's hash, for the audit trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ...api.keys import ALL_SCOPES
from ..records import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="account", passive_deletes=True)


class ApiKey(Base):
    """Only the SHA-256 of a key is stored; the display prefix (``tm_`` + 8) helps people tell keys apart, and
    the scopes say what it may do."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: space-separated scopes (see :mod:`tastemaker.api.keys`); keys from before scopes existed have them all
    scopes: Mapped[str] = mapped_column(String(200), default=ALL_SCOPES, server_default=ALL_SCOPES)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship(back_populates="keys")


class WebSession(Base):
    """A web app session: ``token_hash`` is the SHA-256 of the cookie's random token (the token itself is
    never stored); the session acts with ``key_id``'s scopes and ends with it."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Board(Base):
    """A board; its taste profile is cached with the revision it was built from (pins bump the revision)."""

    __tablename__ = "boards"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    profile_revision: Mapped[int | None]
    profile_hash: Mapped[str | None] = mapped_column(String(64))
    #: the TasteProfile JSON and the ready-made /v1/styleembed body, both for ``profile_revision``
    profile_json: Mapped[str | None] = mapped_column(Text, deferred=True)
    styleembed_json: Mapped[str | None] = mapped_column(Text, deferred=True)

    pins: Mapped[list[PinRecord]] = relationship(
        back_populates="board", order_by="PinRecord.position", passive_deletes=True
    )


class PinRecord(Base):
    """One pin: engagement plus the SHA-256 of its image blob."""

    __tablename__ = "pins"

    board_id: Mapped[str] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int]
    image: Mapped[str] = mapped_column(String(255))
    byte_size: Mapped[int]
    saves: Mapped[int] = mapped_column(default=0)
    clicks: Mapped[int] = mapped_column(default=0)
    dwell_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    pinned_at: Mapped[datetime | None]
    title: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    board: Mapped[Board] = relationship(back_populates="pins")

    __table_args__ = (Index("ix_pins_sha256", "sha256"),)


class ProfileVersion(Base):
    """One version of a board's taste profile, kept once feedback has changed it (``POST /v1/feedback``).

    The board row holds the current profile (what generations use); this table holds every version since
    the first reaction: the one it started from (``event.kind == "built"``), one per reaction
    (``"feedback"``), and one per rebuild after pins were added (``"rebuilt"``: the reactions replayed
    onto the new board's modes). ``event`` holds ids, hashes and small scalars only.
    """

    __tablename__ = "profile_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    board_id: Mapped[str] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), index=True)
    board_revision: Mapped[int]
    version: Mapped[int]
    profile_hash: Mapped[str] = mapped_column(String(64))
    profile_json: Mapped[str] = mapped_column(Text, deferred=True)
    event: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("board_id", "version", name="uq_profile_versions_board_version"),)


class Job(Base):
    """A generation job: ``queued -> running -> succeeded | failed | cancelled`` (see :mod:`tastemaker.jobs`)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    board_id: Mapped[str | None] = mapped_column(ForeignKey("boards.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    request: Mapped[dict[str, Any]]
    n_images: Mapped[int]
    profile_hash: Mapped[str] = mapped_column(String(64))
    selfie_sha256: Mapped[str] = mapped_column(String(64))
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    usage_period: Mapped[str] = mapped_column(String(7))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: queue mode (see :mod:`tastemaker.jobs.queue`): the worker holding the job while it runs, until when (its
    #: heartbeat renews it), how many workers have taken it, and the outputs whose provenance is being logged
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    staged: Mapped[list[Any] | None] = mapped_column(JSON)

    images: Mapped[list[JobImage]] = relationship(back_populates="job", order_by="JobImage.k", passive_deletes=True)


class JobInput(Base):
    """What a queued job needs that no other row keeps (the selfie among it), sealed (encrypted and
    authenticated, :mod:`tastemaker.jobs.sealed`); only in queue mode, and only until the job ends."""

    __tablename__ = "job_inputs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobImage(Base):
    __tablename__ = "job_images"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    k: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int]
    height: Mapped[int]
    byte_size: Mapped[int]
    record: Mapped[dict[str, Any]]

    job: Mapped[Job] = relationship(back_populates="images")

    __table_args__ = (Index("ix_job_images_sha256", "sha256"),)


class IdempotencyRecord(Base):
    """``Idempotency-Key`` bookkeeping: one row per (account, key) while it is remembered."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    response_status: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resource_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("account_id", "key", name="uq_idempotency_keys_account_key"),)


class Usage(Base):
    """Per-account, per-calendar-month (UTC) counters; ``images`` is the quota'd one, reserved at submit."""

    __tablename__ = "usage"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    images: Mapped[int] = mapped_column(default=0)
    generations: Mapped[int] = mapped_column(default=0)
    styleembed: Mapped[int] = mapped_column(default=0)


class AuditEntry(Base):
    """An append-only, hash-chained audit record: ids and hashes only (see :mod:`tastemaker.audit`).

    ``account_id`` is deliberately not a foreign key: the trail outlives what it describes.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str | None] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64))
    objects: Mapped[dict[str, Any]]
    request_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head (single row): last seq and hash, MAC'd so truncating the log is detectable."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
