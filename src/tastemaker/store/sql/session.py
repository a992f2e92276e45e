"""The store's operations in SQL (:class:`~tastemaker.store.protocol.StoreSession` on SQLAlchemy).

Each :class:`SqlSession` wraps one SQLAlchemy session, so one transaction; rows go out as the records of
:mod:`tastemaker.store.records` (one conversion each way, by field name) and never escape as ORM objects.
Queries a caller can reach are scoped to an account. The SQLAlchemy session itself is :attr:`SqlSession.orm`,
for this package and for tests that look at the rows. (Over 500 lines on purpose: one method per operation of
the protocol, in the protocol's order, so the two read side by side.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, undefer

from ...boards import PIN_FIELDS, Pin
from ...errors import NotFoundError, StoreConflictError, StoreError
from .. import records as r
from . import models as m

R = TypeVar("R")
S = TypeVar("S")
#: The audit head's single row (created by the first migration).
HEAD_ID = 1
#: The PostgreSQL ``NOTIFY`` channel on which job changes are announced (see :meth:`SqlSession.notify_job`).
JOB_CHANNEL = "tastemaker_jobs"


def _record(cls: type[R], row: Any, **given: Any) -> R:
    """The record of class ``cls`` from a row whose columns carry the record's field names (``given`` wins:
    relationships and deferred columns are passed in, never lazily loaded here)."""
    values = {f.name: given[f.name] if f.name in given else getattr(row, f.name) for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**values)


def _account(row: m.Account) -> r.Account:
    return _record(r.Account, row)


def _key(row: m.ApiKey) -> r.ApiKey:
    return _record(r.ApiKey, row, account=_account(row.account))


def _stored_pin(row: m.PinRecord) -> r.StoredPin:
    """A pin row as the core's Pin (the one conversion out of the database)."""
    values = {name: getattr(row, name) for name in PIN_FIELDS}
    return r.StoredPin(Pin(**{**values, "tags": tuple(row.tags)}, sha256=row.sha256), row.byte_size)


def _pin_row(board_id: str, stored: r.StoredPin, position: int) -> m.PinRecord:
    """A core Pin as a pin row (the one conversion into the database)."""
    values = {name: getattr(stored.pin, name) for name in PIN_FIELDS}
    return m.PinRecord(
        **{**values, "tags": list(stored.pin.tags)},
        board_id=board_id,
        sha256=stored.pin.sha256,
        position=position,
        byte_size=stored.byte_size,
        created_at=r.utcnow(),
    )


def _board(row: m.Board, *, with_pins: bool = False) -> r.Board:
    return _record(r.Board, row, pins=[_stored_pin(p) for p in row.pins] if with_pins else None)


def _job(row: m.Job, *, with_images: bool = True) -> r.Job:
    return _record(r.Job, row, images=[_record(r.JobImage, im) for im in row.images] if with_images else [])


def _not_found(kind: str, object_id: str) -> NotFoundError:
    return NotFoundError(f"{kind} {object_id!r} not found (it does not exist or belongs to another account)")


def _rows(result: Any) -> int:
    return int(result.rowcount or 0)


def _conflicts_refused(cls: type[S]) -> type[S]:
    """Every public operation of ``cls``: an integrity violation (a row naming an account or board deleted
    meanwhile, a duplicate) rolls the transaction back and is a :class:`StoreConflictError`, whichever statement
    (an insert, an upsert, a flush, the commit) met it."""

    def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(self: SqlSession, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except IntegrityError as exc:
                self.orm.rollback()
                raise StoreConflictError(f"the store refused the change ({type(exc.orig).__name__})") from exc

        return guarded

    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(fn):
            setattr(cls, name, guard(fn))
    return cls


#: Statements on the hot paths (the key of every request, a cached ``/v1/styleembed`` and its audit entry), built
#: once and run on the session's connection without the ORM's execution layer: measured 1.5 -> 0.45 ms a read on
#: SQLite here.
_FIND_KEY = (
    select(m.ApiKey.id, m.ApiKey.account_id, m.ApiKey.name, m.ApiKey.prefix, m.ApiKey.scopes, m.ApiKey.created_at,
           m.ApiKey.last_used_at, m.ApiKey.revoked_at, m.Account.name.label("account_name"), m.Account.tier,
           m.Account.created_at.label("account_created_at"))
    .join(m.Account, m.Account.id == m.ApiKey.account_id)
    .where(m.ApiKey.key_hash == bindparam("key_hash"))
)
_HEAD = m.Base.metadata.tables[m.AuditHead.__tablename__]
_LOCK_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=_HEAD.c.seq)
              .returning(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.mac))
