"""Repositories: every query the service makes, each one scoped to an account where a caller can see it.

Functions take a :class:`~sqlalchemy.orm.Session` and leave committing to the caller (one request, one
transaction), except where a row must be visible to concurrent requests at once (idempotency keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, undefer

from ..api.keys import ALL_SCOPES
from ..boards import Pin
from ..errors import NotFoundError, StoreError
from .models import (
    Account,
    ApiKey,
    AuditEntry,
    Board,
    IdempotencyRecord,
    Job,
    JobImage,
    PinRecord,
    ProfileVersion,
    Usage,
    new_id,
    utcnow,
)

# ----------------------------------------------------------------------------------------- accounts, keys


def create_account(s: Session, name: str, tier: str) -> Account:
    account = Account(id=new_id("acc"), name=name, tier=tier, created_at=utcnow())
    s.add(account)
    return account


def get_account(s: Session, account_id: str) -> Account | None:
    return s.get(Account, account_id)


def add_key(
    s: Session, account: Account, *, name: str, key_hash: str, prefix: str, scopes: str = ALL_SCOPES
) -> ApiKey:
    key = ApiKey(
        id=new_id("key"),
        account_id=account.id,
        name=name,
        key_hash=key_hash,
        prefix=prefix,
        scopes=scopes,
        created_at=utcnow(),
    )
    s.add(key)
    return key


def find_key(s: Session, key_hash: str) -> ApiKey | None:
    """The key with this hash, with its account loaded (one round trip on the hot path)."""
    return s.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash).options(joinedload(ApiKey.account))).first()


def get_key(s: Session, key_id: str) -> ApiKey | None:
    return s.get(ApiKey, key_id)


def list_keys(s: Session) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).options(selectinload(ApiKey.account)).order_by(ApiKey.created_at)))


def touch_key(s: Session, key: ApiKey, *, every: timedelta = timedelta(minutes=1)) -> None:
    """Record use, at most once a minute (a write per request would serialise SQLite for nothing)."""
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > every:
        s.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        key.last_used_at = now


# ----------------------------------------------------------------------------------------- boards and pins


@dataclass(frozen=True)
class NewPin:
    """A pin ready to store: the core :class:`~tastemaker.boards.Pin` (with its sha256) and its size."""

    pin: Pin
    byte_size: int


def _not_found(kind: str, object_id: str) -> NotFoundError:
    return NotFoundError(f"{kind} {object_id!r} not found (it does not exist or belongs to another account)")


def get_board(s: Session, account_id: str, board_id: str, *, with_pins: bool = False) -> Board:
    """The account's board, or 404 — the same answer whether it does not exist or is someone else's."""
    q = select(Board).where(Board.id == board_id, Board.account_id == account_id)
    if with_pins:
        q = q.options(selectinload(Board.pins))
    board = s.scalars(q).first()
    if board is None:
        raise _not_found("board", board_id)
    return board


def owner_of(s: Session, model: type[Board] | type[Job], object_id: str) -> str | None:
    """Who owns an object (for the audit trail of cross-account probes; never shown to callers)."""
    return s.scalar(select(model.account_id).where(model.id == object_id))


def _pin_record(board_id: str, new: NewPin, position: int) -> PinRecord:
    p = new.pin
    return PinRecord(
        board_id=board_id,
        sha256=p.sha256,
        position=position,
        image=p.image,
        byte_size=new.byte_size,
        saves=p.saves,
        clicks=p.clicks,
        dwell_seconds=p.dwell_seconds,
        pinned_at=p.pinned_at,
        title=p.title,
        tags=list(p.tags),
        source=p.source,
        created_at=utcnow(),
    )


def create_board(s: Session, account_id: str, name: str, pins: Sequence[NewPin]) -> Board:
    now = utcnow()
    board = Board(id=new_id("brd"), account_id=account_id, name=name, revision=1, created_at=now, updated_at=now)
    s.add(board)
    s.flush()
    s.add_all(_pin_record(board.id, p, i) for i, p in enumerate(pins))
    s.flush()
    s.refresh(board, ["pins"])
    return board


def add_pins(s: Session, board: Board, pins: Sequence[NewPin]) -> tuple[list[PinRecord], list[NewPin]]:
    """Add pins to a board; pins whose image is already on it are returned as skipped, not duplicated.

    Bumps the board's revision (so its cached profile goes stale) when anything was added. The board row
    is locked first, so concurrent additions get distinct positions.
    """
    s.execute(update(Board).where(Board.id == board.id).values(updated_at=utcnow()))
    existing = set(s.scalars(select(PinRecord.sha256).where(PinRecord.board_id == board.id)))
    start = s.scalar(select(func.coalesce(func.max(PinRecord.position), -1)).where(PinRecord.board_id == board.id))
    added: list[PinRecord] = []
    skipped: list[NewPin] = []
    for p in pins:
        if p.pin.sha256 in existing:
            skipped.append(p)
            continue
        existing.add(p.pin.sha256)
        rec = _pin_record(board.id, p, int(start if start is not None else -1) + 1 + len(added))
        s.add(rec)
        added.append(rec)
    if added:
        s.execute(update(Board).where(Board.id == board.id).values(revision=Board.revision + 1))
    s.flush()
    s.refresh(board)
    s.refresh(board, ["pins"])
    return added, skipped


def count_pins(s: Session, board_id: str) -> int:
    return int(s.scalar(select(func.count()).select_from(PinRecord).where(PinRecord.board_id == board_id)) or 0)


def delete_board(s: Session, board: Board) -> list[str]:
    """Delete a board, its pins, its profile versions and the idempotency records that name it (a replayed
    create must not hand back the deleted board's pins); returns the blob hashes that may now be unreferenced."""
    shas = list(s.scalars(select(PinRecord.sha256).where(PinRecord.board_id == board.id)))
    release_idempotency_for(s, board.account_id, board.id)
    s.execute(delete(ProfileVersion).where(ProfileVersion.board_id == board.id))
    s.execute(delete(PinRecord).where(PinRecord.board_id == board.id))
    s.execute(update(Job).where(Job.board_id == board.id).values(board_id=None))
    s.execute(delete(Board).where(Board.id == board.id))
    return shas


def unreferenced(s: Session, shas: Iterable[str]) -> list[str]:
    """Which of these blobs no pin and no generated image refers to any more."""
    wanted = set(shas)
    if not wanted:
        return []
    used = set(s.scalars(select(PinRecord.sha256).where(PinRecord.sha256.in_(wanted))))
    used |= set(s.scalars(select(JobImage.sha256).where(JobImage.sha256.in_(wanted))))
    return sorted(wanted - used)


def save_profile(
    s: Session, board: Board, *, revision: int, profile_json: str, profile_hash: str, styleembed_json: str | None
) -> bool:
    """Cache a profile built from ``revision``; a no-op (False) if pins were added meanwhile, or if another
    request already cached one for this revision (it may since have taken feedback: never overwrite it).
    ``styleembed_json`` is None until the revision's private release is asked for (:func:`save_styleembed`)."""
    res = s.execute(
        update(Board)
        .where(
            Board.id == board.id,
            Board.revision == revision,
            or_(Board.profile_revision.is_(None), Board.profile_revision != revision),
        )
        .values(
            profile_revision=revision,
            profile_json=profile_json,
            profile_hash=profile_hash,
            styleembed_json=styleembed_json,
        )
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def save_styleembed(s: Session, board_id: str, *, revision: int, styleembed_json: str) -> bool:
    """Cache the /v1/styleembed body (the private release) of ``revision``'s profile, once: False if the board
    moved on, or another request published this revision's release first (then that one is the answer)."""
    res = s.execute(
        update(Board)
        .where(
            Board.id == board_id,
            Board.revision == revision,
            Board.profile_revision == revision,
            Board.styleembed_json.is_(None),
        )
        .values(styleembed_json=styleembed_json)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BoardProfile:
    """A board's cached profile columns, read fresh (not from the session's identity map)."""

    revision: int
    profile_revision: int | None
    profile_hash: str | None
    profile_json: str | None
    styleembed_json: str | None


def lock_board(s: Session, board_id: str) -> None:
    """Take the board row's write lock (PostgreSQL row lock; SQLite's write lock) for a read-modify-write."""
    s.execute(update(Board).where(Board.id == board_id).values(revision=Board.revision))


def read_board_profile(s: Session, board_id: str) -> BoardProfile | None:
    row = s.execute(
        select(Board.revision, Board.profile_revision, Board.profile_hash, Board.profile_json, Board.styleembed_json)
        .where(Board.id == board_id)
        .execution_options(populate_existing=True)
    ).first()
    return None if row is None else BoardProfile(*row)


def set_board_profile(
    s: Session, board_id: str, *, revision: int, profile_json: str, profile_hash: str, styleembed_json: str | None
) -> bool:
    """Replace the cached profile of ``revision`` (feedback); False if the board has moved on meanwhile."""
    res = s.execute(
        update(Board)
        .where(Board.id == board_id, Board.revision == revision, Board.profile_revision == revision)
        .values(profile_json=profile_json, profile_hash=profile_hash, styleembed_json=styleembed_json)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def latest_profile_version(s: Session, board_id: str) -> ProfileVersion | None:
    """The newest kept version of a board's profile (with its JSON), or None if it never took feedback."""
    return s.scalars(
        select(ProfileVersion)
        .where(ProfileVersion.board_id == board_id)
        .options(undefer(ProfileVersion.profile_json))
        .order_by(ProfileVersion.version.desc())
        .limit(1)
    ).first()


def profile_versions(s: Session, board_id: str) -> list[ProfileVersion]:
    """Every kept version of a board's profile, oldest first (without the JSON)."""
    return list(
        s.scalars(select(ProfileVersion).where(ProfileVersion.board_id == board_id).order_by(ProfileVersion.version))
    )


def revision_hashes(s: Session, board_id: str, revision: int) -> set[str]:
    """Hashes of every kept profile version built from this board revision."""
    q = select(ProfileVersion.profile_hash).where(
        ProfileVersion.board_id == board_id, ProfileVersion.board_revision == revision
    )
    return set(s.scalars(q))


def add_profile_version(
    s: Session,
    *,
    account_id: str,
    board_id: str,
    board_revision: int,
    version: int,
    profile_hash: str,
    profile_json: str,
    event: dict[str, Any],
) -> ProfileVersion:
    row = ProfileVersion(
        account_id=account_id,
        board_id=board_id,
        board_revision=board_revision,
        version=version,
        profile_hash=profile_hash,
        profile_json=profile_json,
        event=event,
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return row


# ----------------------------------------------------------------------------------------- jobs

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED)
#: The job state machine: every allowed move. Anything else is a bug and raises.
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
}


def create_job(
    s: Session,
    *,
    account_id: str,
    board_id: str | None,
    request: dict[str, Any],
    n_images: int,
    profile_hash: str,
    selfie_sha256: str,
    usage_period: str,
) -> Job:
    job = Job(
        id=new_id("gen"),
        account_id=account_id,
        board_id=board_id,
        status=QUEUED,
        request=request,
        n_images=n_images,
        profile_hash=profile_hash,
        selfie_sha256=selfie_sha256,
        progress={"stage": "queued", "done": 0, "total": 0, "fraction": 0.0},
        usage_period=usage_period,
        created_at=utcnow(),
    )
    s.add(job)
    return job


def get_job(s: Session, account_id: str, job_id: str) -> Job:
    job = s.scalars(
        select(Job).where(Job.id == job_id, Job.account_id == account_id).options(selectinload(Job.images))
    ).first()
    if job is None:
        raise _not_found("generation", job_id)
    return job


def load_job(s: Session, job_id: str) -> Job | None:
    """A job by id alone: for the worker, never for a request handler."""
    return s.scalars(select(Job).where(Job.id == job_id).options(selectinload(Job.images))).first()


def count_active_jobs(s: Session, account_id: str) -> int:
    q = select(func.count()).select_from(Job).where(Job.account_id == account_id, Job.status.in_(ACTIVE))
    return int(s.scalar(q) or 0)


def active_jobs(s: Session) -> list[Job]:
    return list(s.scalars(select(Job).where(Job.status.in_(ACTIVE)).order_by(Job.created_at)))


def move_job(s: Session, job: Job, to: str, **fields: Any) -> bool:
    """Move a job along the state machine, atomically: the UPDATE only matches the state we came from.

    Returns False (and changes nothing) if another actor moved it first, e.g. restart recovery failing
    a job a worker was about to start. An illegal move raises :class:`StoreError`.
    """
    frm = job.status
    if to not in TRANSITIONS[frm]:
        raise StoreError(f"job {job.id}: illegal transition {frm} -> {to}")
    res = s.execute(update(Job).where(Job.id == job.id, Job.status == frm).values(status=to, **fields))
    if not res.rowcount:  # type: ignore[attr-defined]
        s.refresh(job)
        return False
    job.status = to
    for k, v in fields.items():
        setattr(job, k, v)
    return True


def set_progress(s: Session, job_id: str, progress: dict[str, Any]) -> None:
    """Record a running job's progress (ignored once the job has left ``running``)."""
    s.execute(update(Job).where(Job.id == job_id, Job.status == RUNNING).values(progress=progress))


def add_job_image(
    s: Session,
    job: Job,
    *,
    k: int,
    sha256: str,
    media_type: str,
    width: int,
    height: int,
    byte_size: int,
    record: dict[str, Any],
) -> JobImage:
    img = JobImage(
        job_id=job.id,
        k=k,
        sha256=sha256,
        media_type=media_type,
        width=width,
        height=height,
        byte_size=byte_size,
        record=record,
    )
    s.add(img)
    return img


def find_job_image(s: Session, account_id: str, sha256: str) -> tuple[Job, JobImage] | None:
    """This account's generated image with these exact bytes (an upload that is one of its outputs)."""
    row = s.execute(
        select(Job, JobImage)
        .join(JobImage, JobImage.job_id == Job.id)
        .where(JobImage.sha256 == sha256, Job.account_id == account_id, Job.status == SUCCEEDED)
        .order_by(Job.created_at.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


# ----------------------------------------------------------------------------------------- usage and quota


def period_of(when: datetime) -> str:
    """The usage period (calendar month, UTC) a moment falls in."""
    return when.astimezone(UTC).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = (int(x) for x in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _insert(s: Session) -> Any:
    """The dialect's INSERT with ON CONFLICT support (both backends have it)."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert
    if dialect == "sqlite":
        return sqlite_insert
    raise StoreError(f"unsupported database backend {dialect}")  # pragma: no cover


def _ensure_usage(s: Session, account_id: str, period: str) -> None:
    values = {"account_id": account_id, "period": period, "images": 0, "generations": 0, "styleembed": 0}
    s.execute(_insert(s)(Usage).values(**values).on_conflict_do_nothing())


def reserve_images(s: Session, account_id: str, period: str, n: int, quota: int) -> bool:
    """Take ``n`` images from this period's quota, atomically; False if that would exceed it."""
    _ensure_usage(s, account_id, period)
    res = s.execute(
        update(Usage)
        .where(Usage.account_id == account_id, Usage.period == period, Usage.images + n <= quota)
        .values(images=Usage.images + n, generations=Usage.generations + 1)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def release_images(s: Session, account_id: str, period: str, n: int) -> None:
    """Give back a failed job's images (its generation still counts as attempted)."""
    s.execute(
        update(Usage)
        .where(Usage.account_id == account_id, Usage.period == period)
        .values(images=case((Usage.images >= n, Usage.images - n), else_=0))
    )


def count_styleembed(s: Session, account_id: str, period: str) -> None:
    """One upsert: this runs on every /v1/styleembed call."""
    ins = _insert(s)(Usage).values(account_id=account_id, period=period, images=0, generations=0, styleembed=1)
    s.execute(
        ins.on_conflict_do_update(
            index_elements=[Usage.account_id, Usage.period], set_={"styleembed": Usage.styleembed + 1}
        )
    )


def get_usage(s: Session, account_id: str, period: str) -> Usage:
    return s.get(Usage, (account_id, period)) or Usage(
        account_id=account_id, period=period, images=0, generations=0, styleembed=0
    )


# ----------------------------------------------------------------------------------------- idempotency keys

IN_PROGRESS, DONE = "in_progress", "done"


def claim_idempotency_key(
    s: Session, *, account_id: str, key: str, endpoint: str, fingerprint: str, ttl: timedelta
) -> IdempotencyRecord | None:
    """Claim ``key`` for this request, committing at once so concurrent requests see the claim.

    Returns None when the claim is ours (go ahead), or the existing record when the key was used before
    (the caller replays it, or refuses a reuse with a different request). Expired records are replaced.
    """
    now = utcnow()
    for _ in range(3):
        s.add(
            IdempotencyRecord(
                account_id=account_id,
                key=key,
                endpoint=endpoint,
                fingerprint=fingerprint,
                state=IN_PROGRESS,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        try:
            s.commit()
            return None
        except IntegrityError:
            s.rollback()
        existing = s.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key)
        ).first()
        if existing is None:
            continue  # released between our insert and our read: try again
        if existing.expires_at <= now:
            s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id))
            s.commit()
            continue
        return existing
    raise StoreError(f"could not claim idempotency key {key!r}; retry the request")


def finish_idempotency_key(
    s: Session, account_id: str, key: str, *, status: int, body: dict[str, Any] | None, resource_id: str | None
) -> None:
    s.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key)
        .values(state=DONE, response_status=status, response_body=body, resource_id=resource_id)
    )


def release_idempotency_key(s: Session, account_id: str, key: str) -> None:
    """Forget a claim whose request failed (or whose job was lost), so the same key can be retried."""
    s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key))


def release_idempotency_for(s: Session, account_id: str, resource_id: str) -> int:
    """Forget every idempotency record of the account that names ``resource_id`` (a deleted board, a job that
    failed in a way worth retrying), so the same key runs the request again instead of replaying it."""
    res = s.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.account_id == account_id, IdempotencyRecord.resource_id == resource_id
        )
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def purge_expired_idempotency(s: Session) -> int:
    res = s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow()))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------- accounts: forget


