"""The store the service runs on, as a protocol: what it must do, not how.

A :class:`Store` opens :class:`StoreSession` s — one unit of work each (a request, a job step): the
operations below run in its transaction, and :meth:`StoreSession.commit` keeps them (leaving the ``with``
block without committing throws them away). Operations are named by what they mean for the service —
accounts and keys, boards and pins, profiles, jobs, usage, idempotency keys, the audit trail — and take and
return the plain records of :mod:`tastemaker.store.records`. Image bytes live in the store's
:class:`~tastemaker.store.blobs.BlobStore`, by content hash.

Every operation an API caller can reach is scoped to an account: another account's board or job is
"not found" (:class:`~tastemaker.errors.NotFoundError`), never "forbidden". The SQL implementation
(:class:`tastemaker.store.sql.SqlStore`: SQLite or PostgreSQL, migrated by Alembic) is the one in use; another
backend implements these two classes and nothing else (``tests/api/test_store.py`` is the contract).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from .blobs import BlobStore
from .records import (
    Account,
    ApiKey,
    AuditEntry,
    AuditHead,
    Board,
    BoardProfile,
    DeletedAccount,
    IdempotencyRecord,
    Job,
    JobImage,
    ProfileVersion,
    StoredPin,
    Usage,
    WebSession,
)


class StoreSession(Protocol):
    """One unit of work: the service's operations, in one transaction."""

    # ------------------------------------------------------------------ the transaction
    def __enter__(self) -> StoreSession: ...
    def __exit__(self, *exc: object) -> None:
        """Leave the unit of work; what was not committed is thrown away."""

    def commit(self) -> None:
        """Keep the work so far (:class:`~tastemaker.errors.StoreConflictError` if it broke an integrity rule:
        then nothing was kept)."""

    def rollback(self) -> None: ...

    # ------------------------------------------------------------------ accounts and keys
    def create_account(self, name: str, tier: str) -> Account: ...
    def get_account(self, account_id: str) -> Account | None: ...
    def add_key(self, account_id: str, *, name: str, key_hash: str, prefix: str, scopes: str) -> ApiKey: ...
    def find_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (with its account), revoked or not."""

    def get_key(self, key_id: str) -> ApiKey | None:
        """A key by its id (revoked ones too), with its account."""

    def list_keys(self) -> list[ApiKey]:
        """Every key of every account, oldest first (for the operator)."""

    def touch_key(self, key: ApiKey, *, every: timedelta = timedelta(minutes=1)) -> None:
        """Record that the key was used now, at most once per ``every`` (updates ``key``)."""

    def revoke_key(self, key: ApiKey, at: datetime) -> None:
        """Revoke the key as of ``at`` (updates ``key``)."""

    def create_web_session(
        self, account_id: str, key_id: str, *, token_hash: str, csrf_token: str, expires_at: datetime
    ) -> WebSession:
        """Open a browser session acting with ``key_id`` (only the token's SHA-256 is stored)."""

    def find_web_session(self, token_hash: str) -> WebSession | None:
        """The session whose token hashes to ``token_hash`` (expired ones too: the caller checks)."""

    def delete_web_session(self, session_id: str) -> None: ...
    def purge_expired_web_sessions(self) -> int:
        """Delete every expired session; how many went."""

    def delete_account(self, account_id: str) -> DeletedAccount:
        """Delete every row of the account — profile versions, pins, boards, generated images, generations,
        idempotency keys, usage counters, API keys and the account — but not its audit entries (ids and hashes
        only; the trail outlives what it describes). Counts are exact. ``blob_candidates`` are the blobs it
        referred to: delete those :meth:`unreferenced_blobs` then reports (blobs may be shared)."""

    # ------------------------------------------------------------------ boards and pins
    def get_board(self, account_id: str, board_id: str, *, with_pins: bool = False) -> Board:
        """The account's board: :class:`NotFoundError` whether it does not exist or is someone else's."""

    def owner_of(self, kind: str, object_id: str) -> str | None:
        """Who owns a ``"board"`` or a ``"generation"`` (for the audit trail of probes; never shown)."""

    def create_board(self, account_id: str, name: str, pins: Sequence[StoredPin]) -> Board:
        """A new board (revision 1) with ``pins`` in this order."""

    def add_pins(self, board: Board, pins: Sequence[StoredPin]) -> tuple[Board, list[StoredPin], list[StoredPin]]:
        """Add pins at the end; a pin whose image is on the board already is skipped, not duplicated. Bumps the
        revision when anything was added (the cached profile goes stale), with the board locked so concurrent
        additions get distinct places. Returns the board as it now is (with its pins), the added and the
        skipped."""

    def list_boards(self, account_id: str) -> list[Board]:
        """An account's boards without their pins, the most recently changed first."""

    def pin_counts(self, board_ids: Sequence[str]) -> dict[str, int]:
        """How many pins each of these boards holds (a board without pins is left out)."""

    def update_pin(self, board: Board, sha256: str, values: dict[str, Any]) -> Board:
        """Change a pin's engagement or text (any pin field but its image name); bumps the board's revision,
        so its profile is rebuilt on next use. The board comes back with its pins."""

    def remove_pin(self, board: Board, sha256: str) -> Board:
        """Take a pin off a board (its blob is the caller's to collect when nothing else refers to it); bumps
        the revision."""

    def board_pins(self, board_id: str) -> list[StoredPin]:
        """A board's pins, in board order."""

    def delete_board(self, board: Board) -> list[str]:
        """Delete a board, its pins, its profile versions and the idempotency records naming it (a replayed
        create must not hand back the deleted board); its jobs stay, without a board. Returns the blob hashes
        its pins referred to (check them with :meth:`unreferenced_blobs`)."""

    def unreferenced_blobs(self, shas: Iterable[str]) -> list[str]:
        """Which of these blobs no pin and no generated image refers to any more."""

    # ------------------------------------------------------------------ taste profiles
    def cached_styleembed(self, account_id: str, board_id: str) -> tuple[str, str] | None:
        """The account's board's cached /v1/styleembed body and profile hash, when both are current (built from
        the board's revision); None otherwise (not the account's board, or not cached). One cheap read: the
        hot path of /v1/styleembed."""

    def read_board_profile(self, board_id: str) -> BoardProfile | None:
        """The board's cached profile columns, read fresh (None: no such board)."""

    def lock_board(self, board_id: str) -> None:
        """Take the board's write lock for a read-modify-write, until the transaction ends."""

    def save_profile(
        self, board_id: str, *, revision: int, profile_json: str, profile_hash: str, styleembed_json: str | None
    ) -> bool:
        """Cache a profile built from ``revision``; False (nothing written) if pins were added meanwhile, or if
        one for this revision is cached already (it may have taken feedback since: never overwrite it)."""

    def save_styleembed(self, board_id: str, *, revision: int, styleembed_json: str) -> bool:
        """Cache the /v1/styleembed body of ``revision``'s profile, once: False if the board moved on, or another
        request published this revision's release first (then that one is the answer)."""

    def set_board_profile(
        self, board_id: str, *, revision: int, profile_json: str, profile_hash: str, styleembed_json: str | None
    ) -> bool:
        """Replace the cached profile of ``revision`` (feedback); False if the board has moved on meanwhile."""

    def add_profile_version(self, version: ProfileVersion) -> None: ...
    def latest_profile_version(self, board_id: str) -> ProfileVersion | None:
        """The newest kept version (with its JSON), or None if the board never took feedback."""

    def profile_versions(self, board_id: str) -> list[ProfileVersion]:
        """Every kept version, oldest first (without the JSON)."""

    def revision_hashes(self, board_id: str, revision: int) -> set[str]:
        """The hashes of every kept version built from this board revision."""

    # ------------------------------------------------------------------ generation jobs
    def create_job(
        self, *, account_id: str, board_id: str | None, request: dict[str, Any], n_images: int, profile_hash: str,
        selfie_sha256: str, usage_period: str,
    ) -> Job:
        """A new job, queued. One naming an account or board deleted meanwhile is refused, here or at
        :meth:`commit`, with :class:`~tastemaker.errors.StoreConflictError` (and nothing is kept)."""

    def get_job(self, account_id: str, job_id: str) -> Job:
        """The account's job with its images (:class:`NotFoundError` as for boards)."""

    def load_job(self, job_id: str) -> Job | None:
        """A job by id alone: for the job runner, never for a request handler."""

    def list_jobs(self, account_id: str, *, limit: int = 50, before: datetime | None = None) -> list[Job]:
        """An account's generations with their images, newest first (``before``: the page after a created_at)."""

    def active_jobs(self) -> list[Job]:
        """Every queued or running job, oldest first."""

    def count_active_jobs(self, account_id: str) -> int: ...
    def move_job(self, job: Job, to: str, *, held_by: str | None = None, **fields: Any) -> bool:
        """Move a job along the state machine, atomically, setting ``fields`` too: only if it is still in the
        state ``job`` says (and, with ``held_by``, still leased to that worker). True: moved (``job`` updated).
        False: another actor moved it first (``job`` now shows where it is). An illegal move raises
        :class:`~tastemaker.errors.StoreError`."""

    def lease_job(self, job: Job, owner: str, *, now: datetime, until: datetime) -> bool:
        """Queue mode: take a queued job (it starts running), or a running one whose lease ran out by ``now``,
        for worker ``owner`` until ``until`` — a compare-and-set that counts an attempt and updates ``job``."""

    def renew_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        """Extend the lease ``owner`` holds on its running job; False once it ended or was taken over."""

    def stage_outputs(self, job_id: str, owner: str, staged: list[Any]) -> bool:
        """Keep the outputs whose provenance is being logged (while ``owner`` holds the job)."""

    def unattended_jobs(self, *, queued_before: datetime, lease_ended_by: datetime) -> list[str]:
        """Queue mode: jobs queued since before ``queued_before``, and running jobs whose worker's lease ended by
        ``lease_ended_by`` — the ones to hand to the queue again if no task for them is waiting."""

    def count_all_active_jobs(self) -> int:
        """Queued and running jobs of every account."""

    def notify_job(self, job_id: str) -> None:
        """Announce, when this transaction commits, that the job changed (to other processes that watch it; a
        backend that serves one process does nothing)."""

    def put_job_input(self, job_id: str, sealed: bytes) -> None:
        """Keep a queued job's sealed input (queue mode) until :meth:`drop_job_input`."""

    def job_input(self, job_id: str) -> bytes | None: ...
    def drop_job_input(self, job_id: str) -> None:
        """Forget a job's input (when it ends)."""

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Record a running job's progress (ignored once the job has left ``running``)."""

    def add_job_image(self, job_id: str, image: JobImage) -> None: ...
    def find_job_image(self, account_id: str, sha256: str) -> tuple[Job, JobImage] | None:
        """This account's newest succeeded output with these exact bytes."""

    # ------------------------------------------------------------------ usage and quota
    def get_usage(self, account_id: str, period: str) -> Usage: ...
    def reserve_images(self, account_id: str, period: str, n: int, quota: int) -> bool:
        """Take ``n`` images from the period's quota and count a generation, atomically; False if over."""

    def release_images(self, account_id: str, period: str, n: int) -> None:
        """Give back a failed job's images (never below zero; its generation still counts)."""

    def count_styleembed(self, account_id: str, period: str, n: int = 1) -> None:
        """Count ``n`` /v1/styleembed calls in the period."""

    # ------------------------------------------------------------------ idempotency keys
    def claim_idempotency_key(
        self, *, account_id: str, key: str, endpoint: str, fingerprint: str, ttl: timedelta
    ) -> IdempotencyRecord | None:
        """Claim ``key``, committing at once so concurrent requests see the claim: None when the claim is ours,
        else the existing record (replay it, or refuse a different request). Expired records are replaced."""

    def finish_idempotency_key(
        self, account_id: str, key: str, *, status: int, body: dict[str, Any] | None, resource_id: str | None
    ) -> None: ...
    def release_idempotency_key(self, account_id: str, key: str) -> None:
        """Forget a claim whose request failed, so the same key can be retried."""

    def release_idempotency_for(self, account_id: str, resource_id: str) -> int:
        """Forget every record of the account naming ``resource_id`` (a deleted board, a job worth retrying)."""

    def purge_expired_idempotency(self) -> int: ...

    # ------------------------------------------------------------------ the audit trail (see tastemaker.audit)
    def lock_audit_head(self) -> AuditHead:
        """The chain's head, locked until the transaction ends (appends serialise on it)."""

    def append_audit_entry(self, entry: AuditEntry, head_mac: str) -> None:
        """Add ``entry`` and make it the head (with its MAC), under the lock :meth:`lock_audit_head` took."""

    def append_audit_entries(self, entries: Sequence[AuditEntry], head_mac: str) -> None:
        """Add chained ``entries`` at once and make the last the head (its MAC), under the lock of
        :meth:`lock_audit_head`."""

    def audit_head(self) -> AuditHead | None: ...
    def audit_entry(self, seq: int) -> AuditEntry | None: ...
    def audit_entries(self, *, batch: int = 1000) -> Iterator[AuditEntry]:
        """Every entry in ``seq`` order, read ``batch`` at a time."""

    def count_audit_entries(self, account_id: str) -> int:
        """How many entries name the account (they stay after it is deleted)."""


class Store(Protocol):
    """The service's persistence: records through :meth:`session`, image bytes in :attr:`blobs`."""

    @property
    def blobs(self) -> BlobStore:
        """Where the image bytes are, by content hash."""

    def session(self) -> StoreSession:
        """A new unit of work (use it as a context manager)."""

    def upgrade(self, revision: str = "head") -> str | None:
        """Bring the schema to ``revision`` (default: the newest); returns the revision now in place."""

    def schema_revision(self) -> str | None: ...
    def check_schema(self) -> None:
        """Refuse (:class:`~tastemaker.errors.ConfigurationError`) a schema this code does not expect."""

    def ping(self) -> None:
        """Raise unless the store answers (health checks)."""

    def dispose(self) -> None: ...