_SET_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ID)
             .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"), mac=bindparam("new_mac")))
_INSERT_ENTRY = insert(m.Base.metadata.tables[m.AuditEntry.__tablename__])
_CACHED_STYLEEMBED = (
    select(m.Board.styleembed_json, m.Board.profile_hash)
    .where(m.Board.id == bindparam("board_id"), m.Board.account_id == bindparam("account_id"),
           m.Board.profile_revision == m.Board.revision, m.Board.profile_hash.is_not(None),
           m.Board.styleembed_json.is_not(None))
)


@_conflicts_refused
class SqlSession:
    """One unit of work on the SQL store (see :class:`~tastemaker.store.protocol.StoreSession`)."""

    def __init__(self, orm: Session) -> None:
        self.orm = orm

    # ------------------------------------------------------------------ the transaction
    def __enter__(self) -> SqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.orm.close()

    def commit(self) -> None:
        self.orm.commit()

    def rollback(self) -> None:
        self.orm.rollback()

    def _insert(self) -> Any:
        """The dialect's INSERT with ON CONFLICT support (both backends have it)."""
        dialect = self.orm.get_bind().dialect.name
        if dialect == "postgresql":
            return pg_insert
        if dialect == "sqlite":
            return sqlite_insert
        raise StoreError(f"unsupported database backend {dialect}")  # pragma: no cover

    # ------------------------------------------------------------------ accounts and keys
    def create_account(self, name: str, tier: str) -> r.Account:
        row = m.Account(id=r.new_id("acc"), name=name, tier=tier, created_at=r.utcnow())
        self.orm.add(row)
        self.orm.flush()
        return _account(row)

    def get_account(self, account_id: str) -> r.Account | None:
        row = self.orm.get(m.Account, account_id)
        return None if row is None else _account(row)

    def add_key(self, account_id: str, *, name: str, key_hash: str, prefix: str, scopes: str) -> r.ApiKey:
        row = m.ApiKey(
            id=r.new_id("key"),
            account_id=account_id,
            name=name,
            key_hash=key_hash,
            prefix=prefix,
            scopes=scopes,
            created_at=r.utcnow(),
        )
        self.orm.add(row)
        self.orm.flush()
        return _key(row)

    def find_key(self, key_hash: str) -> r.ApiKey | None:
        """One round trip on the hot path (every request): the key joined with its account, as plain rows from a
        statement built once (see :data:`_FIND_KEY`)."""
        row = self.orm.connection().execute(_FIND_KEY, {"key_hash": key_hash}).first()
        if row is None:
            return None
        account = r.Account(row.account_id, row.account_name, row.tier, row.account_created_at)
        return r.ApiKey(row.id, row.account_id, row.name, row.prefix, row.scopes, row.created_at, row.last_used_at,
                        row.revoked_at, account)

    def get_key(self, key_id: str) -> r.ApiKey | None:
        q = select(m.ApiKey).where(m.ApiKey.id == key_id).options(joinedload(m.ApiKey.account))
        row = self.orm.scalars(q).first()
        return None if row is None else _key(row)

    def list_keys(self) -> list[r.ApiKey]:
        q = select(m.ApiKey).options(selectinload(m.ApiKey.account)).order_by(m.ApiKey.created_at)
        return [_key(row) for row in self.orm.scalars(q)]

    def touch_key(self, key: r.ApiKey, *, every: timedelta = timedelta(minutes=1)) -> None:
        """At most once a minute: a write per request would serialise SQLite for nothing."""
        now = r.utcnow()
        if key.last_used_at is None or now - key.last_used_at > every:
            self.orm.execute(update(m.ApiKey).where(m.ApiKey.id == key.id).values(last_used_at=now))
            key.last_used_at = now

    def revoke_key(self, key: r.ApiKey, at: datetime) -> None:
        self.orm.execute(update(m.ApiKey).where(m.ApiKey.id == key.id).values(revoked_at=at))
        key.revoked_at = at

    def delete_account(self, account_id: str) -> r.DeletedAccount:
        """Children first (foreign keys are enforced; nothing relies on ON DELETE CASCADE, so the counts are
        exact on both backends)."""
        s = self.orm
        board_ids = list(s.scalars(select(m.Board.id).where(m.Board.account_id == account_id)))
        job_ids = list(s.scalars(select(m.Job.id).where(m.Job.account_id == account_id)))
        shas: set[str] = set()
        if board_ids:
            shas |= set(s.scalars(select(m.PinRecord.sha256).where(m.PinRecord.board_id.in_(board_ids))))
        if job_ids:
            shas |= set(s.scalars(select(m.JobImage.sha256).where(m.JobImage.job_id.in_(job_ids))))

        def gone(stmt: Any) -> int:
            return _rows(s.execute(stmt))

        counts = {
            "profile_versions": gone(delete(m.ProfileVersion).where(m.ProfileVersion.account_id == account_id)),
            "pins": gone(delete(m.PinRecord).where(m.PinRecord.board_id.in_(board_ids))) if board_ids else 0,
            "images": gone(delete(m.JobImage).where(m.JobImage.job_id.in_(job_ids))) if job_ids else 0,
            "generations": gone(delete(m.Job).where(m.Job.account_id == account_id)),
            "boards": gone(delete(m.Board).where(m.Board.account_id == account_id)),
            "idempotency_keys": gone(
                delete(m.IdempotencyRecord).where(m.IdempotencyRecord.account_id == account_id)
            ),
            "usage_periods": gone(delete(m.Usage).where(m.Usage.account_id == account_id)),
            "web_sessions": gone(delete(m.WebSession).where(m.WebSession.account_id == account_id)),
            "api_keys": gone(delete(m.ApiKey).where(m.ApiKey.account_id == account_id)),
            "accounts": gone(delete(m.Account).where(m.Account.id == account_id)),
        }
        return r.DeletedAccount(counts=counts, board_ids=board_ids, blob_candidates=sorted(shas))

    # ------------------------------------------------------------------ web sessions
    def create_web_session(
        self, account_id: str, key_id: str, *, token_hash: str, csrf_token: str, expires_at: datetime
    ) -> r.WebSession:
        row = m.WebSession(id=r.new_id("wss"), token_hash=token_hash, account_id=account_id, key_id=key_id,
                           csrf_token=csrf_token, created_at=r.utcnow(), expires_at=expires_at)
        self.orm.add(row)
        self.orm.flush()
        return _record(r.WebSession, row)

    def find_web_session(self, token_hash: str) -> r.WebSession | None:
        row = self.orm.scalars(select(m.WebSession).where(m.WebSession.token_hash == token_hash)).first()
        return None if row is None else _record(r.WebSession, row)

    def delete_web_session(self, session_id: str) -> None:
        self.orm.execute(delete(m.WebSession).where(m.WebSession.id == session_id))

    def purge_expired_web_sessions(self) -> int:
        return _rows(self.orm.execute(delete(m.WebSession).where(m.WebSession.expires_at < r.utcnow())))

    # ------------------------------------------------------------------ boards and pins
    def get_board(self, account_id: str, board_id: str, *, with_pins: bool = False) -> r.Board:
        q = select(m.Board).where(m.Board.id == board_id, m.Board.account_id == account_id)
        if with_pins:
            q = q.options(selectinload(m.Board.pins))
        row = self.orm.scalars(q.execution_options(populate_existing=True)).first()
        if row is None:
            raise _not_found("board", board_id)
        return _board(row, with_pins=with_pins)

    def owner_of(self, kind: str, object_id: str) -> str | None:
        if kind == "board":
            return self.orm.scalar(select(m.Board.account_id).where(m.Board.id == object_id))
        if kind == "generation":
            return self.orm.scalar(select(m.Job.account_id).where(m.Job.id == object_id))
        raise StoreError(f"no owner lookup for {kind!r}")

    def create_board(self, account_id: str, name: str, pins: Sequence[r.StoredPin]) -> r.Board:
        now = r.utcnow()
        row = m.Board(id=r.new_id("brd"), account_id=account_id, name=name, revision=1, created_at=now, updated_at=now)
        self.orm.add(row)
        self.orm.flush()
        self.orm.add_all(_pin_row(row.id, p, i) for i, p in enumerate(pins))
        self.orm.flush()
        self.orm.refresh(row, ["pins"])
        return _board(row, with_pins=True)

    def add_pins(
        self, board: r.Board, pins: Sequence[r.StoredPin]
    ) -> tuple[r.Board, list[r.StoredPin], list[r.StoredPin]]:
        s = self.orm
        s.execute(update(m.Board).where(m.Board.id == board.id).values(updated_at=r.utcnow()))  # locks the row
        existing = set(s.scalars(select(m.PinRecord.sha256).where(m.PinRecord.board_id == board.id)))
        last = s.scalar(select(func.max(m.PinRecord.position)).where(m.PinRecord.board_id == board.id))
        start = 0 if last is None else int(last) + 1
        added: list[r.StoredPin] = []
        skipped: list[r.StoredPin] = []
        for p in pins:
            if p.pin.sha256 in existing:
                skipped.append(p)
                continue
            existing.add(p.pin.sha256)
            s.add(_pin_row(board.id, p, start + len(added)))
            added.append(p)
        if added:
            s.execute(update(m.Board).where(m.Board.id == board.id).values(revision=m.Board.revision + 1))
        self.orm.flush()
        return self.get_board(board.account_id, board.id, with_pins=True), added, skipped

    def list_boards(self, account_id: str) -> list[r.Board]:
        q = select(m.Board).where(m.Board.account_id == account_id).order_by(m.Board.updated_at.desc(), m.Board.id)
        return [_board(row) for row in self.orm.scalars(q)]

    def pin_counts(self, board_ids: Sequence[str]) -> dict[str, int]:
        if not board_ids:
            return {}
        q = (select(m.PinRecord.board_id, func.count()).where(m.PinRecord.board_id.in_(board_ids))
             .group_by(m.PinRecord.board_id))
        return {bid: int(n) for bid, n in self.orm.execute(q)}

    def update_pin(self, board: r.Board, sha256: str, values: dict[str, Any]) -> r.Board:
        s = self.orm
        allowed = set(PIN_FIELDS) - {"image"}
        unknown = set(values) - allowed
        if unknown:
            raise StoreError(f"pins have no editable field(s) {sorted(unknown)}")
        if "tags" in values:
            values = {**values, "tags": list(values["tags"])}
        return self._pin_changed(board, sha256, s.execute(
            update(m.PinRecord).where(m.PinRecord.board_id == board.id, m.PinRecord.sha256 == sha256)
            .values(**values)))

    def remove_pin(self, board: r.Board, sha256: str) -> r.Board:
        return self._pin_changed(board, sha256, self.orm.execute(
            delete(m.PinRecord).where(m.PinRecord.board_id == board.id, m.PinRecord.sha256 == sha256)))

    def _pin_changed(self, board: r.Board, sha256: str, done: Any) -> r.Board:
        """After an edit or removal of one pin: not found if it matched no row, else bump the board's revision
        (its profile is rebuilt on next use) and return the board with its pins."""
        if _rows(done) == 0:
            raise _not_found("pin", sha256[:12])
        self.orm.execute(update(m.Board).where(m.Board.id == board.id)
                         .values(revision=m.Board.revision + 1, updated_at=r.utcnow()))
        self.orm.flush()
        return self.get_board(board.account_id, board.id, with_pins=True)

    def board_pins(self, board_id: str) -> list[r.StoredPin]:
        q = select(m.PinRecord).where(m.PinRecord.board_id == board_id).order_by(m.PinRecord.position)
        return [_stored_pin(row) for row in self.orm.scalars(q)]

    def delete_board(self, board: r.Board) -> list[str]:
        s = self.orm
        shas = list(s.scalars(select(m.PinRecord.sha256).where(m.PinRecord.board_id == board.id)))
        self.release_idempotency_for(board.account_id, board.id)
        s.execute(delete(m.ProfileVersion).where(m.ProfileVersion.board_id == board.id))
        s.execute(delete(m.PinRecord).where(m.PinRecord.board_id == board.id))
        s.execute(update(m.Job).where(m.Job.board_id == board.id).values(board_id=None))
        s.execute(delete(m.Board).where(m.Board.id == board.id))
        return shas

    def unreferenced_blobs(self, shas: Iterable[str]) -> list[str]:
        wanted = set(shas)
        if not wanted:
            return []
        used = set(self.orm.scalars(select(m.PinRecord.sha256).where(m.PinRecord.sha256.in_(wanted))))
        used |= set(self.orm.scalars(select(m.JobImage.sha256).where(m.JobImage.sha256.in_(wanted))))
        return sorted(wanted - used)

    # ------------------------------------------------------------------ taste profiles
    def cached_styleembed(self, account_id: str, board_id: str) -> tuple[str, str] | None:
        params = {"board_id": board_id, "account_id": account_id}
        row = self.orm.connection().execute(_CACHED_STYLEEMBED, params).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def read_board_profile(self, board_id: str) -> r.BoardProfile | None:
        row = self.orm.execute(
            select(m.Board.revision, m.Board.profile_revision, m.Board.profile_hash, m.Board.profile_json,
                   m.Board.styleembed_json)
            .where(m.Board.id == board_id)
            .execution_options(populate_existing=True)
        ).first()
        return None if row is None else r.BoardProfile(*row)

    def lock_board(self, board_id: str) -> None:
        """A no-op UPDATE: PostgreSQL's row lock, SQLite's write lock."""
        self.orm.execute(update(m.Board).where(m.Board.id == board_id).values(revision=m.Board.revision))

    def _set_profile(self, board_id: str, revision: int, *conditions: Any, **values: Any) -> bool:
        q = update(m.Board).where(m.Board.id == board_id, m.Board.revision == revision, *conditions)
        return bool(_rows(self.orm.execute(q.values(**values))))

    def save_profile(
        self, board_id: str, *, revision: int, profile_json: str, profile_hash: str, styleembed_json: str | None
    ) -> bool:
        fresh = or_(m.Board.profile_revision.is_(None), m.Board.profile_revision != revision)
        return self._set_profile(
            board_id, revision, fresh, profile_revision=revision, profile_json=profile_json,
            profile_hash=profile_hash, styleembed_json=styleembed_json,
        )

    def save_styleembed(self, board_id: str, *, revision: int, styleembed_json: str) -> bool:
        return self._set_profile(
            board_id, revision, m.Board.profile_revision == revision, m.Board.styleembed_json.is_(None),
            styleembed_json=styleembed_json,
        )

    def set_board_profile(
        self, board_id: str, *, revision: int, profile_json: str, profile_hash: str, styleembed_json: str | None
    ) -> bool:
        return self._set_profile(
            board_id, revision, m.Board.profile_revision == revision, profile_json=profile_json,
            profile_hash=profile_hash, styleembed_json=styleembed_json,
        )

    def add_profile_version(self, version: r.ProfileVersion) -> None:
        values = {f.name: getattr(version, f.name) for f in fields(version)}
        self.orm.add(m.ProfileVersion(**values))
        self.orm.flush()

    def latest_profile_version(self, board_id: str) -> r.ProfileVersion | None:
        row = self.orm.scalars(
            select(m.ProfileVersion)
            .where(m.ProfileVersion.board_id == board_id)
            .options(undefer(m.ProfileVersion.profile_json))
            .order_by(m.ProfileVersion.version.desc())
            .limit(1)
        ).first()
        return None if row is None else _record(r.ProfileVersion, row)

    def profile_versions(self, board_id: str) -> list[r.ProfileVersion]:
        q = select(m.ProfileVersion).where(m.ProfileVersion.board_id == board_id).order_by(m.ProfileVersion.version)
        return [_record(r.ProfileVersion, row, profile_json=None) for row in self.orm.scalars(q)]

    def revision_hashes(self, board_id: str, revision: int) -> set[str]:
        q = select(m.ProfileVersion.profile_hash).where(
            m.ProfileVersion.board_id == board_id, m.ProfileVersion.board_revision == revision
        )
        return set(self.orm.scalars(q))

    # ------------------------------------------------------------------ generation jobs
    def create_job(
        self, *, account_id: str, board_id: str | None, request: dict[str, Any], n_images: int, profile_hash: str,
        selfie_sha256: str, usage_period: str,
    ) -> r.Job:
        row = m.Job(
            id=r.new_id("gen"),
            account_id=account_id,
            board_id=board_id,
            status=r.QUEUED,
            request=request,
            n_images=n_images,
            profile_hash=profile_hash,
            selfie_sha256=selfie_sha256,
            progress={"stage": "queued", "done": 0, "total": 0, "fraction": 0.0},
            usage_period=usage_period,
            created_at=r.utcnow(),
        )
        self.orm.add(row)
        self.orm.flush()
        return _job(row, with_images=False)

    def _jobs(self, *conditions: Any) -> Any:
        q = select(m.Job).where(*conditions).options(selectinload(m.Job.images))
        return self.orm.scalars(q.execution_options(populate_existing=True))

    def get_job(self, account_id: str, job_id: str) -> r.Job:
        row = self._jobs(m.Job.id == job_id, m.Job.account_id == account_id).first()
        if row is None:
            raise _not_found("generation", job_id)
        return _job(row)

    def load_job(self, job_id: str) -> r.Job | None:
        row = self._jobs(m.Job.id == job_id).first()
        return None if row is None else _job(row)

    def list_jobs(self, account_id: str, *, limit: int = 50, before: datetime | None = None) -> list[r.Job]:
        conditions = [m.Job.account_id == account_id]
        if before is not None:
            conditions.append(m.Job.created_at < before)
        q = (select(m.Job).where(*conditions).options(selectinload(m.Job.images))
             .order_by(m.Job.created_at.desc(), m.Job.id).limit(limit))
        return [_job(row) for row in self.orm.scalars(q)]

    def active_jobs(self) -> list[r.Job]:
        q = select(m.Job).where(m.Job.status.in_(r.ACTIVE)).order_by(m.Job.created_at)
        return [_job(row, with_images=False) for row in self.orm.scalars(q)]

    def count_active_jobs(self, account_id: str) -> int:
        q = select(func.count()).select_from(m.Job).where(m.Job.account_id == account_id, m.Job.status.in_(r.ACTIVE))
        return int(self.orm.scalar(q) or 0)

    def move_job(self, job: r.Job, to: str, *, held_by: str | None = None, **values: Any) -> bool:
        """The UPDATE only matches the state we came from (and, with ``held_by``, that worker's lease): a
        compare-and-set."""
        frm = job.status
        if to not in r.TRANSITIONS[frm]:
            raise StoreError(f"job {job.id}: illegal transition {frm} -> {to}")
        cond = [m.Job.id == job.id, m.Job.status == frm]
        if held_by is not None:
            cond.append(m.Job.lease_owner == held_by)
        res = self.orm.execute(update(m.Job).where(*cond).values(status=to, **values))
        if not _rows(res):
            now = self.orm.scalar(select(m.Job.status).where(m.Job.id == job.id))
            job.status = now if now is not None else job.status
            return False
        job.status = to
        for k, v in values.items():
            setattr(job, k, v)
        return True

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self.orm.execute(update(m.Job).where(m.Job.id == job_id, m.Job.status == r.RUNNING).values(progress=progress))

    def lease_job(self, job: r.Job, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take ``job`` for ``owner`` until ``until``: a queued job starts running; a running one is taken over
        only if the lease ``job`` shows has run out by ``now`` and nobody took it meanwhile (compare-and-set).
        Counts an attempt. ``job`` is updated when taken."""
        values: dict[str, Any] = {"lease_owner": owner, "lease_expires_at": until, "attempts": m.Job.attempts + 1}
        if job.status == r.QUEUED:
            cond = [m.Job.status == r.QUEUED]
            values.update(status=r.RUNNING, started_at=now,
                          progress={"stage": "starting", "done": 0, "total": 1, "fraction": 0.0})
        elif job.status == r.RUNNING and (job.lease_expires_at is None or job.lease_expires_at <= now):
            held = m.Job.lease_owner.is_(None) if job.lease_owner is None else m.Job.lease_owner == job.lease_owner
            cond = [m.Job.status == r.RUNNING, held,
                    or_(m.Job.lease_expires_at.is_(None), m.Job.lease_expires_at <= now)]
        else:
            return False
        if not _rows(self.orm.execute(update(m.Job).where(m.Job.id == job.id, *cond).values(**values))):
            return False
        row = self.orm.scalars(select(m.Job).where(m.Job.id == job.id).execution_options(populate_existing=True))
        fresh = _job(row.one(), with_images=False)
        for f in fields(fresh):
            if f.name != "images":
                setattr(job, f.name, getattr(fresh, f.name))
        return True

    def renew_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        """Extend ``owner``'s lease on its running job; False when the job has ended or another worker holds it."""
        res = self.orm.execute(
            update(m.Job).where(m.Job.id == job_id, m.Job.status == r.RUNNING, m.Job.lease_owner == owner)
            .values(lease_expires_at=until)
        )
        return bool(_rows(res))

    def stage_outputs(self, job_id: str, owner: str, staged: list[Any]) -> bool:
        """Record the outputs whose provenance is about to be logged, while ``owner`` still holds the job."""
        res = self.orm.execute(
            update(m.Job).where(m.Job.id == job_id, m.Job.status == r.RUNNING, m.Job.lease_owner == owner)
            .values(staged=staged)
        )
        return bool(_rows(res))

    def unattended_jobs(self, *, queued_before: datetime, lease_ended_by: datetime) -> list[str]:
        """Ids of jobs queued since before ``queued_before`` and of running jobs whose lease ended by
        ``lease_ended_by``, oldest first."""
        q = (select(m.Job.id).where(or_(
            (m.Job.status == r.QUEUED) & (m.Job.created_at < queued_before),
            (m.Job.status == r.RUNNING) & (m.Job.lease_expires_at.is_not(None))
            & (m.Job.lease_expires_at <= lease_ended_by),
        )).order_by(m.Job.created_at))
        return list(self.orm.scalars(q))

    def count_all_active_jobs(self) -> int:
        """Queued and running jobs of every account."""
        return int(self.orm.scalar(select(func.count()).select_from(m.Job).where(m.Job.status.in_(r.ACTIVE))) or 0)

    def notify_job(self, job_id: str) -> None:
        """PostgreSQL: tell every listener (API processes serving its events) that the job changed, when this
        transaction commits (``NOTIFY``). SQLite serves one process: nothing to do."""
        if self.orm.get_bind().dialect.name == "postgresql":
            self.orm.execute(select(func.pg_notify(JOB_CHANNEL, job_id)))

    def put_job_input(self, job_id: str, sealed: bytes) -> None:
        self.orm.add(m.JobInput(job_id=job_id, sealed=sealed, created_at=r.utcnow()))

    def job_input(self, job_id: str) -> bytes | None:
        return self.orm.scalar(select(m.JobInput.sealed).where(m.JobInput.job_id == job_id))

    def drop_job_input(self, job_id: str) -> None:
        self.orm.execute(delete(m.JobInput).where(m.JobInput.job_id == job_id))

    def add_job_image(self, job_id: str, image: r.JobImage) -> None:
        self.orm.add(m.JobImage(job_id=job_id, **{f.name: getattr(image, f.name) for f in fields(image)}))

    def find_job_image(self, account_id: str, sha256: str) -> tuple[r.Job, r.JobImage] | None:
        row = self.orm.execute(
            select(m.Job, m.JobImage)
            .join(m.JobImage, m.JobImage.job_id == m.Job.id)
            .where(m.JobImage.sha256 == sha256, m.Job.account_id == account_id, m.Job.status == r.SUCCEEDED)
            .order_by(m.Job.created_at.desc())
            .limit(1)
        ).first()
        return None if row is None else (_job(row[0], with_images=False), _record(r.JobImage, row[1]))

    # ------------------------------------------------------------------ usage and quota
    def get_usage(self, account_id: str, period: str) -> r.Usage:
        row = self.orm.get(m.Usage, (account_id, period))
        return r.Usage(account_id, period) if row is None else _record(r.Usage, row)

    def reserve_images(self, account_id: str, period: str, n: int, quota: int) -> bool:
        values = {"account_id": account_id, "period": period, "images": 0, "generations": 0, "styleembed": 0}
        self.orm.execute(self._insert()(m.Usage).values(**values).on_conflict_do_nothing())
        res = self.orm.execute(
            update(m.Usage)
            .where(m.Usage.account_id == account_id, m.Usage.period == period, m.Usage.images + n <= quota)
            .values(images=m.Usage.images + n, generations=m.Usage.generations + 1)
        )
        return bool(_rows(res))

    def release_images(self, account_id: str, period: str, n: int) -> None:
        self.orm.execute(
            update(m.Usage)
            .where(m.Usage.account_id == account_id, m.Usage.period == period)
            .values(images=case((m.Usage.images >= n, m.Usage.images - n), else_=0))
        )

    def count_styleembed(self, account_id: str, period: str, n: int = 1) -> None:
        """One upsert: this runs for every /v1/styleembed call (``n`` calls at once, group-committed); on the
        session's connection, without the ORM's bulk-update layer."""
        usage = m.Base.metadata.tables[m.Usage.__tablename__]
        ins = self._insert()(usage).values(account_id=account_id, period=period, images=0, generations=0,
                                           styleembed=n)
        self.orm.connection().execute(
            ins.on_conflict_do_update(
                index_elements=[usage.c.account_id, usage.c.period], set_={"styleembed": usage.c.styleembed + n}
            )
        )

    # ------------------------------------------------------------------ idempotency keys
    def _idempotency(self, account_id: str, key: str) -> Any:
        return (m.IdempotencyRecord.account_id == account_id, m.IdempotencyRecord.key == key)

    def claim_idempotency_key(
        self, *, account_id: str, key: str, endpoint: str, fingerprint: str, ttl: timedelta
    ) -> r.IdempotencyRecord | None:
        s, now = self.orm, r.utcnow()
        for _ in range(3):
            s.add(m.IdempotencyRecord(account_id=account_id, key=key, endpoint=endpoint, fingerprint=fingerprint,
                                      state=r.IN_PROGRESS, created_at=now, expires_at=now + ttl))
            try:
                s.commit()
                return None
            except IntegrityError:
                s.rollback()
            existing = s.scalars(select(m.IdempotencyRecord).where(*self._idempotency(account_id, key))).first()
            if existing is None:
                continue  # released between our insert and our read: try again
            if existing.expires_at <= now:
                s.execute(delete(m.IdempotencyRecord).where(m.IdempotencyRecord.id == existing.id))
                s.commit()
                continue
            return _record(r.IdempotencyRecord, existing)
        raise StoreError(f"could not claim idempotency key {key!r}; retry the request")

    def finish_idempotency_key(
        self, account_id: str, key: str, *, status: int, body: dict[str, Any] | None, resource_id: str | None
    ) -> None:
        self.orm.execute(
            update(m.IdempotencyRecord)
            .where(*self._idempotency(account_id, key))
            .values(state=r.DONE, response_status=status, response_body=body, resource_id=resource_id)
        )

    def release_idempotency_key(self, account_id: str, key: str) -> None:
        self.orm.execute(delete(m.IdempotencyRecord).where(*self._idempotency(account_id, key)))

    def release_idempotency_for(self, account_id: str, resource_id: str) -> int:
        return _rows(self.orm.execute(delete(m.IdempotencyRecord).where(
            m.IdempotencyRecord.account_id == account_id, m.IdempotencyRecord.resource_id == resource_id
        )))

    def purge_expired_idempotency(self) -> int:
        return _rows(self.orm.execute(delete(m.IdempotencyRecord).where(m.IdempotencyRecord.expires_at <= r.utcnow())))

    # ------------------------------------------------------------------ the audit trail
    def lock_audit_head(self) -> r.AuditHead:
        """A no-op UPDATE ... RETURNING: locks the head (PostgreSQL's row lock, SQLite's write lock) and reads
        it in one statement (built once, run on the session's connection after flushing what is pending)."""
        self.orm.flush()
        row = self.orm.connection().execute(_LOCK_HEAD).one()
        return r.AuditHead(int(row.seq), str(row.hash), str(row.mac))

    def append_audit_entry(self, entry: r.AuditEntry, head_mac: str) -> None:
        self.orm.add(m.AuditEntry(**{f.name: getattr(entry, f.name) for f in fields(entry)}))
        self.orm.execute(
            update(m.AuditHead).where(m.AuditHead.id == HEAD_ID).values(seq=entry.seq, hash=entry.hash, mac=head_mac)
        )
        self.orm.flush()

    def append_audit_entries(self, entries: Sequence[r.AuditEntry], head_mac: str) -> None:
        if not entries:
            return
        conn = self.orm.connection()
        conn.execute(_INSERT_ENTRY, [{f.name: getattr(e, f.name) for f in fields(e)} for e in entries])
        last = entries[-1]
        conn.execute(_SET_HEAD, {"new_seq": last.seq, "new_hash": last.hash, "new_mac": head_mac})

    def audit_head(self) -> r.AuditHead | None:
        row = self.orm.get(m.AuditHead, HEAD_ID, populate_existing=True)
        return None if row is None else _record(r.AuditHead, row)

    def audit_entry(self, seq: int) -> r.AuditEntry | None:
        row = self.orm.get(m.AuditEntry, seq)
        return None if row is None else _record(r.AuditEntry, row)

    def audit_entries(self, *, batch: int = 1000) -> Iterator[r.AuditEntry]:
        q = select(m.AuditEntry).order_by(m.AuditEntry.seq).execution_options(yield_per=batch)
        for row in self.orm.scalars(q):
            yield _record(r.AuditEntry, row)

    def count_audit_entries(self, account_id: str) -> int:
        q = select(func.count()).select_from(m.AuditEntry).where(m.AuditEntry.account_id == account_id)
        return int(self.orm.scalar(q) or 0)