@dataclass
class DeletedAccount:
    """What :func:`delete_account` removed: counts per kind, the board ids, and the blobs to check."""

    counts: dict[str, int]
    board_ids: list[str]
    blob_candidates: list[str]


def _count(s: Session, stmt: Any) -> int:
    return int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def delete_account(s: Session, account_id: str) -> DeletedAccount:
    """Delete every row of an account — profile versions, pins, boards, generated images, generations,
    idempotency keys, usage counters, API keys and the account itself — in the caller's transaction.

    Children go first (foreign keys are enforced; nothing relies on ON DELETE CASCADE, so the counts are
    exact on both backends). The audit log is not touched: it holds ids and hashes only and outlives what
    it describes. Returns the blob hashes the account referred to; the caller deletes those that
    :func:`unreferenced` then reports (content-addressed blobs may be shared with other accounts).
    """
    board_ids = list(s.scalars(select(Board.id).where(Board.account_id == account_id)))
    job_ids = list(s.scalars(select(Job.id).where(Job.account_id == account_id)))
    shas: set[str] = set()
    if board_ids:
        shas |= set(s.scalars(select(PinRecord.sha256).where(PinRecord.board_id.in_(board_ids))))
    if job_ids:
        shas |= set(s.scalars(select(JobImage.sha256).where(JobImage.job_id.in_(job_ids))))
    counts = {
        "profile_versions": _count(s, delete(ProfileVersion).where(ProfileVersion.account_id == account_id)),
        "pins": _count(s, delete(PinRecord).where(PinRecord.board_id.in_(board_ids))) if board_ids else 0,
        "images": _count(s, delete(JobImage).where(JobImage.job_id.in_(job_ids))) if job_ids else 0,
        "generations": _count(s, delete(Job).where(Job.account_id == account_id)),
        "boards": _count(s, delete(Board).where(Board.account_id == account_id)),
        "idempotency_keys": _count(s, delete(IdempotencyRecord).where(IdempotencyRecord.account_id == account_id)),
        "usage_periods": _count(s, delete(Usage).where(Usage.account_id == account_id)),
        "api_keys": _count(s, delete(ApiKey).where(ApiKey.account_id == account_id)),
        "accounts": _count(s, delete(Account).where(Account.id == account_id)),
    }
    return DeletedAccount(counts=counts, board_ids=board_ids, blob_candidates=sorted(shas))


def audit_entries_of(s: Session, account_id: str) -> int:
    """How many audit entries name the account (kept after it is deleted: ids and hashes only)."""
    return int(s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.account_id == account_id)) or 0)
